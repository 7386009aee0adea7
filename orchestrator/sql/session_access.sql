-- Whose a session is, and on which memory (orchestrator.ownership).
SELECT user_id, memory_id FROM sessions WHERE id = $1
