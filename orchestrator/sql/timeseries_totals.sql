-- The window's chunk requests after the root chunk (the dashboard's headline), and the span
-- of all requests' times (to choose a bucket width). $1 since, $2 until (NULL = open).
SELECT count(*) FILTER (WHERE parent_chunk_id IS NOT NULL)::bigint                     AS requests,
       count(*) FILTER (WHERE parent_chunk_id IS NOT NULL AND outcome = 'hit')::bigint AS hits,
       count(*) FILTER (WHERE parent_chunk_id IS NOT NULL
                        AND outcome = 'inflight')::bigint                             AS inflight,
       count(*) FILTER (WHERE parent_chunk_id IS NOT NULL AND outcome = 'miss')::bigint AS misses,
       count(*) FILTER (WHERE parent_chunk_id IS NULL)::bigint                         AS roots,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms)
           FILTER (WHERE parent_chunk_id IS NOT NULL)                                 AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms)
           FILTER (WHERE parent_chunk_id IS NOT NULL)                                 AS p95_ms,
       min(requested_at)                                                               AS first_at,
       max(requested_at)                                                               AS last_at
FROM chunk_requests
WHERE ($1::timestamptz IS NULL OR requested_at >= $1)
  AND ($2::timestamptz IS NULL OR requested_at < $2);
