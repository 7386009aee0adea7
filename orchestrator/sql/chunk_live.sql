-- One chunk with the attempt that produced (or produces) it: a replica re-reads a parent its
-- view does not show ready yet (a notification may trail the answer that named it).
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
WHERE c.id = $1
