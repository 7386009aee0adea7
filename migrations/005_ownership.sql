-- Users and ownership (issue 14): the owner's share flag, the FK to Supabase's auth.users, and
-- row-level security on every table, mirroring the API's rules (orchestrator/ownership.py):
--   * a memory is its owner's (memories.user_id); a shared memory is readable by every
--     signed-in user (a token with a sub); only the owner changes it;
--   * a chunk is readable when its memory is;
--   * a session is its owner's alone;
--   * GPU jobs, chunk requests and costs are readable by the memory's owner (and a request
--     by the session's owner); the service writes them;
--   * the anon role sees nothing; service_role (BYPASSRLS on Supabase) sees everything.
-- The service itself connects as the tables' owner, which RLS does not restrict (no FORCE),
-- and checks the same rules in the API. Views run with the caller's rights
-- (security_invoker), or they would read past RLS with the owner's.
--
-- Why the DO blocks: the embedded PostgreSQL (and any plain PostgreSQL) has no `auth` schema,
-- no `auth.uid()` and no anon / authenticated roles; Supabase has all of them before any
-- migration runs. A FK or a policy naming them cannot be created where they are missing, so
-- this one file creates them when they exist (Supabase, or a database whose operator created
-- the same objects) and otherwise leaves RLS enabled with no user policy: on such a database
-- only the owner and superusers read rows, which is exactly what the service needs. A later
-- migration never depends on the branch taken.

ALTER TABLE memories ADD COLUMN shared boolean NOT NULL DEFAULT false;
CREATE INDEX memories_user_idx ON memories (user_id, created_at DESC);
CREATE INDEX sessions_user_idx ON sessions (user_id, memory_id, created_at DESC);
CREATE INDEX gpu_jobs_finished_idx ON gpu_jobs (finished_at) WHERE gpu_seconds IS NOT NULL;

DO $$
BEGIN
    IF to_regclass('auth.users') IS NOT NULL THEN
        -- NOT VALID: rows written before auth existed (user_id NULL or a local id) are kept;
        -- every new row must name a real auth.users id.
        ALTER TABLE memories ADD CONSTRAINT memories_user_fk
            FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE NOT VALID;
        ALTER TABLE sessions ADD CONSTRAINT sessions_user_fk
            FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE NOT VALID;
    END IF;
END
$$;

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE gpu_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunk_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_costs ENABLE ROW LEVEL SECURITY;
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;

ALTER VIEW v_requests SET (security_invoker = true);
ALTER VIEW v_jobs SET (security_invoker = true);
ALTER VIEW v_memory_costs SET (security_invoker = true);

DO $$
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        RAISE NOTICE 'no auth.uid() or role authenticated: RLS on, no user policies';
        RETURN;
    END IF;
    -- (SELECT auth.uid()) is evaluated once per statement, not once per row (Supabase's advice
    -- in "RLS performance recommendations").
    CREATE POLICY memories_read ON memories FOR SELECT TO authenticated
        USING (user_id = (SELECT auth.uid()) OR (shared AND (SELECT auth.uid()) IS NOT NULL));
    CREATE POLICY memories_insert ON memories FOR INSERT TO authenticated
        WITH CHECK (user_id = (SELECT auth.uid()));
    CREATE POLICY memories_update ON memories FOR UPDATE TO authenticated
        USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid()));
    CREATE POLICY memories_delete ON memories FOR DELETE TO authenticated
        USING (user_id = (SELECT auth.uid()));

    CREATE POLICY chunks_read ON chunks FOR SELECT TO authenticated
        USING (EXISTS (SELECT 1 FROM memories m WHERE m.id = chunks.memory_id
                       AND (m.user_id = (SELECT auth.uid())
                            OR (m.shared AND (SELECT auth.uid()) IS NOT NULL))));

    CREATE POLICY sessions_owner ON sessions FOR ALL TO authenticated
        USING (user_id = (SELECT auth.uid()))
        WITH CHECK (user_id = (SELECT auth.uid())
                    AND EXISTS (SELECT 1 FROM memories m WHERE m.id = sessions.memory_id
                                AND (m.user_id = (SELECT auth.uid()) OR m.shared)));

    CREATE POLICY gpu_jobs_read ON gpu_jobs FOR SELECT TO authenticated
        USING (EXISTS (SELECT 1 FROM memories m WHERE m.id = gpu_jobs.memory_id
                       AND m.user_id = (SELECT auth.uid())));
    CREATE POLICY chunk_requests_read ON chunk_requests FOR SELECT TO authenticated
        USING (EXISTS (SELECT 1 FROM memories m WHERE m.id = chunk_requests.memory_id
                       AND m.user_id = (SELECT auth.uid()))
               OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = chunk_requests.session_id
                          AND s.user_id = (SELECT auth.uid())));
    CREATE POLICY memory_costs_read ON memory_costs FOR SELECT TO authenticated
        USING (EXISTS (SELECT 1 FROM memories m WHERE m.id = memory_costs.memory_id
                       AND m.user_id = (SELECT auth.uid())));

    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        -- Supabase's service_role has BYPASSRLS already; these make the bypass explicit and
        -- keep it where the role exists without that attribute.
        CREATE POLICY memories_service ON memories TO service_role USING (true) WITH CHECK (true);
        CREATE POLICY chunks_service ON chunks TO service_role USING (true) WITH CHECK (true);
        CREATE POLICY sessions_service ON sessions TO service_role USING (true) WITH CHECK (true);
        CREATE POLICY gpu_jobs_service ON gpu_jobs TO service_role
            USING (true) WITH CHECK (true);
        CREATE POLICY chunk_requests_service ON chunk_requests TO service_role
            USING (true) WITH CHECK (true);
        CREATE POLICY memory_costs_service ON memory_costs TO service_role
            USING (true) WITH CHECK (true);
        CREATE POLICY schema_migrations_service ON schema_migrations TO service_role
            USING (true) WITH CHECK (true);
    END IF;
END
$$;
