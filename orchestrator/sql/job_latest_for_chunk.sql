-- The attempt that produced (or is producing) a chunk.
SELECT * FROM gpu_jobs
WHERE chunk_id = $1 AND status IN ('queued', 'running', 'succeeded')
ORDER BY queued_at DESC, id DESC
LIMIT 1
