-- Scale-out (issue 16): API replicas hand requests to the one elected scheduler through the
-- database, and hear about ready chunks through LISTEN/NOTIFY.
--
--   * chunk_demands: a miss or in-flight hit accepted by an API replica, durable before the
--     replica waits (the request is accepted once this row is committed). The scheduler takes
--     it (FOR UPDATE SKIP LOCKED), serves it through its live state (chunk claim, job,
--     chunk_requests row under the same request id), then writes the answer here and notifies
--     'rewind_answers'. A replica that died leaves its rows; the scheduler serves them anyway.
--     A scheduler that died leaves taken, unanswered rows; the next leader serves them again.
--   * replica_hits: a hit answered by a replica from its own view (its chunk_requests row is
--     written behind as in one process); the scheduler consumes these in order to move its live
--     cursors and feed its policies (DELETE ... RETURNING: at most once, as hit rows are).
--   * chunks_notify: every status change of a chunk row is announced on 'rewind_chunks' with
--     what a replica's view needs (key, index, producing attempt), in the writer's transaction.

CREATE TABLE chunk_demands (
    request_id       uuid PRIMARY KEY,
    memory_id        uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    parent_chunk_id  uuid NULL REFERENCES chunks(id) ON DELETE CASCADE,
    pose             text NOT NULL,
    action           text NULL,
    session_id       uuid NULL REFERENCES sessions(id) ON DELETE SET NULL,
    record_history   boolean NOT NULL DEFAULT true,
    replica          text NOT NULL,               -- the API process that accepted it
    requested_at     timestamptz NOT NULL DEFAULT now(),
    taken_by         text NULL,                   -- the scheduler serving it
    taken_at         timestamptz NULL,
    answered_at      timestamptz NULL,
    chunk_id         uuid NULL,
    chunk_index      integer NULL,
    outcome          text NULL CHECK (outcome IN ('hit', 'inflight', 'miss')),
    job_id           uuid NULL,
    wait_ms          double precision NULL,
    error            text NULL,                   -- NULL, or the error code answered
    detail           text NULL
);
CREATE INDEX chunk_demands_open_idx ON chunk_demands (requested_at) WHERE answered_at IS NULL;
CREATE INDEX chunk_demands_answered_idx ON chunk_demands (answered_at)
    WHERE answered_at IS NOT NULL;

CREATE TABLE replica_hits (
    seq              bigserial PRIMARY KEY,
    request_id       uuid NOT NULL,
    memory_id        uuid NOT NULL,
    parent_chunk_id  uuid NULL,
    pose             text NOT NULL,
    action           text NULL,
    session_id       uuid NULL,
    record_history   boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION rewind_chunks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    job record;
BEGIN
    SELECT g.id, g.initial_kind, g.depth, g.probability, (g.first_used_at IS NOT NULL) AS used
    INTO job FROM gpu_jobs g
    WHERE g.chunk_id = NEW.id AND g.status IN ('queued', 'running', 'succeeded')
    ORDER BY g.queued_at DESC, g.id DESC LIMIT 1;
    PERFORM pg_notify('rewind_chunks', json_build_object(
        'id', NEW.id, 'memory_id', NEW.memory_id, 'parent_chunk_id', NEW.parent_chunk_id,
        'pose', NEW.pose, 'action', NEW.action, 'chunk_index', NEW.chunk_index,
        'status', NEW.status, 'job_id', job.id, 'initial_kind', job.initial_kind,
        'depth', job.depth, 'probability', job.probability, 'used', coalesce(job.used, false)
    )::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_notify AFTER INSERT OR UPDATE OF status ON chunks
    FOR EACH ROW EXECUTE FUNCTION rewind_chunks_notify();

-- As every other table (migration 005): the service connects as the owner; Supabase's Data API
-- roles see nothing of these coordination tables (service_role bypasses RLS).
ALTER TABLE chunk_demands ENABLE ROW LEVEL SECURITY;
ALTER TABLE replica_hits ENABLE ROW LEVEL SECURITY;
