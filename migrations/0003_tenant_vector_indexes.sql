-- Every tenant gets its true top-k: an exact scan for most tenants, a partial HNSW index of its own for
-- each large tenant, and a registry that tells the search which tenants have a usable one
-- (docs/decisions.md, "Dense retrieval per tenant size").

-- A tenant's vectors next to its key: an exact scan reads one contiguous btree range (index-only once
-- autovacuum has marked the pages all-visible) instead of one heap page per chunk, scattered among the
-- rows of every other tenant. The chunk's unique key gets the vectors as included columns, so there is
-- still one index on that key; document_chunks_org, a prefix of it, goes.
CREATE UNIQUE INDEX document_chunks_org_vectors
    ON document_chunks (org_id, document_id, chunk_index) INCLUDE (embedding);
ALTER TABLE document_chunks
    DROP CONSTRAINT document_chunks_org_id_document_id_chunk_index_key,
    ADD CONSTRAINT document_chunks_org_vectors UNIQUE USING INDEX document_chunks_org_vectors;
DROP INDEX document_chunks_org;

-- No search reads the shared graph any more (small tenants scan exactly, large ones have their own
-- graph), and every insert paid for it.
DROP INDEX IF EXISTS document_chunks_embedding_hnsw;

-- The tenants that have (or are getting, or are losing) a partial HNSW index
-- `document_chunks_hnsw_<org id hex>` over `WHERE org_id = '<org id>'`. Written only by the index
-- maintenance (schema owner); the search reads its own tenant's row.
CREATE TABLE tenant_vector_indexes (
    org_id      uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    index_name  text NOT NULL UNIQUE CHECK (index_name ~ '^document_chunks_hnsw_[0-9a-f]{32}$'),
    -- building: not used yet; ready: used once PostgreSQL also says it is valid; retiring: about to go.
    state       text NOT NULL CHECK (state IN ('building', 'ready', 'retiring')),
    chunk_count bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tenant_vector_indexes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_vector_indexes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_vector_indexes FOR SELECT
    USING (org_id = app_current_org());
-- The maintenance runs as the schema owner, across tenants: it reads every tenant's size from documents
-- and writes the registry. The application role gets neither.
CREATE POLICY owner_maintenance ON tenant_vector_indexes TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_maintenance ON documents FOR SELECT TO CURRENT_USER USING (true);
GRANT SELECT ON tenant_vector_indexes TO "{{app_role}}";
