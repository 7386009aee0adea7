-- Real traffic as traces: every answered request that named an action, per session, in order.
-- $1/$2: [since, until) or NULL for open.
SELECT r.session_id, r.memory_id, r.action, r.requested_at, r.served_at
FROM chunk_requests r
WHERE r.session_id IS NOT NULL AND r.action IS NOT NULL AND r.served_at IS NOT NULL
  AND r.parent_chunk_id IS NOT NULL
  AND r.requested_at >= coalesce($1::timestamptz, '-infinity')
  AND r.requested_at < coalesce($2::timestamptz, 'infinity')
ORDER BY r.session_id, r.requested_at, r.id
