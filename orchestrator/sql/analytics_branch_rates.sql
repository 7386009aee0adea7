-- Branch hit rates over speculative jobs that succeeded. Same parameters as request rates;
-- depth is the job's depth below the cursor when it was admitted.
SELECT CASE WHEN $3 THEN j.policy END AS policy,
       CASE WHEN $4 THEN j.arm END AS arm,
       CASE WHEN $5 THEN j.day END AS day,
       CASE WHEN $6 THEN j.job_depth END AS depth,
       CASE WHEN $7 THEN j.action END AS action,
       count(*) AS speculated,
       count(*) FILTER (WHERE j.used) AS used,
       (count(*) FILTER (WHERE j.used))::float8 / count(*) AS branch_hit_rate,
       coalesce(sum(j.gpu_seconds), 0) AS speculated_gpu_s,
       coalesce(sum(j.gpu_seconds) FILTER (WHERE j.used), 0) AS used_gpu_s,
       coalesce(sum(j.gpu_seconds) FILTER (WHERE j.used), 0)
           / nullif(sum(j.gpu_seconds), 0) AS gpu_weighted_branch_hit_rate
FROM v_jobs j
WHERE j.initial_kind = 'speculative' AND j.status = 'succeeded'
  AND j.queued_at >= coalesce($1::timestamptz, '-infinity')
  AND j.queued_at < coalesce($2::timestamptz, 'infinity')
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
