-- Claim a chunk key. Returns the new row, or nothing when the key already has a row.
INSERT INTO chunks (id, memory_id, parent_chunk_id, chunk_index, pose, action, profile_key, profile)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT ON CONSTRAINT chunks_chunk_key DO NOTHING
RETURNING *
