-- Conversations: a user's questions and the answers with their sources, tenant data under forced RLS.
-- A conversation belongs to one user of one organisation; the application reads it only for its owner
-- (every statement says org_id and user_id), and the tenant policy below makes another organisation's
-- rows invisible whatever a statement says.

-- The composite key lets a conversation reference its owner within its own organisation, so a
-- conversation can never point at a user of another tenant. Named for this purpose so that another
-- migration adding a similar key does not clash with it.
CREATE UNIQUE INDEX IF NOT EXISTS users_org_id_id_conversations ON users (org_id, id);

CREATE TABLE conversations (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL,
    -- NULL until given, or until the first question names it.
    title       text CHECK (length(title) BETWEEN 1 AND 200),
    turn_count  integer NOT NULL DEFAULT 0 CHECK (turn_count >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Deleting a user deletes the conversations only that user could read.
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id) ON DELETE CASCADE,
    UNIQUE (org_id, id)
);
-- The owner's list, most recently active first (keyset pagination on (updated_at, id)).
CREATE INDEX conversations_owner_listing ON conversations (org_id, user_id, updated_at DESC, id DESC);

CREATE TABLE conversation_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          uuid NOT NULL,
    conversation_id uuid NOT NULL,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    -- Assistant messages: the sources as the client received them (a copy: re-ingestion does not change
    -- what an answer was based on), the documents they came from, and the usage.
    sources         jsonb NOT NULL DEFAULT '[]'::jsonb,
    source_document_ids uuid[] NOT NULL DEFAULT '{}',
    usage           jsonb,
    -- User messages: the text retrieval searched with and how it was made from the history
    -- ('question', 'condensed' or 'with_history').
    retrieval_query text,
    retrieval_method text CHECK (retrieval_method IN ('question', 'condensed', 'with_history')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
);
CREATE INDEX conversation_messages_conversation ON conversation_messages (org_id, conversation_id, id);
CREATE INDEX conversation_messages_source_documents
    ON conversation_messages USING gin (source_document_ids);

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
ALTER TABLE conversation_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversations
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());
CREATE POLICY tenant_isolation ON conversation_messages
    USING (org_id = app_current_org()) WITH CHECK (org_id = app_current_org());

-- A deleted document takes its text out of the stored sources too: each source that quoted it keeps
-- its place (so citations [n] still line up), its document id, name and chunk index, and loses its
-- content ("document_deleted": true). Statement-level, with the deleted rows as a transition table, so
-- deleting many documents (or an organisation) runs one UPDATE. It runs as the deleting role, under RLS:
-- it only ever touches the deleting tenant's messages.
CREATE FUNCTION conversation_sources_forget_documents() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    UPDATE conversation_messages m
    SET sources = (
            SELECT coalesce(jsonb_agg(
                       CASE WHEN (s ->> 'document_id')::uuid IN (SELECT g.id FROM gone g)
                            THEN s || jsonb_build_object('content', '', 'document_deleted', true)
                            ELSE s END
                       ORDER BY e.position), '[]'::jsonb)
            FROM jsonb_array_elements(m.sources) WITH ORDINALITY AS e (s, position)),
        source_document_ids = ARRAY(
            SELECT d FROM unnest(m.source_document_ids) AS d
            WHERE d NOT IN (SELECT g.id FROM gone g))
    WHERE m.source_document_ids && ARRAY(SELECT g.id FROM gone g);
    RETURN NULL;
END
$$;

CREATE TRIGGER conversation_sources_documents_deleted AFTER DELETE ON documents
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION conversation_sources_forget_documents();

GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, conversation_messages TO "{{app_role}}";
GRANT EXECUTE ON FUNCTION conversation_sources_forget_documents() TO "{{app_role}}";
