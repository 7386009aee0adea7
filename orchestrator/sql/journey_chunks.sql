-- The ready chunks of a session's journey, in path order. chunk_path is a JSON array of chunk
-- ids; a cursor move appends. A repeat of the id just before it is not a move (serving the root
-- re-appends the id the session was created with) and is dropped; later revisits are kept.
WITH path AS (
    SELECT p.chunk_id,
           p.ord,
           lag(p.chunk_id) OVER (ORDER BY p.ord) AS previous
    FROM sessions s
    CROSS JOIN LATERAL jsonb_array_elements_text(s.chunk_path::jsonb)
        WITH ORDINALITY AS p(chunk_id, ord)
    WHERE s.id = $1
)
SELECT path.ord, c.id, c.video_path, c.profile
FROM path
JOIN chunks c ON c.id = path.chunk_id::uuid
WHERE path.previous IS DISTINCT FROM path.chunk_id
  AND c.status = 'ready'
  AND c.video_path IS NOT NULL
ORDER BY path.ord
