-- Brute-force throttling of sign-in and registration, and the reaper of stranded documents.

-- Attempts per key (a sha256 of "<scope>:<subject>", so neither e-mails nor addresses are stored in clear)
-- in a fixed window. Not tenant data: it is keyed before any tenant is known. The application role has no
-- privilege on the table at all; it reaches it only through the SECURITY DEFINER functions below.
CREATE TABLE auth_throttle (
    key          text PRIMARY KEY CHECK (length(key) = 64),
    window_start timestamptz NOT NULL,
    attempts     integer NOT NULL CHECK (attempts >= 0)
);
CREATE INDEX auth_throttle_window ON auth_throttle (window_start);

-- Counts one attempt against each key, atomically (one upsert per key, keys locked in a fixed order so
-- concurrent callers cannot deadlock). Returns 0 when every key is within its limit, else the seconds
-- until the fullest key's window ends (at least 1). Attempts made while refused count too: hammering
-- does not shorten the wait, and the window's end bounds it.
CREATE FUNCTION auth_throttle_hit(p_keys text[], p_limits integer[], p_window_seconds integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    item   record;
    counted integer;
    started timestamptz;
    wait   integer := 0;
    span   interval := make_interval(secs => p_window_seconds);
BEGIN
    IF array_length(p_keys, 1) IS DISTINCT FROM array_length(p_limits, 1) THEN
        RAISE EXCEPTION 'one limit per key';
    END IF;
    FOR item IN SELECT k, l FROM unnest(p_keys, p_limits) AS t (k, l) ORDER BY k LOOP
        INSERT INTO auth_throttle AS t (key, window_start, attempts)
        VALUES (item.k, clock_timestamp(), 1)
        ON CONFLICT (key) DO UPDATE SET
            window_start = CASE WHEN t.window_start <= clock_timestamp() - span
                                THEN clock_timestamp() ELSE t.window_start END,
            attempts     = CASE WHEN t.window_start <= clock_timestamp() - span
                                THEN 1 ELSE t.attempts + 1 END
        RETURNING t.attempts, t.window_start INTO counted, started;
        IF counted > item.l THEN
            wait := greatest(wait, 1,
                             ceil(extract(epoch FROM started + span - clock_timestamp()))::integer);
        END IF;
    END LOOP;
    RETURN wait;
END
$$;

-- After a successful sign-in: the account's failures are forgotten, and the attempt is given back to the
-- other keys (a client address is limited on failures, not on users signing in).
CREATE FUNCTION auth_throttle_forgive(p_reset_keys text[], p_refund_keys text[])
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    DELETE FROM auth_throttle WHERE key = ANY (p_reset_keys);
    UPDATE auth_throttle SET attempts = greatest(attempts - 1, 0) WHERE key = ANY (p_refund_keys);
$$;

REVOKE ALL ON FUNCTION auth_throttle_hit(text[], integer[], integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth_throttle_forgive(text[], text[]) FROM PUBLIC;

-- How many times the reaper re-sent a document whose message never arrived.
ALTER TABLE documents ADD COLUMN requeues integer NOT NULL DEFAULT 0;
CREATE INDEX documents_unfinished ON documents (updated_at) WHERE status IN ('pending', 'processing');

-- The reaper works across tenants; this policy admits only the schema owner, i.e. the SECURITY DEFINER
-- function below (the application role stays under tenant_isolation).
CREATE POLICY owner_reaper ON documents TO CURRENT_USER USING (true) WITH CHECK (true);

-- Finds documents stranded by a lost message or a dead worker and decides, in one statement per kind:
--   pending untouched for p_pending_seconds: re-sent ('requeue'), or 'failed' once re-sent p_max_requeues
--     times already (NULL leaves pending documents alone: the caller passes it while the queue is not
--     empty, since their messages may be waiting there);
--   processing untouched for p_processing_seconds (longer than any ingest invocation can run): back to
--     pending and re-sent, or 'failed' when its attempts are used up (p_max_attempts).
-- Re-sent documents get updated_at = now(), so each is re-sent at most once per bound. Rows are locked
-- with SKIP LOCKED so concurrent reapers never pick the same document.
CREATE FUNCTION reap_stale_documents(
    p_pending_seconds integer, p_processing_seconds integer, p_max_requeues integer,
    p_max_attempts integer, p_limit integer
)
RETURNS TABLE (org_id uuid, document_id uuid, action text)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    WITH stale AS (
        SELECT d.org_id, d.id, d.status, d.requeues, d.attempts
        FROM documents d
        WHERE (d.status = 'pending' AND d.updated_at <= now() - make_interval(secs => p_pending_seconds))
           OR (d.status = 'processing'
               AND d.updated_at <= now() - make_interval(secs => p_processing_seconds))
        ORDER BY d.updated_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), decided AS (
        SELECT s.*,
               CASE WHEN s.status = 'pending' AND s.requeues >= p_max_requeues THEN 'failed'
                    WHEN s.status = 'processing' AND s.attempts >= p_max_attempts THEN 'failed'
                    ELSE 'requeue' END AS action
        FROM stale s
    ), updated AS (
        UPDATE documents d
        SET status = CASE WHEN x.action = 'failed' THEN 'failed' ELSE 'pending' END,
            error = CASE
                WHEN x.action = 'requeue' THEN NULL
                WHEN x.status = 'pending' THEN
                    format('ingestion never started: its message was lost %s times', x.requeues + 1)
                ELSE format('ingestion did not finish after %s attempts', x.attempts) END,
            requeues = d.requeues + CASE WHEN x.action = 'requeue' THEN 1 ELSE 0 END,
            updated_at = now()
        FROM decided x
        WHERE d.org_id = x.org_id AND d.id = x.id
        RETURNING d.org_id, d.id, x.action
    )
    SELECT u.org_id, u.id, u.action FROM updated u
$$;
REVOKE ALL ON FUNCTION reap_stale_documents(integer, integer, integer, integer, integer) FROM PUBLIC;

-- Throttle windows long over are deleted by the reaper.
CREATE FUNCTION auth_throttle_purge(p_older_than_seconds integer)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM auth_throttle
        WHERE window_start < now() - make_interval(secs => p_older_than_seconds)
        RETURNING 1
    )
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION auth_throttle_purge(integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    auth_throttle_hit(text[], integer[], integer),
    auth_throttle_forgive(text[], text[]),
    reap_stale_documents(integer, integer, integer, integer, integer),
    auth_throttle_purge(integer)
TO "{{app_role}}";
