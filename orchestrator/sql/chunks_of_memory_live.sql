-- A memory's chunks, parents first, each with the attempt that produced (or is producing) it:
-- what the live state needs to answer hits without asking again.
SELECT c.id, c.parent_chunk_id, c.pose, c.action, c.status, c.chunk_index,
       j.id AS job_id, j.initial_kind, j.depth, j.probability,
       (j.first_used_at IS NOT NULL) AS used
FROM chunks c
LEFT JOIN LATERAL (
    SELECT g.id, g.initial_kind, g.depth, g.probability, g.first_used_at FROM gpu_jobs g
    WHERE g.chunk_id = c.id AND g.status IN ('queued', 'running', 'succeeded')
    ORDER BY g.queued_at DESC, g.id DESC
    LIMIT 1
) j ON true
WHERE c.memory_id = $1
ORDER BY c.chunk_index, c.created_at, c.id
