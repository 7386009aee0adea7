-- A replica's catch-up: chunks of its loaded memories that changed status since $2 (NOTIFY may
-- have been missed while its listening connection was down), with their producing attempt.
SELECT c.id, c.memory_id, c.parent_chunk_id, c.pose, c.action, c.status, c.chunk_index,
       j.id AS job_id, j.initial_kind, j.depth, j.probability,
       coalesce(j.first_used_at IS NOT NULL, false) AS used
FROM chunks c
LEFT JOIN LATERAL (
    SELECT g.id, g.initial_kind, g.depth, g.probability, g.first_used_at FROM gpu_jobs g
    WHERE g.chunk_id = c.id AND g.status IN ('queued', 'running', 'succeeded')
    ORDER BY g.queued_at DESC, g.id DESC
    LIMIT 1
) j ON true
WHERE c.memory_id = ANY($1::uuid[]) AND coalesce(c.ready_at, c.created_at) >= $2
ORDER BY c.chunk_index, c.created_at, c.id
