UPDATE gpu_jobs SET kind = 'demand', promoted_at = now()
WHERE id = $1 AND kind = 'speculative'
