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

Large documents: one of more than ``ingest_range_chunks`` chunks is chunked and staged (no vectors) by its
first invocation, and embedded in ranges of at most that many chunks, one queue message each
(``ingest_range``), chained so that only ``ingest_range_chains`` ranges of a document wait in the queue at a
time; the range that finds every staged chunk embedded moves them into ``document_chunks`` and marks the
document ready in one transaction. Staged chunks are never visible to retrieval.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from pgvector import HalfVector

from . import quotas
from .chunking import Chunk, LocatedText, chunk_sections
from .config import Settings, get_settings
from .db import anonymous_transaction, tenant_transaction
from .embeddings import Embedder, embed_in_batches, get_embedder
from .errors import ChunkQuotaExceeded, ExtractionFailed, PayloadTooLarge, StoredObjectMissing
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
from .queue import IngestQueue, get_ingest_queue
from .storage import ObjectStore, get_object_store


class Outcome(enum.Enum):
    READY = "ready"
    SKIPPED = "skipped"  # already ingested from this content, or deleted meanwhile
    FAILED = "failed"
    DUPLICATE = "duplicate"  # identical bytes already ingested in the organisation: nothing embedded
    WAITING = "waiting"  # an upload whose file has not arrived (and whose URL is still valid)
    STAGED = "staged"  # a large document chunked and staged; its ranges are embedded by range messages
    RANGE = "range"  # one range of a staged document embedded; others still to come


@dataclass(frozen=True)
class StagedRange:
    """The chunks of one range still to embed, and how many chunks the staged document has."""

    todo: list[tuple[int, str]]  # (chunk_index, content) of the chunks without a vector
    total: int


@dataclass(frozen=True)
class ClaimedDocument:
    org_id: uuid.UUID
    document_id: uuid.UUID
    content: str
    content_hash: str | None
    attempts: int
    # Uploaded files: where the bytes are, and what the client declared them to be.
    object_key: str | None = None
    content_type: str | None = None
    name: str = ""


@dataclass(frozen=True)
class UploadState:
    """An uploaded file's document as ingestion first sees it."""

    object_key: str
    awaiting: bool  # still waiting for the file (no S3 event or check has found it yet)
    expires_at: datetime
    expired: bool
    status: str = "pending"


class PermanentIngestError(Exception):
    """The document itself cannot be ingested; retrying will not help."""


class ForeignDocumentMessage(Exception):
    """A message names a document that belongs to another organisation than the one it names: forged or
    corrupted, so it fails on every delivery and ends in the dead-letter queue (nothing is touched)."""


class DocumentStore(Protocol):
    def claim(self, org_id: uuid.UUID, document_id: uuid.UUID) -> ClaimedDocument | None: ...

    def check_chunk_quota(self, doc: ClaimedDocument, count: int) -> None: ...

    def save_chunks(
        self, doc: ClaimedDocument, chunks: Sequence[Chunk], vectors: np.ndarray, model: str
    ) -> bool: ...

    def mark_failed(self, org_id: uuid.UUID, document_id: uuid.UUID, reason: str) -> None: ...

    def held_by_another_org(self, org_id: uuid.UUID, document_id: uuid.UUID) -> bool: ...

    def upload_state(self, org_id: uuid.UUID, document_id: uuid.UUID) -> UploadState | None: ...

    def mark_uploaded(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None: ...

    def record_file_hash(self, doc: ClaimedDocument, sha256: str) -> uuid.UUID | None: ...

    def stage_chunks(self, doc: ClaimedDocument, chunks: Sequence[Chunk]) -> uuid.UUID | None: ...

    def staged_range(
        self, org_id: uuid.UUID, document_id: uuid.UUID, run_id: uuid.UUID, start: int, stop: int
    ) -> StagedRange | None: ...

    def store_range(
        self,
        org_id: uuid.UUID,
        document_id: uuid.UUID,
        run_id: uuid.UUID,
        indexes: Sequence[int],
        vectors: np.ndarray,
        model: str,
    ) -> str: ...


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
                     AND (object_key IS NULL OR uploaded_at IS NOT NULL)
                   RETURNING content, content_hash, attempts, object_key, content_type, name""",
                (org_id, document_id),
            ).fetchone()
        if row is None:
            return None
        return ClaimedDocument(
            org_id,
            document_id,
            row["content"],
            row["content_hash"],
            row["attempts"],
            object_key=row["object_key"],
            content_type=row["content_type"],
            name=row["name"],
        )

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
            if doc.object_key is not None and doc.content_hash is not None:
                _lock_hash(conn, doc.org_id, doc.content_hash)
                if _ready_original(conn, doc.org_id, doc.document_id, doc.content_hash) is not None:
                    # An identical file became ready while this one was being embedded: the caller
                    # records this one as its duplicate instead.
                    return False
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

    def stage_chunks(self, doc: ClaimedDocument, chunks: Sequence[Chunk]) -> uuid.UUID | None:
        """Stage a large document's chunks (no vectors yet) under a new run, replacing any earlier
        staging; None if the document vanished or its content changed. Nothing is visible to retrieval
        or counted against the quota until every range is embedded (``store_range``)."""
        run_id = uuid.uuid4()
        with tenant_transaction(doc.org_id) as conn:
            current = conn.execute(
                "SELECT content_hash FROM documents WHERE org_id = %s AND id = %s FOR UPDATE",
                (doc.org_id, doc.document_id),
            ).fetchone()
            if current is None or current["content_hash"] != doc.content_hash:
                return None
            conn.execute(
                "DELETE FROM document_chunks_staged WHERE org_id = %s AND document_id = %s",
                (doc.org_id, doc.document_id),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO document_chunks_staged
                       (org_id, document_id, run_id, chunk_index, content, token_count,
                        page_start, page_end, headings)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    [
                        (
                            doc.org_id,
                            doc.document_id,
                            run_id,
                            c.index,
                            c.content,
                            c.token_count,
                            c.page_start,
                            c.page_end,
                            list(c.headings) or None,
                        )
                        for c in chunks
                    ],
                )
            conn.execute(
                """UPDATE documents SET ingest_run = %s, updated_at = now()
                   WHERE org_id = %s AND id = %s""",
                (run_id, doc.org_id, doc.document_id),
            )
        return run_id

    def staged_range(
        self, org_id: uuid.UUID, document_id: uuid.UUID, run_id: uuid.UUID, start: int, stop: int
    ) -> StagedRange | None:
        """The chunks of [start, stop) still without a vector; None when the run is no longer the
        document's (deleted, re-ingested, failed or already ready)."""
        with tenant_transaction(org_id) as conn:
            current = conn.execute(
                """SELECT 1 FROM documents WHERE org_id = %s AND id = %s AND ingest_run = %s
                     AND status = 'processing'""",
                (org_id, document_id, run_id),
            ).fetchone()
            if current is None:
                return None
            total = conn.execute(
                "SELECT count(*) AS n FROM document_chunks_staged WHERE org_id = %s AND document_id = %s",
                (org_id, document_id),
            ).fetchone()["n"]
            rows = conn.execute(
                """SELECT chunk_index, content FROM document_chunks_staged
                   WHERE org_id = %s AND document_id = %s AND chunk_index >= %s AND chunk_index < %s
                     AND embedding IS NULL
                   ORDER BY chunk_index""",
                (org_id, document_id, start, stop),
            ).fetchall()
        return StagedRange([(r["chunk_index"], r["content"]) for r in rows], total)

    def store_range(
        self,
        org_id: uuid.UUID,
        document_id: uuid.UUID,
        run_id: uuid.UUID,
        indexes: Sequence[int],
        vectors: np.ndarray,
        model: str,
    ) -> str:
        """Store one range's vectors; when no staged chunk is left without one, move the chunks into
        ``document_chunks``, count them and their embedding tokens against the quota and mark the
        document ready, all in the same transaction (the document's row lock serialises the ranges, so
        exactly one of them finishes it). Returns "ready", "stored", "gone" (the run is no longer the
        document's: nothing stored) or "duplicate" (an identical file became ready meanwhile)."""
        with tenant_transaction(org_id) as conn:
            current = conn.execute(
                """SELECT content_hash, ingested_hash, object_key FROM documents
                   WHERE org_id = %s AND id = %s AND ingest_run = %s AND status = 'processing'
                   FOR UPDATE""",
                (org_id, document_id, run_id),
            ).fetchone()
            if current is None:
                return "gone"
            if indexes:
                with conn.cursor() as cur:
                    cur.executemany(
                        """UPDATE document_chunks_staged SET embedding = %s, embedding_model = %s
                           WHERE org_id = %s AND document_id = %s AND chunk_index = %s""",
                        [
                            (HalfVector(v), model, org_id, document_id, i)
                            for i, v in zip(indexes, vectors, strict=True)
                        ],
                    )
            # The row lock above: progress keeps the reaper's `processing` bound from firing.
            conn.execute(
                "UPDATE documents SET updated_at = now() WHERE org_id = %s AND id = %s", (org_id, document_id)
            )
            left = conn.execute(
                """SELECT count(*) AS n FROM document_chunks_staged
                   WHERE org_id = %s AND document_id = %s AND embedding IS NULL""",
                (org_id, document_id),
            ).fetchone()["n"]
            if left:
                return "stored"
            doc = ClaimedDocument(
                org_id, document_id, "", current["content_hash"], 0, object_key=current["object_key"]
            )
            if doc.object_key is not None and doc.content_hash is not None:
                _lock_hash(conn, org_id, doc.content_hash)
                original = _ready_original(conn, org_id, document_id, doc.content_hash)
                if original is not None:
                    # An identical file became ready while this one was being embedded.
                    _mark_duplicate(conn, org_id, document_id, doc.content_hash, original)
                    return "duplicate"
            totals = conn.execute(
                """SELECT count(*) AS n, coalesce(sum(token_count), 0) AS tokens
                   FROM document_chunks_staged WHERE org_id = %s AND document_id = %s""",
                (org_id, document_id),
            ).fetchone()
            first_time = current["ingested_hash"] != current["content_hash"]
            quotas.commit_chunks(
                conn,
                org_id,
                totals["n"] - _stored_chunks(conn, doc),
                totals["tokens"] if first_time else 0,
            )
            conn.execute(
                "DELETE FROM document_chunks WHERE org_id = %s AND document_id = %s", (org_id, document_id)
            )
            conn.execute(
                """INSERT INTO document_chunks
                   (org_id, document_id, chunk_index, content, token_count, embedding, embedding_model,
                    page_start, page_end, headings)
                   SELECT org_id, document_id, chunk_index, content, token_count, embedding,
                          embedding_model, page_start, page_end, headings
                   FROM document_chunks_staged WHERE org_id = %s AND document_id = %s
                   ORDER BY chunk_index""",
                (org_id, document_id),
            )
            conn.execute(
                "DELETE FROM document_chunks_staged WHERE org_id = %s AND document_id = %s",
                (org_id, document_id),
            )
            conn.execute(
                """UPDATE documents SET status = 'ready', chunk_count = %s, ingested_hash = content_hash,
                   ingest_run = NULL, error = NULL, updated_at = now() WHERE org_id = %s AND id = %s""",
                (totals["n"], org_id, document_id),
            )
        return "ready"

    def held_by_another_org(self, org_id: uuid.UUID, document_id: uuid.UUID) -> bool:
        """Whether ``document_id`` exists under another organisation than ``org_id`` (a yes/no answer of a
        SECURITY DEFINER function: nothing of that organisation is read)."""
        with anonymous_transaction() as conn:
            row = conn.execute(
                "SELECT document_held_by_another_org(%s, %s) AS foreign_id", (org_id, document_id)
            ).fetchone()
        return bool(row["foreign_id"])

    def mark_failed(self, org_id: uuid.UUID, document_id: uuid.UUID, reason: str) -> None:
        """Record why ingestion gave up (and drop any chunks staged for it)."""
        with tenant_transaction(org_id) as conn:
            conn.execute(
                """UPDATE documents SET status = 'failed', error = %s, ingest_run = NULL, updated_at = now()
                   WHERE org_id = %s AND id = %s""",
                (reason[:1000], org_id, document_id),
            )
            conn.execute(
                "DELETE FROM document_chunks_staged WHERE org_id = %s AND document_id = %s",
                (org_id, document_id),
            )

    def upload_state(self, org_id: uuid.UUID, document_id: uuid.UUID) -> UploadState | None:
        """The document's upload, or None for a text document (or no document at all)."""
        with tenant_transaction(org_id) as conn:
            row = conn.execute(
                """SELECT object_key, upload_expires_at, upload_expires_at <= now() AS expired,
                          (status = 'pending' AND uploaded_at IS NULL) AS awaiting, status
                   FROM documents WHERE org_id = %s AND id = %s AND object_key IS NOT NULL""",
                (org_id, document_id),
            ).fetchone()
        if row is None:
            return None
        return UploadState(
            row["object_key"], row["awaiting"], row["upload_expires_at"], row["expired"], row["status"]
        )

    def mark_uploaded(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None:
        """The file is in the bucket: from now on the document is ingested like any other."""
        with tenant_transaction(org_id) as conn:
            conn.execute(
                """UPDATE documents SET uploaded_at = now(), updated_at = now()
                   WHERE org_id = %s AND id = %s AND uploaded_at IS NULL""",
                (org_id, document_id),
            )

    def record_file_hash(self, doc: ClaimedDocument, sha256: str) -> uuid.UUID | None:
        """Store the hash of the file's bytes; when another document of the organisation was already
        ingested from identical bytes, mark this one its duplicate (``failed``, nothing embedded) and
        return the original's id.

        Serialised per (organisation, hash) with a transaction-level advisory lock, taken again when the
        chunks are saved, so two identical files ingested at once cannot both be embedded.
        """
        with tenant_transaction(doc.org_id) as conn:
            _lock_hash(conn, doc.org_id, sha256)
            original = _ready_original(conn, doc.org_id, doc.document_id, sha256)
            if original is None:
                conn.execute(
                    """UPDATE documents SET content_hash = %s, duplicate_of = NULL
                       WHERE org_id = %s AND id = %s""",
                    (sha256, doc.org_id, doc.document_id),
                )
                return None
            _mark_duplicate(conn, doc.org_id, doc.document_id, sha256, original)
            return original["id"]


def _mark_duplicate(conn, org_id: uuid.UUID, document_id: uuid.UUID, sha256: str, original) -> None:
    """Make the document the duplicate of ``original`` (``failed``, no chunks, nothing staged)."""
    conn.execute(
        """UPDATE documents SET content_hash = %s, duplicate_of = %s, status = 'failed',
                  chunk_count = 0, ingested_hash = NULL, ingest_run = NULL, updated_at = now(),
                  error = format('duplicate of document %%s (%%s): identical bytes were already '
                                 'ingested, nothing was embedded again', %s::text, %s::text)
           WHERE org_id = %s AND id = %s""",
        (sha256, original["id"], original["id"], original["name"], org_id, document_id),
    )
    conn.execute("DELETE FROM document_chunks WHERE org_id = %s AND document_id = %s", (org_id, document_id))
    conn.execute(
        "DELETE FROM document_chunks_staged WHERE org_id = %s AND document_id = %s", (org_id, document_id)
    )


def _stored_chunks(conn, doc: ClaimedDocument) -> int:
    return conn.execute(
        "SELECT count(*) AS n FROM document_chunks WHERE org_id = %s AND document_id = %s",
        (doc.org_id, doc.document_id),
    ).fetchone()["n"]


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


def _lock_hash(conn, org_id: uuid.UUID, sha256: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"upload:{org_id}:{sha256}",))


def _ready_original(conn, org_id: uuid.UUID, document_id: uuid.UUID, sha256: str):
    return conn.execute(
        """SELECT id, name FROM documents
           WHERE org_id = %s AND content_hash = %s AND status = 'ready' AND duplicate_of IS NULL
             AND id <> %s
           ORDER BY created_at, id LIMIT 1""",
        (org_id, sha256, document_id),
    ).fetchone()


def _upload_ready(
    store: DocumentStore,
    objects: ObjectStore | None,
    org_id: uuid.UUID,
    document_id: uuid.UUID,
    object_event: str | None,
    version_id: str | None,
) -> Outcome | None:
    """For an uploaded file's document: whether its file is there to ingest (None: go on), or what
    became of the request instead.

    An S3 event counts only for the document of exactly that key while it is ``pending`` or
    ``processing`` (the event delivered again after a worker died); any other (a document deleted,
    already ingested, failed, or a text document) is dropped. A document message (re-ingestion,
    the reaper) for a document still waiting has the bucket checked: the file is there (its event was
    lost or is still queued) and is ingested, or it is not: the document keeps waiting while its URL is
    valid and fails once it has expired.
    """
    upload = store.upload_state(org_id, document_id)
    if object_event is not None and (
        upload is None or upload.object_key != object_event or upload.status not in ("pending", "processing")
    ):
        return Outcome.SKIPPED
    if upload is None or not upload.awaiting:
        return None
    if object_event is None:
        present = (objects or get_object_store()).size_of(upload.object_key, version_id) is not None
        if not present:
            if upload.expired:
                expiry = upload.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                store.mark_failed(org_id, document_id, f"upload not received before {expiry}")
                return Outcome.FAILED
            return Outcome.WAITING
    store.mark_uploaded(org_id, document_id)
    return None


def _read_file(objects: ObjectStore, doc: ClaimedDocument, settings: Settings) -> bytes:
    """The uploaded bytes; PermanentIngestError when they are gone or over the byte limit (checked on
    the object's length before any byte is read)."""
    assert doc.object_key is not None
    try:
        return objects.read(doc.object_key, settings.extract_max_bytes)
    except StoredObjectMissing as exc:
        raise PermanentIngestError("the uploaded file is no longer in storage; upload it again") from exc
    except PayloadTooLarge as exc:
        raise PermanentIngestError(f"file too large: {exc.message}") from exc


def chunk_file(embedder: Embedder, data: bytes, doc: ClaimedDocument, settings: Settings) -> list[Chunk]:
    """Chunks of an uploaded file: its text extracted (ragcore.extractors, under the extraction limits
    and time budget) into sections that keep their page and headings, chunked by structure.
    ExtractionFailed is permanent."""
    from .extractors import ExtractionLimits, extract  # here: only files need the extractors

    try:
        extracted = extract(
            data, doc.content_type or "", name=doc.name, limits=ExtractionLimits.from_settings(settings)
        )
    except ExtractionFailed as exc:
        raise PermanentIngestError(exc.reason) from exc
    return chunk_document(embedder, extracted.sections, settings)


def ingest_document(
    org_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    object_event: str | None = None,
    version_id: str | None = None,
    store: DocumentStore | None = None,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
    objects: ObjectStore | None = None,
    queue: IngestQueue | None = None,
) -> Outcome:
    """Run the whole pipeline for one document.

    A document of more than ``ingest_range_chunks`` chunks is staged instead of embedded here, and its
    ranges are sent to the queue (``ingest_range`` embeds each): no invocation embeds more than a range.

    ``object_event`` is the key of an S3 object-created event that asked for this (the file arrived);
    None for a document message. An uploaded file's bytes are read from the bucket, hashed (identical
    bytes already ingested in the organisation make this document their duplicate, and nothing is
    embedded), extracted, then chunked, embedded and stored like a text document.

    Transient errors propagate (the queue will deliver again) unless this was the last attempt, in which
    case the document is marked ``failed`` and the error is swallowed.
    """
    settings = settings or get_settings()
    store = store or PgDocumentStore()
    tag_tenant(org_id)
    waiting = _upload_ready(store, objects, org_id, document_id, object_event, version_id)
    if waiting is not None:
        return waiting
    doc = store.claim(org_id, document_id)
    if doc is None:
        # Nothing to do: already ingested, or deleted while its message waited (acknowledged). A document
        # of another organisation, though, means the message is forged or corrupted: it goes to the DLQ.
        if store.held_by_another_org(org_id, document_id):
            raise ForeignDocumentMessage(f"document {document_id} does not belong to organisation {org_id}")
        return Outcome.SKIPPED
    if doc.attempts > settings.ingest_max_attempts:
        store.mark_failed(org_id, document_id, f"gave up after {settings.ingest_max_attempts} attempts")
        return Outcome.FAILED
    try:
        embedder = embedder or get_embedder(settings)
        with stage(INGEST_CHUNK):
            if doc.object_key is not None:
                objects = objects or get_object_store()
                data = _read_file(objects, doc, settings)
                sha256 = hashlib.sha256(data).hexdigest()
                if store.record_file_hash(doc, sha256) is not None:
                    return Outcome.DUPLICATE
                doc = replace(doc, content_hash=sha256)
                chunks = chunk_file(embedder, data, doc, settings)
            else:
                chunks = chunk_for(embedder, doc.content, settings)
        if not chunks:
            raise PermanentIngestError("the document contains no text")
        logger.debug("chunked", extra={"chunks": len(chunks), "attempt": doc.attempts})
        store.check_chunk_quota(doc, len(chunks))
        if len(chunks) > settings.ingest_range_chunks:
            return _fan_out(store, queue or get_ingest_queue(), doc, chunks, settings)
        with stage(INGEST_EMBED):
            vectors = embed_in_batches(
                embedder, [c.content for c in chunks], settings.embed_batch_size, settings.embed_max_retries
            )
        count(CHUNKS_EMBEDDED, len(chunks))
        with stage(INGEST_STORE):
            saved = store.save_chunks(doc, chunks, vectors, embedder.model_name)
        # Not saved because an identical file became ready meanwhile: this one is its duplicate.
        unsaved_upload = not saved and doc.object_key is not None and doc.content_hash is not None
        if unsaved_upload and store.record_file_hash(doc, doc.content_hash) is not None:
            return Outcome.DUPLICATE
        return Outcome.READY if saved else Outcome.SKIPPED
    except (PermanentIngestError, ExtractionFailed, ChunkQuotaExceeded) as exc:
        store.mark_failed(org_id, document_id, str(exc))
        return Outcome.FAILED
    except Exception as exc:
        if doc.attempts >= settings.ingest_max_attempts:
            store.mark_failed(org_id, document_id, f"ingestion failed: {type(exc).__name__}: {exc}")
            return Outcome.FAILED
        raise


def _fan_out(
    store: DocumentStore,
    queue: IngestQueue,
    doc: ClaimedDocument,
    chunks: Sequence[Chunk],
    settings: Settings,
) -> Outcome:
    """Stage a large document's chunks and send the first range of each chain; the document stays
    ``processing`` until its last range is stored. A failure to send propagates: the document message
    is delivered again and stages again under a new run (the ranges already sent find their run gone)."""
    run_id = store.stage_chunks(doc, chunks)
    if run_id is None:
        return Outcome.SKIPPED
    size = settings.ingest_range_chunks
    for start in range(0, min(len(chunks), size * settings.ingest_range_chains), size):
        queue.send_range(doc.org_id, doc.document_id, run_id, start, min(start + size, len(chunks)))
    logger.info("staged", extra={"chunks": len(chunks), "run_id": str(run_id)})
    return Outcome.STAGED


def ingest_range(
    org_id: uuid.UUID,
    document_id: uuid.UUID,
    run_id: uuid.UUID,
    start: int,
    stop: int,
    *,
    store: DocumentStore | None = None,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
    queue: IngestQueue | None = None,
) -> Outcome:
    """Embed chunks [start, stop) of a document staged under ``run_id`` and store their vectors, then
    send the next range of this chain (``ingest_range_chains`` ranges further on); the range that finds
    every chunk embedded makes the document ready (``store_range``).

    Idempotent: chunks that already have a vector are not embedded again, and a range of a run that is no
    longer the document's (deleted, re-ingested, failed, already ready) does nothing. At most
    ``ingest_range_chunks`` chunks are embedded, however large the range a message names. Transient
    errors propagate (the queue delivers the range again; a range that never succeeds leaves the
    document ``processing`` without progress, which the reaper re-sends as a whole).
    """
    settings = settings or get_settings()
    store = store or PgDocumentStore()
    tag_tenant(org_id)
    stop = min(stop, start + settings.ingest_range_chunks)
    staged = store.staged_range(org_id, document_id, run_id, start, stop)
    if staged is None:
        return Outcome.SKIPPED
    indexes = [i for i, _ in staged.todo]
    vectors = np.zeros((0, settings.embedding_dimensions), dtype=np.float32)
    model = ""
    if staged.todo:
        embedder = embedder or get_embedder(settings)
        model = embedder.model_name
        with stage(INGEST_EMBED):
            vectors = embed_in_batches(
                embedder,
                [text for _, text in staged.todo],
                settings.embed_batch_size,
                settings.embed_max_retries,
            )
        count(CHUNKS_EMBEDDED, len(indexes))
    with stage(INGEST_STORE):
        try:
            result = store.store_range(org_id, document_id, run_id, indexes, vectors, model)
        except ChunkQuotaExceeded as exc:
            store.mark_failed(org_id, document_id, str(exc))
            return Outcome.FAILED
    logger.debug(
        "range stored", extra={"start": start, "stop": stop, "embedded": len(indexes), "result": result}
    )
    if result == "gone":
        return Outcome.SKIPPED
    if result == "ready":
        return Outcome.READY
    if result == "duplicate":
        return Outcome.DUPLICATE
    following = start + settings.ingest_range_chunks * settings.ingest_range_chains
    if following < staged.total:
        queue = queue or get_ingest_queue()
        queue.send_range(
            org_id,
            document_id,
            run_id,
            following,
            min(following + settings.ingest_range_chunks, staged.total),
        )
    return Outcome.RANGE
