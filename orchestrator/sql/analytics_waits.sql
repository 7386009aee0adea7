-- Wait percentiles (milliseconds, continuous interpolation) over answered requests (a request
-- whose client went away first is abandoned, not answered).
SELECT CASE WHEN $3 THEN r.policy END AS policy,
       CASE WHEN $4 THEN r.arm END AS arm,
       CASE WHEN $5 THEN r.day END AS day,
       CASE WHEN $6 THEN r.depth END AS depth,
       CASE WHEN $7 THEN r.action END AS action,
       count(*) AS requests,
       avg(r.wait_ms) AS mean_ms,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY r.wait_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY r.wait_ms) AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY r.wait_ms) AS p99_ms
FROM v_requests r
WHERE r.wait_ms IS NOT NULL
  AND NOT r.abandoned
  AND r.requested_at >= coalesce($1::timestamptz, '-infinity')
  AND r.requested_at < coalesce($2::timestamptz, 'infinity')
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
