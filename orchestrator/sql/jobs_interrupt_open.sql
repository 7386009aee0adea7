-- At start-up: attempts a previous process left queued or running did not finish here.
UPDATE gpu_jobs
SET status = 'interrupted', finished_at = now(), error = $1
WHERE status IN ('queued', 'running')
RETURNING id, chunk_id, kind, external_id
