SELECT user_id FROM sessions WHERE id = $1
