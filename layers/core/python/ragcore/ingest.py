"""The ingestion pipeline: claim a document, chunk it, embed the chunks, store them, mark it ready.

Re-delivery is harmless: a document whose stored chunks were built from its current content is skipped,
and chunks are replaced in a single transaction. A document never stays ``processing``: permanent
problems mark it ``failed`` at once; transient ones are retried by the queue, and once the attempts are
used up the next delivery marks it ``failed`` (the queue's receive limit is set above the attempt limit,
so that delivery still happens even when the worker crashed on every earlier attempt).

Quotas: a document whose chunks would take its organisation over the chunk quota is refused before it
is embedded (``failed``, its reason starting with ``chunk_quota_exceeded``), and again atomically when
the chunks are stored. The chunks and the embedding tokens are counted in the transaction that stores
the chunks, once per version of the content: a re-delivered or retried ingestion counts nothing more.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pgvector import HalfVector

from . import quotas
from .chunking import Chunk, chunk_text
from .config import Settings, get_settings
from .db import tenant_transaction
from .embeddings import Embedder, embed_in_batches, get_embedder
from .errors import ChunkQuotaExceeded


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

    def check_chunk_quota(self, doc: ClaimedDocument, count: int) -> None: ...

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

    def check_chunk_quota(self, doc: ClaimedDocument, count: int) -> None:
        """ChunkQuotaExceeded when replacing the document's chunks by ``count`` new ones would exceed the
        organisation's chunk quota (read only: the chunks are counted when they are stored)."""
        with tenant_transaction(doc.org_id) as conn:
            quotas.check_chunks(conn, doc.org_id, count - _stored_chunks(conn, doc))

    def save_chunks(
        self, doc: ClaimedDocument, chunks: Sequence[Chunk], vectors: np.ndarray, model: str
    ) -> bool:
        """Replace the document's chunks and mark it ready, atomically; False if it vanished or changed.

        The organisation's chunk count changes by the difference in the same transaction, within its
        quota (else ChunkQuotaExceeded and nothing is stored), and the embedding tokens are counted once
        per version of the content (not again when a re-delivered message stores the same chunks).
        """
        with tenant_transaction(doc.org_id) as conn:
            current = conn.execute(
                "SELECT content_hash, ingested_hash FROM documents WHERE org_id = %s AND id = %s FOR UPDATE",
                (doc.org_id, doc.document_id),
            ).fetchone()
            if current is None or current["content_hash"] != doc.content_hash:
                return False
            first_time = current["ingested_hash"] != doc.content_hash
            quotas.commit_chunks(
                conn,
                doc.org_id,
                len(chunks) - _stored_chunks(conn, doc),
                sum(c.token_count for c in chunks) if first_time else 0,
            )
            conn.execute(
                "DELETE FROM document_chunks WHERE org_id = %s AND document_id = %s",
                (doc.org_id, doc.document_id),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO document_chunks
                       (org_id, document_id, chunk_index, content, token_count, embedding, embedding_model)
                       VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                    [
                        (doc.org_id, doc.document_id, c.index, c.content, c.token_count, HalfVector(v), model)
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


def _stored_chunks(conn, doc: ClaimedDocument) -> int:
    return conn.execute(
        "SELECT count(*) AS n FROM document_chunks WHERE org_id = %s AND document_id = %s",
        (doc.org_id, doc.document_id),
    ).fetchone()["n"]


def chunk_for(embedder: Embedder, content: str, settings: Settings) -> list[Chunk]:
    """Chunks of ``content`` sized for ``embedder`` under the configured window."""
    return chunk_text(
        content,
        size_words=settings.chunk_size_words,
        overlap_words=settings.chunk_overlap_words,
        max_tokens=embedder.max_input_tokens,
        count_word_pieces=embedder.count_word_pieces,
    )


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
    doc = store.claim(org_id, document_id)
    if doc is None:
        return Outcome.SKIPPED
    if doc.attempts > settings.ingest_max_attempts:
        store.mark_failed(org_id, document_id, f"gave up after {settings.ingest_max_attempts} attempts")
        return Outcome.FAILED
    try:
        embedder = embedder or get_embedder(settings)
        chunks = chunk_for(embedder, doc.content, settings)
        if not chunks:
            raise PermanentIngestError("the document contains no text")
        store.check_chunk_quota(doc, len(chunks))
        vectors = embed_in_batches(
            embedder, [c.content for c in chunks], settings.embed_batch_size, settings.embed_max_retries
        )
        saved = store.save_chunks(doc, chunks, vectors, embedder.model_name)
        return Outcome.READY if saved else Outcome.SKIPPED
    except (PermanentIngestError, ChunkQuotaExceeded) as exc:
        store.mark_failed(org_id, document_id, str(exc))
        return Outcome.FAILED
    except Exception as exc:
        if doc.attempts >= settings.ingest_max_attempts:
            store.mark_failed(org_id, document_id, f"ingestion failed: {type(exc).__name__}: {exc}")
            return Outcome.FAILED
        raise
