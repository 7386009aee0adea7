-- failed / cancelled / interrupted, with what was spent so far ($6: USD per GPU-second).
UPDATE gpu_jobs
SET status = $2, finished_at = now(), error = $3, cancel_reason = $4, gpu_seconds = $5::float8,
    cost_usd = $5::float8 * $6::float8
WHERE id = $1 AND status IN ('queued', 'running')
