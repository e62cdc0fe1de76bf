-- A large document is embedded in bounded chunk ranges, one queue message (one invocation) each. Its
-- chunks wait here, text and location first, each range's vectors added as it is embedded, and move to
-- document_chunks in the transaction that finds every range done. Staged chunks live in their own table
-- so that nothing reads them before the document is ready: retrieval, the BM25 statistics triggers of
-- document_chunks and the tenant indexes see only whole documents (docs/decisions.md, "Large documents
-- are embedded in chained chunk-range messages").
--
-- ingest_run names one staging of the document's content: a re-ingest (or a redelivered document message)
-- stages again under a new run, and range messages of an older run find it gone and do nothing.
ALTER TABLE documents ADD COLUMN ingest_run uuid;

CREATE TABLE document_chunks_staged (
    org_id      uuid NOT NULL,
    document_id uuid NOT NULL,
    run_id      uuid NOT NULL,
    chunk_index integer NOT NULL,
    content     text NOT NULL,
    token_count integer NOT NULL,
    page_start  integer,
    page_end    integer,
    headings    text[],
    embedding   halfvec(384),  -- NULL until the chunk's range is embedded
    embedding_model text,
    FOREIGN KEY (org_id, document_id) REFERENCES documents (org_id, id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, document_id, chunk_index)
);

ALTER TABLE document_chunks_staged ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_chunks_staged FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON document_chunks_staged
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON document_chunks_staged TO "{{app_role}}";
