UPDATE chunks
SET status = 'ready', video_path = $2, last_frame_path = $3, video_bytes = $4, ready_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING *
