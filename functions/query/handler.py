"""Query function: synchronous answers, and the health check."""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore import query
from ragcore.api import QueryAnswer, QueryRequest, as_json_request, authenticate, create_resolver
from ragcore.observability import logger

app = create_resolver()


@app.post(
    "/api/v1/query/sync",
    responses={200: {"description": "The answer", "content": {"application/json": {"model": QueryAnswer}}}},
)
def query_sync(body: QueryRequest):
    return query.answer(
        authenticate(app), body.question, body.top_k, body.filters, body.mode, body.document_ids
    )


@app.get("/api/v1/health")
def health():
    return {"status": "ok"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(as_json_request(event), context)
