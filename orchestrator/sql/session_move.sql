-- The viewer now watches $2: move the cursor and append it to the journey.
UPDATE sessions
SET cursor_chunk_id = $2::uuid,
    chunk_path = chunk_path || jsonb_build_array($2::uuid::text),
    last_seen_at = now()
WHERE id = $1
