-- Tenant API keys: programs authenticate with `Bearer rag_...` beside people's JWTs.
-- A key belongs to its organisation, not to the user who created it: deleting that user leaves the key
-- working (created_by becomes NULL). Only the SHA-256 of the secret is stored, never the secret.

CREATE TABLE api_keys (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scope              text NOT NULL CHECK (scope IN ('query', 'write', 'admin')),
    -- The first characters of the secret, shown in listings so a person can tell keys apart.
    prefix             text NOT NULL CHECK (length(prefix) BETWEEN 8 AND 16),
    -- sha256 of the whole secret: the secret has 256 random bits, so a fast hash is enough (no bcrypt).
    secret_hash        bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    created_by_key_id  uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    last_used_at       timestamptz,
    revoked_at         timestamptz,
    UNIQUE (org_id, id)
);
-- The lookup of every request made with a key: one probe of this unique index.
CREATE UNIQUE INDEX api_keys_secret_hash ON api_keys (secret_hash);
CREATE INDEX api_keys_org_listing ON api_keys (org_id, created_at, id) WHERE revoked_at IS NULL;

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
-- A key is presented before any tenant is known. Only the SECURITY DEFINER function below, running as
-- the schema owner, reads across tenants (this policy admits the owner only; the application role stays
-- under tenant_isolation).
CREATE POLICY owner_key_lookup ON api_keys TO CURRENT_USER USING (true) WITH CHECK (true);

-- The key with this hash if it is usable now (not revoked, not expired), else no row. A revoked, expired
-- and unknown key are indistinguishable to the caller. last_used_at is written only when it is older than
-- p_touch_seconds, so a busy key costs one write per interval, not one per request.
CREATE FUNCTION auth_find_api_key(p_secret_hash bytea, p_touch_seconds integer)
RETURNS TABLE (id uuid, org_id uuid, scope text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    hit record;
BEGIN
    SELECT k.id, k.org_id, k.scope, k.last_used_at INTO hit
    FROM api_keys k
    WHERE k.secret_hash = p_secret_hash
      AND k.revoked_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > now());
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF hit.last_used_at IS NULL
       OR hit.last_used_at <= now() - make_interval(secs => p_touch_seconds) THEN
        -- SKIP LOCKED: concurrent requests with the same key never wait on each other for this.
        UPDATE api_keys SET last_used_at = now()
        WHERE api_keys.id IN (SELECT x.id FROM api_keys x WHERE x.id = hit.id FOR UPDATE SKIP LOCKED);
    END IF;
    id := hit.id;
    org_id := hit.org_id;
    scope := hit.scope;
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION auth_find_api_key(bytea, integer) FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO "{{app_role}}";
GRANT EXECUTE ON FUNCTION auth_find_api_key(bytea, integer) TO "{{app_role}}";
