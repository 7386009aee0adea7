INSERT INTO sessions (id, memory_id, cursor_chunk_id, chunk_path, policy, arm, user_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *
