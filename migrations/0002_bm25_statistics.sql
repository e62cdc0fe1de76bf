-- BM25 inside PostgreSQL: per-tenant corpus statistics kept exact by triggers on document_chunks.
--
-- A chunk's BM25 term frequencies come from the positions in its content_tsv; its length is the number of
-- tokens the text-search configuration kept (stored in lexical_length). What BM25 needs beyond the chunk:
-- per tenant, the number of chunks and their total length (bm25_corpus_stats) and, per term, the number
-- of chunks containing it (bm25_term_stats). Both are keyed by org_id under row-level security, so no
-- other tenant's text can change a score.

-- Tokens of a tsvector, repeats included (a lexeme stripped of positions counts once).
CREATE FUNCTION bm25_length(tsv tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT COALESCE(sum(COALESCE(array_length(u.positions, 1), 1)), 0)::integer FROM unnest(tsv) AS u $$;

-- The distinct lexemes of a question under the configuration the chunks are indexed with.
CREATE FUNCTION bm25_query_terms(question text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT tsvector_to_array(to_tsvector('english', question)) $$;

-- An OR of the given lexemes, for the GIN index (NULL, matching nothing, for none). Lexemes are quoted
-- verbatim, so they are not normalised a second time.
CREATE FUNCTION bm25_any_term(terms text[]) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT string_agg('''' || replace(replace(t, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
    FROM unnest(terms) AS t
$$;

ALTER TABLE document_chunks
    ADD COLUMN lexical_length integer
    GENERATED ALWAYS AS (bm25_length(to_tsvector('english', content))) STORED;

CREATE TABLE bm25_corpus_stats (
    org_id        uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    chunk_count   bigint NOT NULL CHECK (chunk_count >= 0),
    total_length  bigint NOT NULL CHECK (total_length >= 0)
);

CREATE TABLE bm25_term_stats (
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    term        text NOT NULL,
    chunk_freq  bigint NOT NULL CHECK (chunk_freq >= 0),
    PRIMARY KEY (org_id, term)
);

ALTER TABLE bm25_corpus_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE bm25_term_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bm25_corpus_stats
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
CREATE POLICY tenant_isolation ON bm25_term_stats
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());

-- The statistics change in the statement that changes the chunks, inside its transaction: a rolled-back
-- ingest leaves them untouched, and re-ingests and deletes (cascades included) subtract what they remove.
-- Every statement first updates the tenant's corpus row, which it then holds until commit: writers of
-- one tenant's statistics queue there (chunk writes are one short transaction per document; embedding
-- happens before it), so they can never deadlock on term rows locked in different orders. Tenants never
-- wait for each other. The triggers run as the caller, under the caller's row-level security.
CREATE FUNCTION bm25_chunks_added() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO bm25_corpus_stats AS s (org_id, chunk_count, total_length)
        SELECT org_id, count(*), sum(lexical_length) FROM bm25_new GROUP BY org_id ORDER BY org_id
    ON CONFLICT (org_id) DO UPDATE
        SET chunk_count = s.chunk_count + EXCLUDED.chunk_count,
            total_length = s.total_length + EXCLUDED.total_length;
    INSERT INTO bm25_term_stats AS t (org_id, term, chunk_freq)
        SELECT n.org_id, u.lexeme, count(*)
        FROM bm25_new AS n CROSS JOIN LATERAL unnest(n.content_tsv) AS u
        GROUP BY n.org_id, u.lexeme ORDER BY n.org_id, u.lexeme
    ON CONFLICT (org_id, term) DO UPDATE SET chunk_freq = t.chunk_freq + EXCLUDED.chunk_freq;
    RETURN NULL;
END
$$;

CREATE FUNCTION bm25_chunks_removed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE bm25_corpus_stats AS s
        SET chunk_count = s.chunk_count - o.chunks, total_length = s.total_length - o.length
        FROM (SELECT org_id, count(*) AS chunks, sum(lexical_length) AS length
              FROM bm25_old GROUP BY org_id) AS o
        WHERE s.org_id = o.org_id;
    UPDATE bm25_term_stats AS t SET chunk_freq = t.chunk_freq - g.chunks
        FROM (SELECT o.org_id, u.lexeme AS term, count(*) AS chunks
              FROM bm25_old AS o CROSS JOIN LATERAL unnest(o.content_tsv) AS u
              GROUP BY o.org_id, u.lexeme) AS g
        WHERE t.org_id = g.org_id AND t.term = g.term;
    -- Terms no chunk holds any more go, so the table stays the size of the live vocabulary.
    DELETE FROM bm25_term_stats AS t
        USING (SELECT DISTINCT o.org_id, u.lexeme AS term
               FROM bm25_old AS o CROSS JOIN LATERAL unnest(o.content_tsv) AS u) AS g
        WHERE t.org_id = g.org_id AND t.term = g.term AND t.chunk_freq = 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER bm25_chunks_inserted AFTER INSERT ON document_chunks
    REFERENCING NEW TABLE AS bm25_new
    FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_added();
CREATE TRIGGER bm25_chunks_deleted AFTER DELETE ON document_chunks
    REFERENCING OLD TABLE AS bm25_old
    FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_removed();
-- An update that changes a chunk's text is a removal of the old text and an addition of the new one.
CREATE TRIGGER bm25_chunks_updated_old AFTER UPDATE ON document_chunks
    REFERENCING OLD TABLE AS bm25_old
    FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_removed();
CREATE TRIGGER bm25_chunks_updated_new AFTER UPDATE ON document_chunks
    REFERENCING NEW TABLE AS bm25_new
    FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_added();

-- Chunks written before this migration, counted by the schema owner: row security is forced on the
-- owner too, so it is lifted for this transaction only and forced again below.
ALTER TABLE document_chunks NO FORCE ROW LEVEL SECURITY;
INSERT INTO bm25_corpus_stats (org_id, chunk_count, total_length)
    SELECT org_id, count(*), sum(lexical_length) FROM document_chunks GROUP BY org_id;
INSERT INTO bm25_term_stats (org_id, term, chunk_freq)
    SELECT c.org_id, u.lexeme, count(*)
    FROM document_chunks AS c CROSS JOIN LATERAL unnest(c.content_tsv) AS u
    GROUP BY c.org_id, u.lexeme;

ALTER TABLE document_chunks FORCE ROW LEVEL SECURITY;
ALTER TABLE bm25_corpus_stats FORCE ROW LEVEL SECURITY;
ALTER TABLE bm25_term_stats FORCE ROW LEVEL SECURITY;

GRANT SELECT, INSERT, UPDATE, DELETE ON bm25_corpus_stats, bm25_term_stats TO "{{app_role}}";
GRANT EXECUTE ON FUNCTION bm25_length(tsvector), bm25_query_terms(text), bm25_any_term(text[])
    TO "{{app_role}}";
