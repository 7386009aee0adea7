UPDATE gpu_jobs
SET status = 'succeeded', finished_at = now(), gpu_seconds = $2, cold_start = $3
WHERE id = $1
