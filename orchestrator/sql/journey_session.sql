-- The session a journey replays, with its memory's soundscape (NULL audio_path = none).
SELECT s.id, s.memory_id, m.audio_path, m.audio_content_type
FROM sessions s
JOIN memories m ON m.id = s.memory_id
WHERE s.id = $1
