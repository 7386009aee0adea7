UPDATE memories SET audio_path = $2, audio_content_type = $3 WHERE id = $1
