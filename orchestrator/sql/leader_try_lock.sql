-- Scheduler election: true when this session now holds (or already held) the leader lock.
SELECT pg_try_advisory_lock($1)
