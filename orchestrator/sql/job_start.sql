-- A queued attempt starts. Only from 'queued': a cancellation recorded while this UPDATE was in
-- flight (the job's task cancelled mid-await) must not be overwritten by 'running'.
UPDATE gpu_jobs SET status = 'running', started_at = now() WHERE id = $1 AND status = 'queued'
