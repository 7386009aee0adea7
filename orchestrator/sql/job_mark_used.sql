UPDATE gpu_jobs SET first_used_at = now() WHERE id = $1 AND first_used_at IS NULL
