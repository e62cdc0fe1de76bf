"""The template's queues, created on the local SQS endpoint, and the event source mapping that polls them."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .events import build_sqs_event, messages_to_delete, queue_arn
from .functions import FunctionError, LocalFunction
from .template import QueueSpec, SqsEventSource, Template

log = logging.getLogger("infra.local.sqs")

# Queue properties that mean the same locally (SSE and tags are irrelevant on a laptop).
_COPIED_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
)


def _creation_order(queues: dict[str, QueueSpec]) -> list[QueueSpec]:
    """Dead-letter queues first: a queue's redrive policy needs its DLQ's ARN."""
    ordered: list[QueueSpec] = []

    def visit(spec: QueueSpec, seen: tuple[str, ...] = ()) -> None:
        if spec in ordered or spec.name in seen:
            return
        if spec.dead_letter_queue in queues:
            visit(queues[spec.dead_letter_queue], (*seen, spec.name))
        ordered.append(spec)

    for spec in queues.values():
        visit(spec)
    return ordered


def ensure_queues(
    client: Any, template: Template, *, name_prefix: str, visibility_timeout: int
) -> dict[str, str]:
    """Creates (or updates) every queue of the template; returns logical id -> queue URL.

    The visibility timeout is shortened locally so a failed message comes back in seconds, not minutes.
    """
    urls: dict[str, str] = {}
    for spec in _creation_order(template.queues):
        name = f"{name_prefix}-{spec.name}"
        if spec.properties.get("FifoQueue"):
            name += ".fifo"
        attributes = {key: str(spec.properties[key]) for key in _COPIED_ATTRIBUTES if key in spec.properties}
        attributes["VisibilityTimeout"] = str(visibility_timeout)
        if spec.properties.get("FifoQueue"):
            attributes["FifoQueue"] = "true"
        if spec.dead_letter_queue:
            dlq_url = urls[spec.dead_letter_queue]
            dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(spec.max_receive_count or 5)}
            )
        try:
            url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except ClientError as exc:
            # The queue exists with other attributes (an earlier run, or another template version).
            if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            url = client.get_queue_url(QueueName=name)["QueueUrl"]
            client.set_queue_attributes(
                QueueUrl=url, Attributes={k: v for k, v in attributes.items() if k != "FifoQueue"}
            )
        urls[spec.name] = url
    return urls


class SqsPoller:
    """What Lambda's SQS event source mapping does: long-poll, invoke with a batch, delete what succeeded.

    Messages that failed are left alone: they become visible again after the visibility timeout and,
    after maxReceiveCount receives, SQS moves them to the dead-letter queue.
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        function: LocalFunction,
        source: SqsEventSource,
        *,
        region: str,
        wait_seconds: int = 5,
    ):
        self.client = client
        self.queue_url = queue_url
        self.function = function
        self.source = source
        self.region = region
        self.wait_seconds = wait_seconds
        self.event_source_arn = queue_arn(queue_url, region)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-poller-{self.function.name}", daemon=True
        )
        self._thread.start()

    def request_stop(self) -> None:
        """Stops polling after the receive or invocation in progress."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stops polling and waits for the thread; False if an invocation is still running after
        ``timeout``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout if timeout is not None else self.wait_seconds + 5)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (BotoCoreError, ClientError) as exc:
                if self._stop.is_set():
                    return
                log.warning("polling %s failed: %s; retrying", self.queue_url, exc)
                self._stop.wait(1)

    def poll_once(self, wait_seconds: int | None = None) -> int:
        """One receive and invocation; returns how many messages were received."""
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(self.source.batch_size, 10)),
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return 0
        event = build_sqs_event(messages, self.event_source_arn, self.region)
        ids = [message["MessageId"] for message in messages]
        result, raised = None, False
        try:
            result = self.function.invoke(event)
        except FunctionError:
            raised = True  # logged by the function wrapper; the whole batch is retried
        done = set(
            messages_to_delete(
                ids, result, raised=raised, report_batch_item_failures=self.source.report_batch_item_failures
            )
        )
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
            if message["MessageId"] in done
        ]
        if entries:
            outcome = self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in outcome.get("Failed") or []:
                log.warning("could not delete message %s: %s", failure.get("Id"), failure.get("Message"))
        if len(done) < len(ids):
            log.info(
                "%s: %d of %d messages failed and will be retried",
                self.function.name,
                len(ids) - len(done),
                len(ids),
            )
        return len(messages)
