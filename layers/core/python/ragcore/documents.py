"""Documents of a tenant: create (and enqueue for ingestion), upload as a file, list, get, delete,
re-ingest."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from psycopg.types.json import Jsonb

from . import quotas
from .auth import Principal
from .config import get_settings
from .cursors import decode_position, encode_position
from .db import tenant_transaction
from .errors import InvalidInput, NotFound, PayloadTooLarge
from .extractors import SUPPORTED_CONTENT_TYPES
from .queue import IngestQueue, get_ingest_queue
from .storage import ObjectStore, get_object_store, object_key

STATUSES = ("pending", "processing", "ready", "failed")
# Lambda takes at most 6,291,456 bytes of event, and the content arrives escaped twice: once as a JSON
# string in the request body, once more as that body inside the API Gateway event. What is left after a
# reserve for headers (API Gateway admits 10 KiB), name, metadata and the event's own fields is the
# content's share; a document over it is refused with 413 whatever its raw size.
LAMBDA_PAYLOAD_BYTES = 6_291_456
MAX_CONTENT_IN_EVENT_BYTES = LAMBDA_PAYLOAD_BYTES - 256 * 1024
_COLUMNS = (
    "id, name, status, error, chunk_count, content_hash, metadata, created_at, updated_at, "
    "content_type, size_bytes, duplicate_of"
)


def content_hash(content: str) -> str:
    """The sha256 of the UTF-8 content, hex-encoded."""
    return hashlib.sha256(content.encode()).hexdigest()


def escaped_size(content: str) -> int:
    """Bytes ``content`` occupies inside an API Gateway event: JSON-escaped in the body, then again."""
    return len(json.dumps(json.dumps(content, ensure_ascii=False), ensure_ascii=False).encode())


def document_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a document."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "status": row["status"],
        "error": row["error"],
        "chunk_count": row["chunk_count"],
        "content_hash": row["content_hash"],
        "metadata": row["metadata"],
        # Uploaded files only (null for text documents): the declared type and size, and the document
        # whose identical bytes were already ingested when this one is a duplicate.
        "content_type": row["content_type"],
        "size": row["size_bytes"],
        "duplicate_of": str(row["duplicate_of"]) if row["duplicate_of"] else None,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def create_document(
    principal: Principal,
    name: str,
    content: str,
    metadata: dict[str, Any] | None = None,
    queue: IngestQueue | None = None,
) -> dict[str, Any]:
    """Store a document as ``pending`` and enqueue it for ingestion.

    The row is committed before the message is sent, so the ingest worker always finds it. If the queue
    refuses the message the row is removed again and the caller gets ServiceUnavailable: a document is
    never left ``pending`` with no message on its way.

    The organisation's document and storage quotas are charged in the transaction that inserts the row
    (QuotaExceeded 409, StorageQuotaExceeded 413): a refused document is never stored nor embedded.
    """
    principal.require("write_documents")
    size = len(content.encode())
    if size > get_settings().max_document_bytes:
        raise PayloadTooLarge(f"content is {size} bytes; the limit is {get_settings().max_document_bytes}")
    in_event = escaped_size(content)
    if in_event > MAX_CONTENT_IN_EVENT_BYTES:
        raise PayloadTooLarge(
            f"content takes {in_event} bytes once JSON-escaped into the Lambda event; the limit is "
            f"{MAX_CONTENT_IN_EVENT_BYTES} (quotes, backslashes and control characters count several times)"
        )
    if not content.strip():
        raise InvalidInput("content must contain some text")
    document_id = uuid.uuid4()
    with tenant_transaction(principal.org_id) as conn:
        quotas.reserve_document(principal, size, conn)
        row = conn.execute(
            f"""INSERT INTO documents (id, org_id, name, content, metadata, content_hash, quota_bytes)
                VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
            (
                document_id,
                principal.org_id,
                name,
                content,
                Jsonb(metadata or {}),
                content_hash(content),
                size,
            ),
        ).fetchone()
    try:
        (queue or get_ingest_queue()).send(principal.org_id, document_id)
    except Exception:
        with tenant_transaction(principal.org_id) as conn:
            _delete_and_release(conn, principal.org_id, document_id)
        raise
    return document_view(row)


def _delete_and_release(conn, org_id: uuid.UUID, document_id: uuid.UUID) -> bool:
    """Delete a document (its chunks go by cascade) and give its quota back, in one transaction."""
    # The row lock first: an ingestion storing this document's chunks meanwhile holds the same lock, so
    # the chunks counted here are the ones the delete removes.
    row = conn.execute(
        "SELECT quota_bytes FROM documents WHERE org_id = %s AND id = %s FOR UPDATE", (org_id, document_id)
    ).fetchone()
    if row is None:
        return False
    chunks = conn.execute(
        "SELECT count(*) AS n FROM document_chunks WHERE org_id = %s AND document_id = %s",
        (org_id, document_id),
    ).fetchone()["n"]
    conn.execute("DELETE FROM documents WHERE org_id = %s AND id = %s", (org_id, document_id))
    quotas.release_document(conn, org_id, row["quota_bytes"], chunks)
    return True


def list_documents(
    principal: Principal, status: str | None = None, limit: int = 20, cursor: str | None = None
) -> dict[str, Any]:
    """A page of documents, newest first, and the cursor of the next page (None on the last page)."""
    principal.require("read_documents")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    conditions = ["org_id = %s"]
    params: list[Any] = [principal.org_id]
    if status:
        conditions.append("status = %s")
        params.append(status)
    if cursor:
        created_at, document_id = decode_position(cursor)
        conditions.append("(created_at, id) < (%s, %s)")
        params.extend([created_at, document_id])
    params.append(limit + 1)
    with tenant_transaction(principal.org_id) as conn:
        rows = conn.execute(
            f"""SELECT {_COLUMNS} FROM documents WHERE {" AND ".join(conditions)}
                ORDER BY created_at DESC, id DESC LIMIT %s""",
            params,
        ).fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_position(page[-1]["created_at"], page[-1]["id"]) if more else None
    return {"items": [document_view(r) for r in page], "next_cursor": next_cursor}


def get_document(principal: Principal, document_id: uuid.UUID) -> dict[str, Any]:
    """One document of the caller's tenant; NotFound otherwise (whoever else owns that id)."""
    principal.require("read_documents")
    with tenant_transaction(principal.org_id) as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM documents WHERE org_id = %s AND id = %s", (principal.org_id, document_id)
        ).fetchone()
    if row is None:
        raise NotFound("document not found")
    return document_view(row)


def delete_document(principal: Principal, document_id: uuid.UUID, store: ObjectStore | None = None) -> None:
    """Delete a document, its chunks and its uploaded file (admin users, and write and admin API keys);
    the organisation gets back the document, bytes and chunks it held against its quotas.

    The file goes first, inside the transaction that holds the row locked: if S3 refuses, the row stays
    (ServiceUnavailable, try again) rather than leaving a file that nothing points to.
    """
    principal.require("manage_documents")
    with tenant_transaction(principal.org_id) as conn:
        row = conn.execute(
            "SELECT object_key FROM documents WHERE org_id = %s AND id = %s FOR UPDATE",
            (principal.org_id, document_id),
        ).fetchone()
        if row is None:
            raise NotFound("document not found")
        if row["object_key"]:
            (store or get_object_store()).delete(row["object_key"])
        _delete_and_release(conn, principal.org_id, document_id)


def reingest_document(
    principal: Principal, document_id: uuid.UUID, queue: IngestQueue | None = None
) -> dict[str, Any]:
    """Rebuild a document's chunks: back to ``pending`` and enqueued again (admins only: it spends
    embedding work and replaces what every member's queries read; write and admin API keys too)."""
    principal.require("manage_documents")
    with tenant_transaction(principal.org_id) as conn:
        row = conn.execute(
            f"""UPDATE documents
                SET status = 'pending', error = NULL, ingested_hash = NULL, attempts = 0, requeues = 0,
                    updated_at = now()
                WHERE org_id = %s AND id = %s RETURNING {_COLUMNS}""",
            (principal.org_id, document_id),
        ).fetchone()
    if row is None:
        raise NotFound("document not found")
    try:
        (queue or get_ingest_queue()).send(principal.org_id, document_id)
    except Exception:
        with tenant_transaction(principal.org_id) as conn:
            conn.execute(
                """UPDATE documents SET status = 'failed', updated_at = now(),
                   error = 'could not be queued for re-ingestion; try again'
                   WHERE org_id = %s AND id = %s""",
                (principal.org_id, document_id),
            )
        raise
    return document_view(row)


def create_upload(
    principal: Principal,
    name: str,
    content_type: str,
    size: int,
    metadata: dict[str, Any] | None = None,
    store: ObjectStore | None = None,
) -> dict[str, Any]:
    """Register a file upload: the document (``pending``, waiting for its file) and a presigned PUT.

    The type and size are checked before anything is stored, and the document and storage quotas are
    charged with the declared size in the transaction that inserts the row; the URL binds the key, type
    and exact length and expires after ``upload_url_expiry_seconds``. The S3 event of the PUT starts
    ingestion; a URL never used leaves the document to the reaper, which fails it once the URL has expired.
    """
    principal.require("write_documents")
    settings = get_settings()
    if content_type not in SUPPORTED_CONTENT_TYPES:
        raise InvalidInput(f"content_type must be one of {', '.join(SUPPORTED_CONTENT_TYPES)}")
    if size < 1:
        raise InvalidInput("size must be at least 1 byte")
    if size > settings.extract_max_bytes:
        raise PayloadTooLarge(f"the file is {size} bytes; the limit is {settings.extract_max_bytes}")
    store = store or get_object_store()
    document_id = uuid.uuid4()
    key = object_key(principal.org_id, document_id)
    expires_in = settings.upload_url_expiry_seconds
    with tenant_transaction(principal.org_id) as conn:
        # The declared size is what the signed URL lets in: charged now, given back on delete.
        quotas.reserve_document(principal, size, conn)
        row = conn.execute(
            f"""INSERT INTO documents (id, org_id, name, content, metadata, object_key, content_type,
                                       size_bytes, upload_expires_at, quota_bytes)
                VALUES (%s, %s, %s, '', %s, %s, %s, %s, now() + make_interval(secs => %s), %s)
                RETURNING {_COLUMNS}, upload_expires_at""",
            (
                document_id,
                principal.org_id,
                name,
                Jsonb(metadata or {}),
                key,
                content_type,
                size,
                expires_in,
                size,
            ),
        ).fetchone()
        # Signed inside the transaction: should signing fail, no document is left waiting for a file.
        presigned = store.presign_put(key, content_type, size, expires_in)
    return {
        "document": document_view(row),
        "upload": {
            "method": "PUT",
            "url": presigned.url,
            "headers": presigned.headers,
            "expires_at": row["upload_expires_at"].isoformat(),
        },
    }
