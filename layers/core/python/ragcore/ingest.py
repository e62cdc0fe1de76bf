"""The ingestion pipeline: claim a document, chunk it, embed the chunks, store them, mark it ready.

Re-delivery is harmless: a document whose stored chunks were built from its current content is skipped,
and chunks are replaced in a single transaction. A document never stays ``processing``: permanent
problems mark it ``failed`` at once; transient ones are retried by the queue, and once the attempts are
used up the next delivery marks it ``failed`` (the queue's receive limit is set above the attempt limit,
so that delivery still happens even when the worker crashed on every earlier attempt).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pgvector import HalfVector

from .chunking import Chunk, LocatedText, chunk_sections
from .config import Settings, get_settings
from .db import tenant_transaction
from .embeddings import Embedder, embed_in_batches, get_embedder
from .errors import ExtractionFailed
from .extractors import Section
from .observability import (
    CHUNKS_EMBEDDED,
    INGEST_CHUNK,
    INGEST_EMBED,
    INGEST_STORE,
    count,
    logger,
    stage,
    tag_tenant,
)


class Outcome(enum.Enum):
    READY = "ready"
    SKIPPED = "skipped"  # already ingested from this content, or deleted meanwhile
    FAILED = "failed"


@dataclass(frozen=True)
class ClaimedDocument:
    org_id: uuid.UUID
    document_id: uuid.UUID
    content: str
    content_hash: str
    attempts: int


class PermanentIngestError(Exception):
    """The document itself cannot be ingested; retrying will not help."""


class DocumentStore(Protocol):
    def claim(self, org_id: uuid.UUID, document_id: uuid.UUID) -> ClaimedDocument | None: ...

    def save_chunks(
        self, doc: ClaimedDocument, chunks: Sequence[Chunk], vectors: np.ndarray, model: str
    ) -> bool: ...

    def mark_failed(self, org_id: uuid.UUID, document_id: uuid.UUID, reason: str) -> None: ...


class PgDocumentStore:
    """DocumentStore over PostgreSQL, each step in its own tenant transaction."""

    def claim(self, org_id: uuid.UUID, document_id: uuid.UUID) -> ClaimedDocument | None:
        """Move the document to ``processing`` and count the attempt; None when there is nothing to do."""
        with tenant_transaction(org_id) as conn:
            row = conn.execute(
                """UPDATE documents
                   SET status = 'processing', attempts = attempts + 1, error = NULL, updated_at = now()
                   WHERE org_id = %s AND id = %s
                     AND (ingested_hash IS DISTINCT FROM content_hash OR status <> 'ready')
                   RETURNING content, content_hash, attempts""",
                (org_id, document_id),
            ).fetchone()
        if row is None:
            return None
        return ClaimedDocument(org_id, document_id, row["content"], row["content_hash"], row["attempts"])

    def save_chunks(
        self, doc: ClaimedDocument, chunks: Sequence[Chunk], vectors: np.ndarray, model: str
    ) -> bool:
        """Replace the document's chunks and mark it ready, atomically; False if it vanished or changed."""
        with tenant_transaction(doc.org_id) as conn:
            current = conn.execute(
                "SELECT content_hash FROM documents WHERE org_id = %s AND id = %s FOR UPDATE",
                (doc.org_id, doc.document_id),
            ).fetchone()
            if current is None or current["content_hash"] != doc.content_hash:
                return False
            conn.execute(
                "DELETE FROM document_chunks WHERE org_id = %s AND document_id = %s",
                (doc.org_id, doc.document_id),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO document_chunks
                       (org_id, document_id, chunk_index, content, token_count, embedding, embedding_model,
                        page_start, page_end, headings)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    [
                        (
                            doc.org_id,
                            doc.document_id,
                            c.index,
                            c.content,
                            c.token_count,
                            HalfVector(v),
                            model,
                            c.page_start,
                            c.page_end,
                            list(c.headings) or None,
                        )
                        for c, v in zip(chunks, vectors, strict=True)
                    ],
                )
            conn.execute(
                """UPDATE documents SET status = 'ready', chunk_count = %s, ingested_hash = content_hash,
                   error = NULL, updated_at = now() WHERE org_id = %s AND id = %s""",
                (len(chunks), doc.org_id, doc.document_id),
            )
        return True

    def mark_failed(self, org_id: uuid.UUID, document_id: uuid.UUID, reason: str) -> None:
        """Record why ingestion gave up."""
        with tenant_transaction(org_id) as conn:
            conn.execute(
                """UPDATE documents SET status = 'failed', error = %s, updated_at = now()
                   WHERE org_id = %s AND id = %s""",
                (reason[:1000], org_id, document_id),
            )


def chunk_document(embedder: Embedder, sections: Sequence[LocatedText], settings: Settings) -> list[Chunk]:
    """Chunks of a document's sections sized for ``embedder`` under the configured window, each with its
    location; PermanentIngestError past ``max_chunks_per_document`` (before anything is embedded)."""
    chunks = chunk_sections(
        sections,
        size_words=settings.chunk_size_words,
        overlap_words=settings.chunk_overlap_words,
        max_tokens=embedder.max_input_tokens,
        count_word_pieces=embedder.count_word_pieces,
    )
    if len(chunks) > settings.max_chunks_per_document:
        limit = settings.max_chunks_per_document
        raise PermanentIngestError(f"the document makes {len(chunks)} chunks, more than {limit} (the limit)")
    return chunks


def chunk_for(embedder: Embedder, content: str, settings: Settings) -> list[Chunk]:
    """Chunks of a plain text ``content`` (one section, no location)."""
    return chunk_document(embedder, [Section(content)], settings)


def ingest_document(
    org_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    store: DocumentStore | None = None,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
) -> Outcome:
    """Run the whole pipeline for one document.

    Transient errors propagate (the queue will deliver again) unless this was the last attempt, in which
    case the document is marked ``failed`` and the error is swallowed.
    """
    settings = settings or get_settings()
    store = store or PgDocumentStore()
    tag_tenant(org_id)
    doc = store.claim(org_id, document_id)
    if doc is None:
        return Outcome.SKIPPED
    if doc.attempts > settings.ingest_max_attempts:
        store.mark_failed(org_id, document_id, f"gave up after {settings.ingest_max_attempts} attempts")
        return Outcome.FAILED
    try:
        embedder = embedder or get_embedder(settings)
        with stage(INGEST_CHUNK):
            chunks = chunk_for(embedder, doc.content, settings)
        if not chunks:
            raise PermanentIngestError("the document contains no text")
        logger.debug("chunked", extra={"chunks": len(chunks), "attempt": doc.attempts})
        with stage(INGEST_EMBED):
            vectors = embed_in_batches(
                embedder, [c.content for c in chunks], settings.embed_batch_size, settings.embed_max_retries
            )
        count(CHUNKS_EMBEDDED, len(chunks))
        with stage(INGEST_STORE):
            saved = store.save_chunks(doc, chunks, vectors, embedder.model_name)
        return Outcome.READY if saved else Outcome.SKIPPED
    except (PermanentIngestError, ExtractionFailed) as exc:
        store.mark_failed(org_id, document_id, str(exc))
        return Outcome.FAILED
    except Exception as exc:
        if doc.attempts >= settings.ingest_max_attempts:
            store.mark_failed(org_id, document_id, f"ingestion failed: {type(exc).__name__}: {exc}")
            return Outcome.FAILED
        raise
