-- An API replica accepts a miss / in-flight hit: durable before it waits (issue 16).
INSERT INTO chunk_demands (request_id, memory_id, parent_chunk_id, pose, action, session_id,
                           record_history, replica)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
