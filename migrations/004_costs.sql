-- Costs of the external calls made for a memory (besides GPU time, which gpu_jobs carries in
-- gpu_seconds and cost_usd): one row per billed call to Claude (scene analysis, kind 'llm') or
-- ElevenLabs (soundscape, kind 'sound'). USD is computed when the call is recorded, with the
-- prices configured then ([scene] price_per_mtok_*, [soundscape] price_per_second /
-- price_per_1k_chars), so a later price change does not rewrite history.

CREATE TABLE memory_costs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    memory_id      uuid NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('llm', 'sound')),
    backend        text NOT NULL,                 -- 'claude', 'elevenlabs'
    model          text NULL,                     -- e.g. 'claude-haiku-4-5'
    units          text NOT NULL CHECK (units IN ('tokens', 'seconds')),
    quantity       double precision NOT NULL CHECK (quantity >= 0),  -- in units
    input_tokens   integer NULL,                  -- llm: prompt tokens (image included)
    output_tokens  integer NULL,                  -- llm: answer tokens
    characters     integer NULL,                  -- sound: prompt characters sent
    usd            double precision NOT NULL CHECK (usd >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memory_costs_memory_idx ON memory_costs (memory_id);

-- One row per memory: GPU (every gpu_jobs attempt, speculative and cancelled ones included),
-- LLM and sound costs, and their total in USD. Memories with no cost yet show zeros.
CREATE VIEW v_memory_costs AS
SELECT m.id                                                   AS memory_id,
       m.created_at,
       (m.created_at AT TIME ZONE 'UTC')::date                AS day,
       g.jobs,
       g.gpu_seconds,
       g.gpu_usd,
       c.llm_calls,
       c.llm_input_tokens,
       c.llm_output_tokens,
       c.llm_usd,
       c.sound_calls,
       c.sound_seconds,
       c.sound_characters,
       c.sound_usd,
       g.gpu_usd + c.llm_usd + c.sound_usd                    AS total_usd
FROM memories m
CROSS JOIN LATERAL (
    SELECT count(*)::bigint                           AS jobs,
           coalesce(sum(j.gpu_seconds), 0)::float8    AS gpu_seconds,
           coalesce(sum(j.cost_usd), 0)::float8       AS gpu_usd
    FROM gpu_jobs j
    WHERE j.memory_id = m.id
) g
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE k.kind = 'llm')::bigint                        AS llm_calls,
           coalesce(sum(k.input_tokens) FILTER (WHERE k.kind = 'llm'), 0)::bigint  AS llm_input_tokens,
           coalesce(sum(k.output_tokens) FILTER (WHERE k.kind = 'llm'), 0)::bigint AS llm_output_tokens,
           coalesce(sum(k.usd) FILTER (WHERE k.kind = 'llm'), 0)::float8         AS llm_usd,
           count(*) FILTER (WHERE k.kind = 'sound')::bigint                      AS sound_calls,
           coalesce(sum(k.quantity) FILTER (WHERE k.kind = 'sound'), 0)::float8  AS sound_seconds,
           coalesce(sum(k.characters) FILTER (WHERE k.kind = 'sound'), 0)::bigint AS sound_characters,
           coalesce(sum(k.usd) FILTER (WHERE k.kind = 'sound'), 0)::float8       AS sound_usd
    FROM memory_costs k
    WHERE k.memory_id = m.id
) c;
