-- GPU-seconds per time bucket and initial job kind (demand / speculative), each attempt counted
-- in the bucket it finished in. $1 bucket width in seconds, $2 since, $3 until (NULL = open).
SELECT date_bin(make_interval(secs => $1), finished_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')
                                                AS bucket,
       initial_kind                             AS kind,
       count(*)::bigint                         AS jobs,
       coalesce(sum(gpu_seconds), 0)::float8    AS gpu_s
FROM gpu_jobs
WHERE finished_at IS NOT NULL
  AND ($2::timestamptz IS NULL OR finished_at >= $2)
  AND ($3::timestamptz IS NULL OR finished_at < $3)
GROUP BY 1, 2
ORDER BY 1, 2;
