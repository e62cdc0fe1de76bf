-- Documents uploaded as files: the client PUTs the bytes to S3 with a presigned request; the S3 event (or a
-- re-ingestion) has the ingest function read the object. A text document keeps its content in the row as
-- before; an uploaded one has an empty content and the object's key, declared type and size instead.

ALTER TABLE documents
    -- Unknown until the bytes have been read (the API never sees them).
    ALTER COLUMN content_hash DROP NOT NULL,
    ADD COLUMN object_key text,
    ADD COLUMN content_type text,
    ADD COLUMN size_bytes bigint CHECK (size_bytes > 0),
    -- When the presigned PUT stops working; the file is expected before then.
    ADD COLUMN upload_expires_at timestamptz,
    -- When ingestion first found the file in the bucket; NULL while the document waits for it.
    ADD COLUMN uploaded_at timestamptz,
    -- Set when ingestion found identical bytes (same sha256) already ingested in the same organisation.
    ADD COLUMN duplicate_of uuid,
    ADD CONSTRAINT documents_upload_complete CHECK (
        (object_key IS NULL AND content_type IS NULL AND size_bytes IS NULL AND upload_expires_at IS NULL)
        OR (object_key IS NOT NULL AND content_type IS NOT NULL AND size_bytes IS NOT NULL
            AND upload_expires_at IS NOT NULL)
    ),
    ADD CONSTRAINT documents_text_has_hash CHECK (object_key IS NOT NULL OR content_hash IS NOT NULL);

-- One document per object; the key starts with the org id, so this is also unique per tenant.
CREATE UNIQUE INDEX documents_object_key ON documents (object_key) WHERE object_key IS NOT NULL;
-- Duplicate detection: the ingested original with these bytes, within one organisation.
CREATE INDEX documents_org_hash_ready ON documents (org_id, content_hash)
    WHERE status = 'ready' AND duplicate_of IS NULL;

-- The reaper, extended for uploads. A document still waiting for its file is not a lost message: it is
-- left alone until its upload URL has expired and p_upload_grace_seconds more have passed; then it is
-- sent to the queue ('requeue') so that the ingest function, which may read the bucket, either finds the
-- file (its S3 event was lost or is still queued) and ingests it, or fails the document with "upload not
-- received before <expiry>". Should that message be lost too, it is sent again after the grace period,
-- and after p_max_requeues sends the document is failed here with the same reason, once the queue is
-- empty (p_pending_seconds not NULL). Everything else is decided as in 0004.
DROP FUNCTION reap_stale_documents(integer, integer, integer, integer, integer);
CREATE FUNCTION reap_stale_documents(
    p_pending_seconds integer, p_processing_seconds integer, p_max_requeues integer,
    p_max_attempts integer, p_limit integer, p_upload_grace_seconds integer
)
RETURNS TABLE (org_id uuid, document_id uuid, action text)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    WITH stale AS (
        SELECT d.org_id, d.id, d.status, d.requeues, d.attempts, d.upload_expires_at,
               (d.status = 'pending' AND d.object_key IS NOT NULL AND d.uploaded_at IS NULL) AS awaiting
        FROM documents d
        WHERE (d.status = 'pending' AND d.updated_at <= now() - make_interval(secs => p_pending_seconds)
               AND NOT (d.object_key IS NOT NULL AND d.uploaded_at IS NULL))
           OR (d.status = 'pending' AND d.object_key IS NOT NULL AND d.uploaded_at IS NULL
               AND d.upload_expires_at <= now() - make_interval(secs => p_upload_grace_seconds)
               AND d.updated_at <= now() - make_interval(secs => p_upload_grace_seconds)
               -- Failing it here (its sends used up) waits for a drained queue: its S3 event may still
               -- be queued behind others.
               AND (d.requeues < p_max_requeues OR p_pending_seconds IS NOT NULL))
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
                WHEN x.awaiting THEN
                    format('upload not received before %s',
                           to_char(x.upload_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
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
REVOKE ALL ON FUNCTION reap_stale_documents(integer, integer, integer, integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reap_stale_documents(integer, integer, integer, integer, integer, integer)
    TO "{{app_role}}";
