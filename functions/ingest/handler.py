"""Ingest function: processes SQS batches of {org_id, document_id}, reporting partial batch failures."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore.ingest import ingest_document
from ragcore.observability import logger
from ragcore.queue import parse_message

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    org_id, document_id = parse_message(record.body)
    logger.append_keys(org_id=str(org_id), document_id=str(document_id))
    outcome = ingest_document(org_id, document_id)
    logger.info("document processed", extra={"outcome": outcome.value})
    return outcome.value


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
