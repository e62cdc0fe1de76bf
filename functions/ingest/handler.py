"""Ingest function: processes SQS batches of document messages ({org_id, document_id}), chunk-range
messages of large documents ({org_id, document_id, run_id, start, stop}) and the upload bucket's S3
object-created events, reporting partial batch failures."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore.config import get_settings
from ragcore.ingest import ingest_document, ingest_range
from ragcore.observability import MetricUnit, logger, metrics, scoped_metrics, tracer
from ragcore.queue import parse_ingest_message

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    message = parse_ingest_message(record.body, get_settings().upload_bucket)
    # The SQS message id ties the lines of one delivery together (a redelivery gets a new id).
    logger.set_correlation_id(record.message_id)
    for reason in message.ignored:
        logger.warning("message part ignored", extra={"reason": reason})
        metrics.add_metric(name="MessagesIgnored", unit=MetricUnit.Count, value=1)
    outcomes = []
    for request in message.requests:
        logger.append_keys(org_id=str(request.org_id), document_id=str(request.document_id))
        with scoped_metrics():  # per-stage latencies of this document, one EMF blob tagged with its tenant
            if request.run_id is not None:
                outcome = ingest_range(
                    request.org_id, request.document_id, request.run_id, request.start, request.stop
                )
            else:
                outcome = ingest_document(
                    request.org_id,
                    request.document_id,
                    object_event=request.object_key,
                    version_id=request.version_id,
                )
        logger.info(
            "document processed", extra={"outcome": outcome.value, "s3_event": request.object_key is not None}
        )
        metrics.add_metric(name=f"Documents{outcome.value.capitalize()}", unit=MetricUnit.Count, value=1)
        outcomes.append(outcome.value)
    return ",".join(outcomes) or "ignored"


@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=len(event.get("Records") or []))
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
