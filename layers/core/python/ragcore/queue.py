"""The ingestion queue: messages are ``{"org_id", "document_id"}`` sent to SQS."""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from typing import Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import get_settings
from .errors import ServiceUnavailable


class IngestQueue(Protocol):
    def send(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None: ...

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
        body = json.dumps({"org_id": str(org_id), "document_id": str(document_id)})
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
