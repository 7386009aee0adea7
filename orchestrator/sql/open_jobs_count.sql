-- GPU slots held across the cluster, by kind (an API replica's health and metrics).
SELECT kind, count(*)::int AS n FROM gpu_jobs WHERE status IN ('queued', 'running') GROUP BY kind
