-- A memory's costs: GPU-seconds and USD summed over its gpu_jobs, LLM tokens and sound seconds
-- summed over its memory_costs (the v_memory_costs view); no row for an unknown memory.
SELECT * FROM v_memory_costs WHERE memory_id = $1
