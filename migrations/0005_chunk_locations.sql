-- Where each chunk comes from in its file: the pages it spans (PDF; NULL for formats without pages) and
-- the heading path above it (Markdown, HTML, DOCX; NULL when it sits under no heading). Text documents
-- sent as JSON have neither. Nullable, no default: adding them rewrites nothing.
ALTER TABLE document_chunks
    ADD COLUMN page_start integer,
    ADD COLUMN page_end   integer,
    ADD COLUMN headings   text[],
    ADD CONSTRAINT document_chunks_pages_valid CHECK (
        (page_start IS NULL AND page_end IS NULL)
        OR (page_start >= 1 AND page_end >= page_start)
    ) NOT VALID;
-- Existing rows have no location, so they satisfy the check: validate without a long lock.
ALTER TABLE document_chunks VALIDATE CONSTRAINT document_chunks_pages_valid;
