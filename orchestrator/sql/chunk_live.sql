-- One chunk with the attempt that produced (or produces) it: a replica re-reads a parent its
-- view does not show ready yet (a notification may trail the answer that named it).
SELECT id, memory_id, parent_chunk_id, pose, action, status, chunk_index,
       job_id, initial_kind, depth, probability, used
FROM chunks_with_producer
WHERE id = $1
