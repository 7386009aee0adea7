-- Answered demands are kept a while (a replica reads its answer), then dropped.
DELETE FROM chunk_demands WHERE answered_at < now() - make_interval(secs => $1)
