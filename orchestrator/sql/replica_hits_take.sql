-- The scheduler consumes replicas' hits in commit order of their ids (at most once).
DELETE FROM replica_hits
WHERE seq IN (SELECT seq FROM replica_hits ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING *
