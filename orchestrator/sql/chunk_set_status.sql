-- failed / cancelled: only a pending chunk changes (a ready chunk is never downgraded).
UPDATE chunks SET status = $2 WHERE id = $1 AND status = 'pending'
