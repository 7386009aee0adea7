-- The backend's id for a job's remote call (a Modal FunctionCall id), stored right after submit.
UPDATE gpu_jobs SET external_id = $2 WHERE id = $1
