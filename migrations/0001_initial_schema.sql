-- Organizations, users, documents and their chunks, every tenant table under row-level security.
-- {{app_role}} is the login role of the handlers: it owns nothing and cannot bypass RLS.

CREATE EXTENSION IF NOT EXISTS vector;

-- The tenant of the current transaction, or NULL when none is set (then no tenant row is visible).
CREATE FUNCTION app_current_org() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('app.org_id', true), '')::uuid $$;

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Login is by e-mail alone, so an address belongs to one account across the whole platform.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_org_created ON users (org_id, created_at, id);

CREATE TABLE documents (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 512),
    content       text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    error         text,
    chunk_count   integer NOT NULL DEFAULT 0,
    content_hash  text NOT NULL,
    -- Hash of the content the stored chunks were built from: re-delivery of an ingested version is a no-op.
    ingested_hash text,
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE INDEX documents_org_listing ON documents (org_id, created_at DESC, id DESC);
CREATE INDEX documents_org_status_listing ON documents (org_id, status, created_at DESC, id DESC);

CREATE TABLE document_chunks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          uuid NOT NULL,
    document_id     uuid NOT NULL,
    chunk_index     integer NOT NULL,
    content         text NOT NULL,
    token_count     integer NOT NULL,
    embedding       halfvec(384) NOT NULL,
    embedding_model text NOT NULL,
    content_tsv     tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The composite key makes a chunk's tenant always the tenant of its document.
    FOREIGN KEY (org_id, document_id) REFERENCES documents (org_id, id) ON DELETE CASCADE,
    UNIQUE (org_id, document_id, chunk_index)
);
CREATE INDEX document_chunks_embedding_hnsw
    ON document_chunks USING hnsw (embedding halfvec_cosine_ops);
CREATE INDEX document_chunks_tsv ON document_chunks USING gin (content_tsv);
CREATE INDEX document_chunks_org ON document_chunks (org_id, document_id);

-- Row-level security: enabled and forced, so even the owner is filtered unless a policy says otherwise.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
ALTER TABLE document_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_chunks FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON organizations
    USING (id = app_current_org()) WITH CHECK (id = app_current_org());
CREATE POLICY tenant_isolation ON users
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
CREATE POLICY tenant_isolation ON documents
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
CREATE POLICY tenant_isolation ON document_chunks
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());

-- Login happens before any tenant is known. Only this function, running as the schema owner, may look a
-- user up by e-mail across tenants; the application role gets EXECUTE on it and nothing wider.
CREATE POLICY owner_login_lookup ON users FOR SELECT TO CURRENT_USER USING (true);

CREATE FUNCTION auth_find_user_by_email(p_email text)
RETURNS TABLE (id uuid, org_id uuid, email text, password_hash text, role text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT u.id, u.org_id, u.email, u.password_hash, u.role
    FROM users u
    WHERE lower(u.email) = lower(p_email)
$$;
REVOKE ALL ON FUNCTION auth_find_user_by_email(text) FROM PUBLIC;

-- The application role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{{app_role}}') THEN
        CREATE ROLE "{{app_role}}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO "{{app_role}}";
GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, users, documents, document_chunks TO "{{app_role}}";
GRANT EXECUTE ON FUNCTION auth_find_user_by_email(text), app_current_org() TO "{{app_role}}";
