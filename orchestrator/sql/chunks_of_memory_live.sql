-- A memory's chunks, parents first, each with the attempt that produced (or is producing) it:
-- what the live state needs to answer hits without asking again.
SELECT id, parent_chunk_id, pose, action, status, chunk_index,
       job_id, initial_kind, depth, probability, used
FROM chunks_with_producer
WHERE memory_id = $1
ORDER BY chunk_index, created_at, id
