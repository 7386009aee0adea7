-- One row per chunk request: the outcome the viewer saw and how long they waited.
CREATE TABLE chunk_requests (
    id                     uuid PRIMARY KEY,
    session_id             uuid NULL REFERENCES sessions(id) ON DELETE SET NULL,
    memory_id              uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    parent_chunk_id        uuid NULL REFERENCES chunks(id) ON DELETE CASCADE,
    chunk_id               uuid NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    job_id                 uuid NULL REFERENCES gpu_jobs(id) ON DELETE SET NULL,
    pose                   text NOT NULL,
    action                 text NULL,
    outcome                text NOT NULL CHECK (outcome IN ('hit', 'inflight', 'miss')),
    wait_ms                double precision NULL,      -- NULL while waiting or on failure
    policy                 text NULL,                  -- the session's policy
    arm                    text NULL,                  -- the session's experiment arm
    speculated_depth       integer NULL,               -- depth it was speculated at, if it was
    speculated_probability double precision NULL,      -- P it was given, if speculated
    error                  text NULL,
    requested_at           timestamptz NOT NULL DEFAULT now(),
    served_at              timestamptz NULL
);
CREATE INDEX chunk_requests_time_idx ON chunk_requests (requested_at);
CREATE INDEX chunk_requests_chunk_idx ON chunk_requests (chunk_id);

-- The first time any request used a job's chunk: speculative GPU time that was not waste.
ALTER TABLE gpu_jobs ADD COLUMN first_used_at timestamptz NULL;
