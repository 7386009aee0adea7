-- Mark requests abandoned: their client disconnected before the answer. $1: ids, $2: when.
UPDATE chunk_requests SET abandoned_at = $2 WHERE id = ANY($1::uuid[]) AND abandoned_at IS NULL
