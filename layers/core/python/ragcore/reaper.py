"""The reaper: documents stranded by a lost message or a dead worker end ``ready`` or ``failed``.

Bound (settings, defaults): a document ``pending`` for ``reaper_pending_after_seconds`` (900 s) while the
queue is empty (so its message cannot be waiting there) is sent to the queue again, at most
``reaper_max_requeues`` (3) times, then marked ``failed``; one ``processing`` for
``reaper_processing_after_seconds`` (2100 s, past the queue's visibility timeout, so SQS has had its own
chance to re-deliver) goes back to ``pending`` and is sent again, or is marked ``failed`` once its
``ingest_max_attempts`` are used up. A document still waiting for its uploaded file is not stale while
its upload URL is valid; ``upload_grace_seconds`` (300 s) after the URL expired it is sent to the queue,
and the ingest function either finds the file and ingests it or marks the document ``failed`` with
"upload not received before <expiry>" (so with the defaults and the 5-minute schedule such a document
ends ``failed`` at most 15 + 5 + 5 minutes after it was created, plus the queue's own delay; migration
0006). A large document waiting for its chunk ranges stays ``processing`` and each range stored touches
its ``updated_at``, so it is judged stale only when no range made progress for the bound (its range
messages lost), and is then sent again and staged anew. Run every few minutes (in AWS on a schedule;
locally at start-up and periodically), every document therefore leaves ``pending``/``processing``
within a bounded time.

The decision is taken in one SQL statement (``reap_stale_documents``, a SECURITY DEFINER function: the
reaper works across tenants, which the application role cannot do on its own), with the chosen rows
locked ``SKIP LOCKED`` so two reapers never pick the same document.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from .config import Settings, get_settings
from .db import anonymous_transaction
from .observability import logger
from .queue import IngestQueue, get_ingest_queue


@dataclass(frozen=True)
class StaleDocument:
    org_id: uuid.UUID
    document_id: uuid.UUID
    action: str  # "requeue" or "failed"


@dataclass
class ReapReport:
    """What one run did."""

    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    unsent: list[uuid.UUID] = field(default_factory=list)  # the queue refused: next run tries again
    purged_throttle_rows: int = 0
    backlog: int = 0  # messages in the queue when the run started; pending documents wait while > 0


class StaleDocumentSource(Protocol):
    def take(
        self,
        pending_after: int | None,
        processing_after: int,
        max_requeues: int,
        max_attempts: int,
        limit: int,
        upload_grace: int,
    ) -> list[StaleDocument]:
        """Decide and mark the stale documents; ``pending_after`` None leaves pending ones alone
        (except uploads whose URL expired more than ``upload_grace`` seconds ago)."""
        ...

    def purge_throttle(self, older_than_seconds: int) -> int: ...


class PgStaleDocumentSource:
    """StaleDocumentSource over PostgreSQL (the SECURITY DEFINER functions of migrations 0004, 0006)."""

    def take(
        self,
        pending_after: int | None,
        processing_after: int,
        max_requeues: int,
        max_attempts: int,
        limit: int,
        upload_grace: int,
    ) -> list[StaleDocument]:
        with anonymous_transaction() as conn:
            rows = conn.execute(
                "SELECT org_id, document_id, action FROM reap_stale_documents(%s, %s, %s, %s, %s, %s)",
                (pending_after, processing_after, max_requeues, max_attempts, limit, upload_grace),
            ).fetchall()
        return [StaleDocument(r["org_id"], r["document_id"], r["action"]) for r in rows]

    def purge_throttle(self, older_than_seconds: int) -> int:
        with anonymous_transaction() as conn:
            return int(
                conn.execute("SELECT auth_throttle_purge(%s) AS n", (older_than_seconds,)).fetchone()["n"]
            )


def reap(
    *,
    pending_after_seconds: int | None = None,
    processing_after_seconds: int | None = None,
    source: StaleDocumentSource | None = None,
    queue: IngestQueue | None = None,
    settings: Settings | None = None,
) -> ReapReport:
    """Re-send or fail every stranded document (up to the batch size); also drop old throttle counts.

    The bounds default to the settings; the local stack passes 0 at start-up, when nothing can still be
    in flight because its queue lived in the previous process.
    """
    settings = settings or get_settings()
    source = source or PgStaleDocumentSource()
    queue = queue or get_ingest_queue()
    report = ReapReport()
    if pending_after_seconds is None:
        pending_after_seconds = settings.reaper_pending_after_seconds
    if processing_after_seconds is None:
        processing_after_seconds = settings.reaper_processing_after_seconds
    report.backlog = queue.backlog()
    stale = source.take(
        # A pending document may simply be waiting behind others: only a drained queue proves its message
        # lost. A document stuck in `processing` is judged by its age alone.
        None if report.backlog else pending_after_seconds,
        processing_after_seconds,
        settings.reaper_max_requeues,
        settings.ingest_max_attempts,
        settings.reaper_batch_size,
        settings.upload_grace_seconds,
    )
    for doc in stale:
        if doc.action == "failed":
            report.failed.append(doc.document_id)
            continue
        try:
            queue.send(doc.org_id, doc.document_id)
            report.requeued.append(doc.document_id)
        except Exception:
            # Still pending with a fresh updated_at: the next run after the bound sends it again.
            logger.exception(
                "could not re-send a stranded document", extra={"document_id": str(doc.document_id)}
            )
            report.unsent.append(doc.document_id)
    # Rows whose window ended long ago count for nothing; a day's margin keeps the table small.
    longest = max(settings.login_window_seconds, settings.register_window_seconds)
    report.purged_throttle_rows = source.purge_throttle(longest + 86_400)
    return report
