SELECT * FROM chunks
WHERE memory_id = $1 AND parent_chunk_id IS NOT DISTINCT FROM $2 AND pose = $3 AND profile_key = $4
