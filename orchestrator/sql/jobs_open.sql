SELECT j.*, c.parent_chunk_id, c.pose, c.action, c.status AS chunk_status
FROM gpu_jobs j JOIN chunks c ON c.id = j.chunk_id
WHERE j.status IN ('queued', 'running')
ORDER BY j.queued_at, j.id
