-- A session's walk so far ($1 = session id): its requests after the root chunk (the root is
-- never speculated, so it is not counted) by outcome, and the GPU time and USD of every job
-- attempt made for the session (demand and speculative, cancelled ones included).
SELECT s.id AS session_id,
       s.memory_id,
       r.requests,
       r.hits,
       r.inflight,
       r.misses,
       r.mean_wait_ms,
       j.jobs,
       j.speculative_jobs,
       j.gpu_seconds,
       j.usd
FROM sessions s
CROSS JOIN LATERAL (
    SELECT count(*)::bigint                                    AS requests,
           count(*) FILTER (WHERE outcome = 'hit')::bigint     AS hits,
           count(*) FILTER (WHERE outcome = 'inflight')::bigint AS inflight,
           count(*) FILTER (WHERE outcome = 'miss')::bigint    AS misses,
           avg(wait_ms)::float8                                AS mean_wait_ms
    FROM chunk_requests
    WHERE session_id = s.id AND parent_chunk_id IS NOT NULL
) r
CROSS JOIN LATERAL (
    SELECT count(*)::bigint                                       AS jobs,
           count(*) FILTER (WHERE initial_kind = 'speculative')::bigint AS speculative_jobs,
           coalesce(sum(gpu_seconds), 0)::float8                  AS gpu_seconds,
           coalesce(sum(cost_usd), 0)::float8                     AS usd
    FROM gpu_jobs
    WHERE session_id = s.id
) j
WHERE s.id = $1;
