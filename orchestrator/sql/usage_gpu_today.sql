-- GPU-seconds per user over the jobs finished since $1 (00:00 UTC today): a job is charged to
-- the user of its session (demand: the requester's; speculative: the session it serves), or,
-- without a session, to its memory's owner (orchestrator.quotas).
SELECT coalesce(s.user_id, m.user_id) AS user_id, sum(j.gpu_seconds)::float8 AS gpu_seconds
FROM gpu_jobs j
JOIN memories m ON m.id = j.memory_id
LEFT JOIN sessions s ON s.id = j.session_id
WHERE j.finished_at >= $1 AND j.gpu_seconds IS NOT NULL
GROUP BY coalesce(s.user_id, m.user_id)
HAVING coalesce(s.user_id, m.user_id) IS NOT NULL
