-- A replica's catch-up: chunks of its loaded memories that changed status since $2 (NOTIFY may
-- have been missed while its listening connection was down), with their producing attempt.
SELECT id, memory_id, parent_chunk_id, pose, action, status, chunk_index,
       job_id, initial_kind, depth, probability, used
FROM chunks_with_producer
WHERE memory_id = ANY($1::uuid[]) AND coalesce(ready_at, created_at) >= $2
ORDER BY chunk_index, created_at, id
