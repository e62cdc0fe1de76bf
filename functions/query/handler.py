"""Query function: synchronous answers, the caller's conversations, and the health check.

Conversations are served here rather than by the documents function: they are the history of the
queries this function answers, and a client reading them is usually about to ask (a warm environment
of this function then answers both). Listing and reading them load no model (the embedder is created
on the first question).
"""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore import conversations, query
from ragcore.api import (
    QUERY_RESPONSES,
    CreateConversationRequest,
    QueryRequest,
    as_json_request,
    authenticate,
    create_resolver,
    json_response,
    no_content,
    parse_id,
)
from ragcore.observability import logger, scoped_metrics, tracer

app = create_resolver()

CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


@app.post("/api/v1/query/sync", responses=QUERY_RESPONSES)
def query_sync(body: QueryRequest):
    principal = authenticate(app)
    with scoped_metrics():  # per-stage latencies of this answer, one EMF blob tagged with the tenant
        return query.answer(
            principal,
            body.question,
            body.top_k,
            body.filters,
            body.mode,
            body.document_ids,
            body.conversation_id,
        )


@app.post("/api/v1/conversations")
def create_conversation(body: CreateConversationRequest):
    conversation = conversations.create_conversation(authenticate(app), body.title)
    return json_response(201, {"conversation": conversation})


@app.get("/api/v1/conversations")
def list_conversations(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            max_length=200,
            description="Opaque: the next_cursor of the previous page (anything else is 400)",
        ),
    ] = None,
):
    return conversations.list_conversations(authenticate(app), limit=limit, cursor=cursor)


@app.get("/api/v1/conversations/<conversation_id>")
def get_conversation(
    conversation_id: str,
    limit: Annotated[
        int, Query(ge=1, le=100, description="Messages per page: the latest, in the order written")
    ] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            max_length=200,
            description="Opaque: the next_cursor of the previous page, which leads to earlier messages",
        ),
    ] = None,
):
    return conversations.get_conversation(
        authenticate(app), parse_id(conversation_id, "conversation"), limit=limit, cursor=cursor
    )


@app.delete("/api/v1/conversations/<conversation_id>")
def delete_conversation(conversation_id: str):
    conversations.delete_conversation(authenticate(app), parse_id(conversation_id, "conversation"))
    return no_content()


@app.get("/api/v1/health")
def health():
    return {"status": "ok"}


# The response is not traced (it holds answers, tokens, secrets); the event is never logged (it holds the
# Authorization header and the body), whatever POWERTOOLS_LOGGER_LOG_EVENT says.
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False
)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(as_json_request(event), context)
