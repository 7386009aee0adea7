-- One billed external call for a memory (kind 'llm' | 'sound'); see migrations/004_costs.sql.
INSERT INTO memory_costs
    (memory_id, kind, backend, model, units, quantity, input_tokens, output_tokens, characters, usd)
VALUES ($1, $2, $3, $4, $5, $6::float8, $7, $8, $9, $10::float8)
