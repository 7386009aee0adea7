INSERT INTO chunk_requests (id, session_id, memory_id, parent_chunk_id, chunk_id, job_id, pose,
                            action, outcome, policy, arm, speculated_depth,
                            speculated_probability)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id) DO NOTHING  -- a demand served again by the next leader (issue 16)
