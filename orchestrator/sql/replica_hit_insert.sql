-- A hit a replica answered from its view: the scheduler moves its live cursor and learns from it.
INSERT INTO replica_hits (request_id, memory_id, parent_chunk_id, pose, action, session_id,
                          record_history)
VALUES ($1, $2, $3, $4, $5, $6, $7)
