-- The most recent session of user $2 on memory $1 (a request that names no session).
SELECT * FROM sessions WHERE memory_id = $1 AND user_id = $2 ORDER BY created_at DESC, id LIMIT 1
