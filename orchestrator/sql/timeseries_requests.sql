-- Chunk requests after the root chunk, per time bucket. $1 bucket width in seconds, $2 since,
-- $3 until (timestamptz; NULL = open). The root chunk is excluded: no policy can speculate it.
-- Percentiles are percentile_cont (linear) over answered requests' wait_ms.
SELECT date_bin(make_interval(secs => $1), requested_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')
                                                               AS bucket,
       count(*)::bigint                                        AS requests,
       count(*) FILTER (WHERE outcome = 'hit')::bigint         AS hits,
       count(*) FILTER (WHERE outcome = 'inflight')::bigint    AS inflight,
       count(*) FILTER (WHERE outcome = 'miss')::bigint        AS misses,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms)    AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms)   AS p95_ms
FROM chunk_requests
WHERE parent_chunk_id IS NOT NULL
  AND ($2::timestamptz IS NULL OR requested_at >= $2)
  AND ($3::timestamptz IS NULL OR requested_at < $3)
GROUP BY 1
ORDER BY 1;
