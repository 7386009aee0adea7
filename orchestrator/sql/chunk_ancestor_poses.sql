-- Poses of a chunk and its ancestors, root first: $1 = chunk id (the new chunk's parent).
WITH RECURSIVE up (id, parent_chunk_id, pose, depth) AS (
    SELECT id, parent_chunk_id, pose, 0 FROM chunks WHERE id = $1
    UNION ALL
    SELECT c.id, c.parent_chunk_id, c.pose, up.depth + 1
    FROM chunks c JOIN up ON c.id = up.parent_chunk_id
)
SELECT pose FROM up ORDER BY depth DESC;
