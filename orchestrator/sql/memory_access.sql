-- Who may see a memory: its owner and its read-only share flag (orchestrator.ownership).
SELECT user_id, shared FROM memories WHERE id = $1
