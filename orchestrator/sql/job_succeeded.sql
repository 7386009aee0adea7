UPDATE gpu_jobs
SET status = 'succeeded', finished_at = now(), gpu_seconds = $2::float8, cold_start = $3,
    cost_usd = $2::float8 * $4::float8
WHERE id = $1
