-- Requests whose client went away before the answer arrived (issue 12). The viewer never saw
-- the chunk, so such a request is not "served": analytics count it as abandoned, leave it out of
-- wait percentiles and of served chunks. Its outcome (hit / inflight / miss) is kept: it says
-- what the request found when it was made.
ALTER TABLE chunk_requests ADD COLUMN abandoned_at timestamptz NULL;  -- when the client left

-- v_requests expanded r.* when it was created: rebuild it so the new column (and a flag) show.
DROP VIEW v_requests;
CREATE VIEW v_requests AS
SELECT r.*,
       coalesce(r.speculated_depth, 0)          AS depth,
       (r.requested_at AT TIME ZONE 'UTC')::date AS day,
       (r.abandoned_at IS NOT NULL)             AS abandoned
FROM chunk_requests r;

-- The rebuilt view keeps migration 005's rule: it runs with the caller's rights, so row-level
-- security of chunk_requests applies through it too.
ALTER VIEW v_requests SET (security_invoker = true);
