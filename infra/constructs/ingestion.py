"""Ingestion: the SQS queue (+ DLQ) that feeds the ingest function in partial-failure batches, and the
scheduled reaper that re-sends or fails documents whose message was lost or whose worker died."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.service_function import ServiceFunction

# AWS advises a visibility timeout of at least six times the function timeout for SQS sources,
# so a batch retried by the poller is not handed to a second invocation while the first still runs.
VISIBILITY_FACTOR = 6
DLQ_RETENTION = Duration.days(14)


class Ingestion(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, ingest_timeout: Duration, max_receive_count: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            retention_period=DLQ_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=Duration.seconds(ingest_timeout.to_seconds() * VISIBILITY_FACTOR),
            retention_period=Duration.days(4),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
        )
        self.max_receive_count = max_receive_count

    def connect(self, ingest: ServiceFunction, *, batch_size: int, max_concurrency: int) -> None:
        """Ingest reads the queue in batches, reporting the failed items only (Powertools
        BatchProcessor); concurrency is capped to protect the database and the embedding provider. It
        also sends to the queue: a large document's chunk ranges are messages of their own."""
        self.queue.grant_send_messages(ingest.function)
        ingest.function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=batch_size,
                max_concurrency=max_concurrency,
                report_batch_item_failures=True,
            )
        )

    def reap_with(self, reaper: ServiceFunction, *, every: Duration) -> events.Rule:
        """Run the reaper on an EventBridge schedule; it may send to the queue (and nothing else)."""
        self.queue.grant_send_messages(reaper.function)
        rule = events.Rule(
            self,
            "ReaperSchedule",
            description="re-sends or fails documents stranded in pending/processing",
            schedule=events.Schedule.rate(every),
        )
        # One attempt: a failed run is simply the next scheduled one.
        rule.add_target(targets.LambdaFunction(reaper.function, retry_attempts=0))
        return rule
