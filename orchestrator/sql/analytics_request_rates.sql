-- Request hit rates. $1/$2: [since, until) or NULL for open; $3..$7: group by policy, arm,
-- day, depth, action (a dimension not grouped by comes back NULL).
SELECT CASE WHEN $3 THEN r.policy END AS policy,
       CASE WHEN $4 THEN r.arm END AS arm,
       CASE WHEN $5 THEN r.day END AS day,
       CASE WHEN $6 THEN r.depth END AS depth,
       CASE WHEN $7 THEN r.action END AS action,
       count(*) AS requests,
       count(*) FILTER (WHERE r.outcome = 'hit') AS hits,
       count(*) FILTER (WHERE r.outcome = 'inflight') AS inflight,
       count(*) FILTER (WHERE r.outcome = 'miss') AS misses,
       count(*) FILTER (WHERE r.abandoned) AS abandoned,
       (count(*) FILTER (WHERE r.outcome = 'hit'))::float8 / count(*) AS hit_rate,
       (count(*) FILTER (WHERE r.outcome = 'inflight'))::float8 / count(*) AS inflight_rate,
       (count(*) FILTER (WHERE r.outcome = 'miss'))::float8 / count(*) AS miss_rate
FROM v_requests r
WHERE r.requested_at >= coalesce($1::timestamptz, '-infinity')
  AND r.requested_at < coalesce($2::timestamptz, 'infinity')
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
