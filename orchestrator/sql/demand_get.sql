SELECT * FROM chunk_demands WHERE request_id = $1
