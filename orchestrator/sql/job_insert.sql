INSERT INTO gpu_jobs (id, chunk_id, memory_id, session_id, kind, initial_kind, status, attempt,
                      backend, policy, probability, depth, arm_name)
VALUES ($1, $2, $3, $4, $5, $5, 'queued',
        (SELECT count(*) + 1 FROM gpu_jobs WHERE chunk_id = $2), $6, $7, $8, $9, $10)
