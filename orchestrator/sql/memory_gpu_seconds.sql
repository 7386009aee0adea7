SELECT coalesce(sum(gpu_seconds), 0) FROM gpu_jobs WHERE memory_id = $1
