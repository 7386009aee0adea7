-- The viewer now watches $2: move the cursor and append it to the journey (once: asking again
-- for the chunk already watched does not repeat it).
UPDATE sessions
SET cursor_chunk_id = $2::uuid,
    chunk_path = CASE WHEN chunk_path -> -1 = to_jsonb($2::uuid::text) THEN chunk_path
                      ELSE chunk_path || jsonb_build_array($2::uuid::text) END,
    last_seen_at = now()
WHERE id = $1
