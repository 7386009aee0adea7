-- A request answered at once (a cache hit), written behind in a batch: requested and served at $14.
INSERT INTO chunk_requests (id, session_id, memory_id, parent_chunk_id, chunk_id, job_id, pose,
                            action, outcome, policy, arm, speculated_depth,
                            speculated_probability, wait_ms, requested_at, served_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $14)
ON CONFLICT (id) DO NOTHING
