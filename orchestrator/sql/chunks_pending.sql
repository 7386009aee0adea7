SELECT c.*, s.id AS session_id
FROM chunks c
LEFT JOIN LATERAL (
    SELECT r.session_id AS id FROM chunk_requests r
    WHERE r.chunk_id = c.id ORDER BY r.requested_at LIMIT 1
) s ON true
WHERE c.status = 'pending'
ORDER BY c.created_at, c.id
