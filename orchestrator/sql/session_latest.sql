SELECT * FROM sessions WHERE memory_id = $1 ORDER BY created_at DESC, id LIMIT 1
