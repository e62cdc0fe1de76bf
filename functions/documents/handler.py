"""Documents function: upload (queued for ingestion) or register a file upload, list, get, delete and
re-ingest, and the organisation's usage and quotas (what it holds is mostly its documents)."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore import documents, quotas
from ragcore.api import (
    CreateDocumentRequest,
    CreateUploadRequest,
    UsageResponse,
    as_json_request,
    authenticate,
    create_resolver,
    json_response,
    no_content,
    parse_id,
)
from ragcore.observability import logger, tracer

app = create_resolver()


@app.post("/api/v1/documents")
def create_document(body: CreateDocumentRequest):
    document = documents.create_document(authenticate(app), body.name, body.content, body.metadata)
    return json_response(202, {"document": document})


@app.post("/api/v1/documents/uploads")
def create_upload(body: CreateUploadRequest):
    created = documents.create_upload(
        authenticate(app), body.name, body.content_type, body.size, body.metadata
    )
    return json_response(201, created)


@app.get("/api/v1/documents")
def list_documents(
    status: Annotated[Literal["pending", "processing", "ready", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_-]+$",
            max_length=200,
            description="Opaque: the next_cursor of the previous page (anything else is 400)",
        ),
    ] = None,
):
    return documents.list_documents(authenticate(app), status=status, limit=limit, cursor=cursor)


@app.get("/api/v1/documents/<document_id>")
def get_document(document_id: str):
    return {"document": documents.get_document(authenticate(app), parse_id(document_id, "document"))}


@app.delete("/api/v1/documents/<document_id>")
def delete_document(document_id: str):
    documents.delete_document(authenticate(app), parse_id(document_id, "document"))
    return no_content()


@app.post("/api/v1/documents/<document_id>/reingest")
def reingest_document(document_id: str):
    document = documents.reingest_document(authenticate(app), parse_id(document_id, "document"))
    return json_response(202, {"document": document})


@app.get("/api/v1/usage")
def get_usage(
    days: Annotated[
        int,
        Query(
            ge=1,
            le=quotas.MAX_USAGE_DAYS,
            description="How many UTC days of spending to list, today included",
        ),
    ] = 7,
) -> UsageResponse:
    return UsageResponse.model_validate(quotas.get_usage(authenticate(app), days))


# The response is not traced (it holds answers, tokens, secrets); the event is never logged (it holds the
# Authorization header and the body), whatever POWERTOOLS_LOGGER_LOG_EVENT says.
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False
)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(as_json_request(event), context)
