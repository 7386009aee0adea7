-- Share a memory read-only ($2 true) or stop sharing it ($2 false).
UPDATE memories SET shared = $2 WHERE id = $1 RETURNING user_id, shared
