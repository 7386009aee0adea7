-- The scheduler $1 takes unanswered demands it is not serving yet ($3: the ones it is), oldest
-- first: new ones, and those a leader that died had taken. SKIP LOCKED: two schedulers can never
-- take the same row at the same moment.
UPDATE chunk_demands d
SET taken_by = $1, taken_at = now()
FROM (
    SELECT request_id FROM chunk_demands
    WHERE answered_at IS NULL AND NOT (request_id = ANY($3::uuid[]))
    ORDER BY requested_at, request_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) t
WHERE d.request_id = t.request_id
RETURNING d.*, extract(epoch FROM now() - d.requested_at)::float8 AS age_s
