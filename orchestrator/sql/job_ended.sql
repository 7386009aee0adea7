-- failed / cancelled / interrupted, with what was spent so far.
UPDATE gpu_jobs
SET status = $2, finished_at = now(), error = $3, cancel_reason = $4, gpu_seconds = $5
WHERE id = $1 AND status IN ('queued', 'running')
