-- Rewind foundation schema: the seed's memories, chunks and sessions tables, plus gpu_jobs.
-- Forward-only; applied once, in a transaction, recorded in schema_migrations.

CREATE TABLE memories (
    id                  uuid PRIMARY KEY,
    user_id             uuid NULL,                 -- FK to auth.users once auth exists (seed)
    prompt              text NULL,
    scene_description   text NULL,
    scene_mood          text NULL,
    anchor_points       jsonb NULL,                -- [{label, x, y}], x and y in 0..1
    sound_keywords      jsonb NULL,                -- ["ocean waves", ...]
    scene_source        text NULL,                 -- which analyser produced the scene
    original_image_path text NOT NULL,             -- key in bucket "originals"
    image_width         integer NOT NULL,
    image_height        integer NOT NULL,
    audio_path          text NULL,                 -- key in bucket "audio", NULL = no soundscape
    audio_content_type  text NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- A chunk row is the claim on a chunk key; its status says whether the MP4 exists yet.
-- pending: a job is (or will be) generating it; ready: video and last frame stored;
-- failed / cancelled: the last attempt did not finish; the key may be generated again.
CREATE TABLE chunks (
    id               uuid PRIMARY KEY,
    memory_id        uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    parent_chunk_id  uuid NULL REFERENCES chunks(id) ON DELETE CASCADE,
    chunk_index      integer NOT NULL CHECK (chunk_index >= 0),
    pose             text NOT NULL,                -- canonical HY-WorldPlay pose
    action           text NULL,                    -- the frontend action, when the pose is one
    profile_key      text NOT NULL,                -- GenerationProfile.key()
    profile          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'ready', 'failed', 'cancelled')),
    video_path       text NULL,                    -- key in bucket "videos"
    last_frame_path  text NULL,                    -- key in bucket "frames"
    video_bytes      bigint NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    ready_at         timestamptz NULL,
    CONSTRAINT chunks_ready_has_blobs
        CHECK (status <> 'ready' OR (video_path IS NOT NULL AND last_frame_path IS NOT NULL)),
    -- The chunk key: a second generation of the same chunk is impossible.
    CONSTRAINT chunks_chunk_key UNIQUE NULLS NOT DISTINCT
        (memory_id, parent_chunk_id, pose, profile_key)
);
CREATE INDEX chunks_memory_idx ON chunks (memory_id, chunk_index);
CREATE INDEX chunks_parent_idx ON chunks (parent_chunk_id);

CREATE TABLE sessions (
    id               uuid PRIMARY KEY,
    memory_id        uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    user_id          uuid NULL,
    chunk_path       jsonb NOT NULL DEFAULT '[]',  -- ordered chunk ids of the journey (seed)
    cursor_chunk_id  uuid NULL REFERENCES chunks(id) ON DELETE SET NULL,
    policy           text NOT NULL DEFAULT 'none',
    arm              text NOT NULL DEFAULT 'default',
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_memory_idx ON sessions (memory_id, created_at DESC);

-- One row per generation attempt.
CREATE TABLE gpu_jobs (
    id               uuid PRIMARY KEY,
    chunk_id         uuid NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    memory_id        uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    session_id       uuid NULL REFERENCES sessions(id) ON DELETE SET NULL,
    kind             text NOT NULL CHECK (kind IN ('demand', 'speculative')),
    initial_kind     text NOT NULL CHECK (initial_kind IN ('demand', 'speculative')),
    status           text NOT NULL
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed',
                                       'cancelled', 'interrupted')),
    attempt          integer NOT NULL DEFAULT 1,
    backend          text NOT NULL,
    external_id      text NULL,                    -- e.g. a Modal FunctionCall id
    policy           text NULL,                    -- policy that proposed it (speculative)
    probability      double precision NULL,        -- P(requested) at admission
    depth            integer NULL,                 -- levels below the cursor at admission
    cancel_reason    text NULL,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz NULL,
    promoted_at      timestamptz NULL,             -- speculative -> demand (in-flight hit)
    finished_at      timestamptz NULL,
    gpu_seconds      double precision NULL,        -- GPU-seconds billed
    cold_start       boolean NULL,
    error            text NULL
);
CREATE INDEX gpu_jobs_chunk_idx ON gpu_jobs (chunk_id);
CREATE INDEX gpu_jobs_open_idx ON gpu_jobs (status) WHERE status IN ('queued', 'running');
