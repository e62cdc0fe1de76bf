-- Quotas and usage: what each organisation holds and has spent, and the limits an operator set for it.
-- Both tables are tenant data under forced RLS. The application changes the counters only with
-- conditional single-row UPDATEs (`SET used = used + n WHERE used + n <= limit`), so a limit holds
-- whatever number of Lambda environments race for it: the row lock serialises them.

CREATE TABLE org_usage (
    org_id                   uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    -- What the organisation holds now: deleting a document gives its share back.
    documents                bigint NOT NULL DEFAULT 0 CHECK (documents >= 0),
    chunks                   bigint NOT NULL DEFAULT 0 CHECK (chunks >= 0),
    stored_bytes             bigint NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),
    -- What it has spent since it was created (never given back).
    embedding_tokens         bigint NOT NULL DEFAULT 0 CHECK (embedding_tokens >= 0),
    generation_input_tokens  bigint NOT NULL DEFAULT 0 CHECK (generation_input_tokens >= 0),
    generation_output_tokens bigint NOT NULL DEFAULT 0 CHECK (generation_output_tokens >= 0),
    queries_total            bigint NOT NULL DEFAULT 0 CHECK (queries_total >= 0),
    -- Rate windows: the UTC day and the minute the counts below belong to (a count of another window
    -- is stale and reads as 0).
    queries_day              date NOT NULL DEFAULT '1970-01-01',
    queries_in_day           integer NOT NULL DEFAULT 0 CHECK (queries_in_day >= 0),
    queries_minute           timestamptz NOT NULL DEFAULT '1970-01-01T00:00:00Z',
    queries_in_minute        integer NOT NULL DEFAULT 0 CHECK (queries_in_minute >= 0),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- What each organisation spent per UTC day (for billing and for the tenant's own view): written in the
-- same transactions as the totals above.
CREATE TABLE org_usage_days (
    org_id                   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day                      date NOT NULL,
    queries                  integer NOT NULL DEFAULT 0 CHECK (queries >= 0),
    embedding_tokens         bigint NOT NULL DEFAULT 0 CHECK (embedding_tokens >= 0),
    generation_input_tokens  bigint NOT NULL DEFAULT 0 CHECK (generation_input_tokens >= 0),
    generation_output_tokens bigint NOT NULL DEFAULT 0 CHECK (generation_output_tokens >= 0),
    PRIMARY KEY (org_id, day)
);

-- Per-organisation limits set by a platform operator; a NULL column means the configured default.
CREATE TABLE org_quotas (
    org_id                 uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    max_documents          bigint CHECK (max_documents >= 0),
    max_chunks             bigint CHECK (max_chunks >= 0),
    max_stored_bytes       bigint CHECK (max_stored_bytes >= 0),
    max_queries_per_day    integer CHECK (max_queries_per_day >= 0),
    max_queries_per_minute integer CHECK (max_queries_per_minute >= 0),
    note                   text CHECK (length(note) <= 500),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE org_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_usage FORCE ROW LEVEL SECURITY;
ALTER TABLE org_usage_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_usage_days FORCE ROW LEVEL SECURITY;
ALTER TABLE org_quotas ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_quotas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON org_usage
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
CREATE POLICY tenant_isolation ON org_usage_days
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
CREATE POLICY tenant_isolation ON org_quotas
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
-- The operator sets overrides as the schema owner, across tenants (docs/decisions.md, "Quota overrides
-- are set by the operator"); these policies admit the owner only, the application role stays under
-- tenant_isolation.
CREATE POLICY owner_operator ON org_usage TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_operator ON org_quotas TO CURRENT_USER USING (true) WITH CHECK (true);

-- The bytes a document holds against its organisation's storage quota, as reserved when it was created
-- (its content's size; for a file upload, the declared size). Deleting the document gives them back.
ALTER TABLE documents ADD COLUMN quota_bytes bigint NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0);
-- coalesce: a document whose content is not stored in the row (a file upload not yet extracted) holds 0.
UPDATE documents SET quota_bytes = coalesce(octet_length(content), 0);

-- What existing organisations already hold, from their documents (the owner reads documents through the
-- reaper's policy; chunks and organisations have no owner policy, and chunk_count is what save_chunks
-- stored with the chunks). An organisation without documents gets its row on first use.
INSERT INTO org_usage (org_id, documents, chunks, stored_bytes)
SELECT d.org_id, count(*), sum(d.chunk_count), sum(d.quota_bytes)
FROM documents d
GROUP BY d.org_id;

-- The application reads and updates its tenant's counters, and only reads its limits.
GRANT SELECT, INSERT, UPDATE ON org_usage, org_usage_days TO "{{app_role}}";
GRANT SELECT ON org_quotas TO "{{app_role}}";
