-- A failed or cancelled key is generated again: back to pending, only if nobody else did it.
UPDATE chunks SET status = 'pending'
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING *
