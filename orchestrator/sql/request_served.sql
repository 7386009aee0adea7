UPDATE chunk_requests SET wait_ms = $2, served_at = now(), error = $3 WHERE id = $1
