-- Whether some session holds the scheduler's advisory lock (key $1 < 2^31: classid 0).
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 0 AND objid = $1::bigint::oid AND objsubid = 1
      AND granted
)
