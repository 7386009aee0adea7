-- The viewer now watches $2: move the cursor and append it to the journey.
UPDATE sessions
SET cursor_chunk_id = $2, chunk_path = chunk_path || to_jsonb($2::text), last_seen_at = now()
WHERE id = $1
