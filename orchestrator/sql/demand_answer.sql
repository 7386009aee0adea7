-- The scheduler answered a replica's demand; the replica waiting on it hears 'rewind_answers'.
WITH answered AS (
    UPDATE chunk_demands
    SET answered_at = now(), chunk_id = $2, chunk_index = $3, outcome = $4, job_id = $5,
        wait_ms = $6, error = $7, detail = $8
    WHERE request_id = $1 AND answered_at IS NULL
    RETURNING request_id
)
SELECT pg_notify('rewind_answers', request_id::text) FROM answered
