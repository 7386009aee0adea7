-- Analytics: cost on every job, and the views analysts query (README "Analytics").
--
-- Definitions (exact, so two analysts compute the same number):
-- * request: one chunk_requests row. outcome hit = the chunk was ready when asked; inflight = it
--   was being generated; miss = nobody had started it. Rates are counts / requests in the group.
-- * depth of a request: the depth below the viewer's cursor at which its chunk had been
--   speculated (1 = a child), 0 when it was never speculated (generated on demand).
-- * speculated chunk: a gpu_jobs row with initial_kind = 'speculative'. It is "used" when any
--   request asked for its chunk while it ran or after it finished (first_used_at IS NOT NULL).
-- * branch hit rate: used speculative jobs that succeeded / speculative jobs that succeeded;
--   weighted: their GPU-seconds over all succeeded speculative GPU-seconds.
-- * waste ratio: GPU-seconds of speculative jobs never used (any status, cancelled included)
--   / GPU-seconds of all speculative jobs.
-- * served chunk: a distinct chunk that at least one request received.

ALTER TABLE gpu_jobs ADD COLUMN cost_usd double precision NULL;   -- gpu_seconds x price
ALTER TABLE gpu_jobs ADD COLUMN arm_name text NULL;               -- the session's experiment arm

CREATE VIEW v_requests AS
SELECT r.*,
       coalesce(r.speculated_depth, 0)          AS depth,
       (r.requested_at AT TIME ZONE 'UTC')::date AS day
FROM chunk_requests r;

-- Every job with the dimensions analysts group by. policy / arm are the session's (for a
-- speculative job: the policy that proposed it); depth is 0 for demand jobs.
CREATE VIEW v_jobs AS
SELECT j.*,
       c.action,
       j.arm_name                               AS arm,
       coalesce(j.depth, 0)                     AS job_depth,
       (j.queued_at AT TIME ZONE 'UTC')::date   AS day,
       (j.first_used_at IS NOT NULL)            AS used
FROM gpu_jobs j
JOIN chunks c ON c.id = j.chunk_id;
