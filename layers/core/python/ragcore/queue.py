"""The ingestion queue: messages are ``{"org_id", "document_id"}`` sent to SQS, chunk-range messages
``{"org_id", "document_id", "run_id", "start", "stop"}`` (embed chunks [start, stop) of a large document
staged under that run), and the upload bucket's S3 event notifications (object created), which the bucket
sends to the same queue."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import get_settings
from .errors import ServiceUnavailable
from .storage import parse_object_key


class IngestQueue(Protocol):
    def send(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None: ...

    def send_range(
        self, org_id: uuid.UUID, document_id: uuid.UUID, run_id: uuid.UUID, start: int, stop: int
    ) -> None: ...

    def backlog(self) -> int: ...


class SqsIngestQueue:
    """Sends ingestion requests to the SQS queue named by QUEUE_URL."""

    def __init__(self, queue_url: str, client=None):
        if not queue_url:
            raise RuntimeError("QUEUE_URL is not configured")
        self.queue_url = queue_url
        settings = get_settings()
        self._client = client or boto3.client(
            "sqs",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}),
        )

    def send(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None:
        """Enqueue one document; ServiceUnavailable when SQS cannot take it."""
        self._send({"org_id": str(org_id), "document_id": str(document_id)})

    def send_range(
        self, org_id: uuid.UUID, document_id: uuid.UUID, run_id: uuid.UUID, start: int, stop: int
    ) -> None:
        """Enqueue the embedding of chunks [start, stop) of a document staged under ``run_id``."""
        self._send(
            {
                "org_id": str(org_id),
                "document_id": str(document_id),
                "run_id": str(run_id),
                "start": start,
                "stop": stop,
            }
        )

    def _send(self, payload: dict) -> None:
        body = json.dumps(payload)
        try:
            self._client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("the ingestion queue is unavailable, try again") from exc

    def backlog(self) -> int:
        """Messages waiting or being processed (SQS's approximate counts); ServiceUnavailable on failure."""
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("the ingestion queue is unavailable") from exc
        return sum(int(value) for value in attributes.values())


@lru_cache(maxsize=1)
def get_ingest_queue() -> IngestQueue:
    """The process-wide queue client (reused across warm invocations)."""
    return SqsIngestQueue(get_settings().queue_url)


def parse_message(body: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(org_id, document_id) from a message body; ValueError for anything else."""
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("message body must be a JSON object")
    return uuid.UUID(str(payload["org_id"])), uuid.UUID(str(payload["document_id"]))


@dataclass(frozen=True)
class IngestRequest:
    """One document to ingest. ``object_key`` is set when an S3 event asked: the file just arrived."""

    org_id: uuid.UUID
    document_id: uuid.UUID
    object_key: str | None = None
    version_id: str | None = None
    # A chunk-range message: embed chunks [start, stop) of the document staged under run_id.
    run_id: uuid.UUID | None = None
    start: int = 0
    stop: int = 0


@dataclass
class ParsedMessage:
    requests: list[IngestRequest] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # why parts of the message lead to nothing


def parse_ingest_message(body: str, bucket: str = "") -> ParsedMessage:
    """What a queue message asks for: a document message, or an S3 event of the upload bucket.

    Parts that can never lead to ingestion are ignored, each with its reason (S3's test event, other
    event types, another bucket, a key no upload URL was made for), so they are neither retried nor sent
    to the dead-letter queue. A body that is neither shape is a ValueError (retried, then dead-lettered).
    """
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("message body must be a JSON object")
    parsed = ParsedMessage()
    if "org_id" in payload or "document_id" in payload:
        org_id, document_id = parse_message(body)
        if "run_id" not in payload:
            parsed.requests.append(IngestRequest(org_id, document_id))
            return parsed
        start, stop = payload.get("start"), payload.get("stop")
        if not (type(start) is int and type(stop) is int and 0 <= start < stop):
            raise ValueError("a chunk-range message needs integers 0 <= start < stop")
        run_id = uuid.UUID(str(payload["run_id"]))
        parsed.requests.append(IngestRequest(org_id, document_id, run_id=run_id, start=start, stop=stop))
        return parsed
    if payload.get("Event") == "s3:TestEvent":
        parsed.ignored.append("S3 test event")
        return parsed
    records = payload.get("Records")
    if not isinstance(records, list):
        raise ValueError("message is neither a document message nor an S3 event")
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            parsed.ignored.append("not an S3 event record")
            continue
        event_name = str(record.get("eventName", ""))
        s3 = record.get("s3") if isinstance(record.get("s3"), dict) else {}
        obj = s3.get("object") if isinstance(s3.get("object"), dict) else {}
        name = (s3.get("bucket") or {}).get("name") if isinstance(s3.get("bucket"), dict) else None
        key = unquote_plus(str(obj.get("key", "")))
        if not event_name.startswith("ObjectCreated:"):
            parsed.ignored.append(f"event {event_name or '?'} of {key!r}")
            continue
        if bucket and name != bucket:
            parsed.ignored.append(f"object {key!r} of another bucket ({name})")
            continue
        ids = parse_object_key(key)
        if ids is None:
            parsed.ignored.append(f"object {key!r} is not an upload of this platform")
            continue
        version = obj.get("versionId")
        parsed.requests.append(
            IngestRequest(*ids, object_key=key, version_id=str(version) if version else None)
        )
    return parsed
