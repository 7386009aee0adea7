-- Which attempt produced (or is producing) a chunk, in one place: the newest queued, running or
-- succeeded gpu_jobs row of the chunk. The live state's load of a memory, a replica's catch-up
-- and its single-chunk re-read all read it here, and so does the rewind_chunks notification
-- (migration 007 wrote that rule into its trigger; the trigger now reads this view).
CREATE VIEW chunks_with_producer AS
SELECT c.id, c.memory_id, c.parent_chunk_id, c.pose, c.action, c.status, c.chunk_index,
       c.created_at, c.ready_at,
       j.id AS job_id, j.initial_kind, j.depth, j.probability,
       (j.first_used_at IS NOT NULL) AS used
FROM chunks c
LEFT JOIN LATERAL (
    SELECT g.id, g.initial_kind, g.depth, g.probability, g.first_used_at FROM gpu_jobs g
    WHERE g.chunk_id = c.id AND g.status IN ('queued', 'running', 'succeeded')
    ORDER BY g.queued_at DESC, g.id DESC
    LIMIT 1
) j ON true;

-- As migration 006's view: it runs with the caller's rights, so row-level security of chunks
-- and gpu_jobs applies through it.
ALTER VIEW chunks_with_producer SET (security_invoker = true);

CREATE OR REPLACE FUNCTION rewind_chunks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    job record;
BEGIN
    SELECT p.job_id, p.initial_kind, p.depth, p.probability, p.used
    INTO job FROM chunks_with_producer p WHERE p.id = NEW.id;
    PERFORM pg_notify('rewind_chunks', json_build_object(
        'id', NEW.id, 'memory_id', NEW.memory_id, 'parent_chunk_id', NEW.parent_chunk_id,
        'pose', NEW.pose, 'action', NEW.action, 'chunk_index', NEW.chunk_index,
        'status', NEW.status, 'job_id', job.job_id, 'initial_kind', job.initial_kind,
        'depth', job.depth, 'probability', job.probability, 'used', coalesce(job.used, false)
    )::text);
    RETURN NULL;
END
$$;
