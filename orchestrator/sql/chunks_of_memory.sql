SELECT * FROM chunks WHERE memory_id = $1 ORDER BY chunk_index, created_at, id
