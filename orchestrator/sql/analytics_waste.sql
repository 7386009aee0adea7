-- Waste and cost. $3..$5: group by policy, arm, day. GPU time from every job attempt in the
-- window (queued_at); served chunks from requests in the window (requested_at).
WITH jobs AS (
    SELECT CASE WHEN $3 THEN j.policy END AS policy,
           CASE WHEN $4 THEN j.arm END AS arm,
           CASE WHEN $5 THEN j.day END AS day,
           coalesce(sum(j.gpu_seconds) FILTER (WHERE j.initial_kind = 'speculative'), 0)
               AS speculative_gpu_s,
           coalesce(sum(j.gpu_seconds)
                    FILTER (WHERE j.initial_kind = 'speculative' AND NOT j.used), 0)
               AS unused_gpu_s,
           coalesce(sum(j.gpu_seconds), 0) AS gpu_s,
           coalesce(sum(j.cost_usd), 0) AS usd
    FROM v_jobs j
    WHERE j.queued_at >= coalesce($1::timestamptz, '-infinity')
      AND j.queued_at < coalesce($2::timestamptz, 'infinity')
    GROUP BY 1, 2, 3
), served AS (
    SELECT CASE WHEN $3 THEN r.policy END AS policy,
           CASE WHEN $4 THEN r.arm END AS arm,
           CASE WHEN $5 THEN r.day END AS day,
           count(DISTINCT r.chunk_id) AS served_chunks
    FROM v_requests r
    WHERE r.served_at IS NOT NULL
      AND NOT r.abandoned
      AND r.requested_at >= coalesce($1::timestamptz, '-infinity')
      AND r.requested_at < coalesce($2::timestamptz, 'infinity')
    GROUP BY 1, 2, 3
)
SELECT coalesce(j.policy, s.policy) AS policy,
       coalesce(j.arm, s.arm) AS arm,
       coalesce(j.day, s.day) AS day,
       coalesce(j.speculative_gpu_s, 0) AS speculative_gpu_s,
       coalesce(j.unused_gpu_s, 0) AS unused_gpu_s,
       j.unused_gpu_s / nullif(j.speculative_gpu_s, 0) AS waste_ratio,
       coalesce(j.gpu_s, 0) AS gpu_s,
       coalesce(j.usd, 0) AS usd,
       coalesce(s.served_chunks, 0) AS served_chunks,
       j.gpu_s / nullif(s.served_chunks, 0) AS gpu_s_per_served_chunk,
       j.usd / nullif(s.served_chunks, 0) AS usd_per_served_chunk
FROM jobs j
-- FULL JOIN needs an equality condition: NULL (a dimension not grouped by) becomes ''/epoch.
FULL JOIN served s
  ON coalesce(j.policy, '') = coalesce(s.policy, '')
 AND coalesce(j.arm, '') = coalesce(s.arm, '')
 AND coalesce(j.day, 'epoch'::date) = coalesce(s.day, 'epoch'::date)
ORDER BY 1, 2, 3
