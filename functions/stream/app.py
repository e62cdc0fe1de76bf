"""Stream function: answers over Server-Sent Events, an ASGI app run by the Lambda Web Adapter.

POST /api/v1/query takes the body of /api/v1/query/sync and answers with ``text/event-stream``:
``sources``, then one ``token`` event per piece of text as the generator produces it, then ``done`` with
the usage and ``abstained`` (true when the answer is the no-answer sentence); a failure after the
stream has started ends it with ``error`` ({"code", "message"}). Every data line is JSON. Both endpoints
run one code path, :func:`ragcore.query.answer_events`.

Everything that can be refused is refused before the stream starts, with the documented JSON error
body: 401 (the JWT or API key is verified here, the Function URL has no auth of its own), 400
(malformed JSON), 413, 422 (validation), and failures of retrieval (503/500). The response starts once
the sources are known, so the first byte carries the ``sources`` event.

``answer_events`` is synchronous (database, embedder, provider HTTP): each step runs in a worker
thread and its event is sent as soon as it exists. When the client disconnects, the pending step
finishes, the event iterator is closed, and closing it closes the generator and the provider's HTTP
response: no generation goes on for nobody.

With a ``conversation_id``, the turn is stored when the answer is complete, just before ``done``: a
client that disconnects earlier closes the iterator before that point, so nothing of the abandoned
turn is stored (nor one that ended with ``error``). A conversation that is not the caller's is a 404
before the stream starts, and so is a failure to condense the question (503).

GET /api/v1/health is the adapter's readiness check (AWS_LWA_READINESS_CHECK_PATH).

Responses to an allowed Origin (``CORS_ALLOWED_ORIGINS``) carry Access-Control-Allow-Origin, the 401s
and other refusals included (see ragcore.cors).

Every response carries ``X-Request-Id``: the client's own when well formed, else the Function URL's
request id, else a new one (ragcore.observability.correlation_id_from). It is the ``correlation_id`` of
every log line of the request, which after authentication also carry the caller (``org_id`` and
``user_id`` or ``api_key_id``); each answer prints its stage latencies as one EMF record.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
from aws_lambda_powertools.metrics import EphemeralMetrics
from pydantic import ValidationError
from ragcore import query
from ragcore.api import QueryRequest, describe_validation_errors, http_status, parse_json_body
from ragcore.auth import principal_from_authorization
from ragcore.config import get_settings
from ragcore.cors import CorsMiddleware
from ragcore.errors import RagError, RateLimited
from ragcore.observability import (
    REQUEST_ID_HEADER,
    correlation_id_from,
    flush,
    logger,
    request_metrics,
)
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_BODY_BYTES = 256 * 1024  # a question is at most 4,000 characters; filters are small
PING_SECONDS = 15  # SSE comment lines keep idle proxies from closing a slow answer
SEP = "\n"  # line ends of the SSE frames (the format allows \n, \r\n or \r)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_END = object()

# Keys this request must not show unless it sets them. The local stack serves this app in the process of
# the Lambda handlers, whose last invocation leaves its context and caller in the logger's shared keys;
# a key set to None here hides that one and is left out of the line. (In AWS this process is the stream
# function's alone.)
NOT_A_LAMBDA_INVOCATION = dict.fromkeys(
    ("function_name", "function_memory_size", "function_arn", "function_request_id", "cold_start")
)
UNSET_CALLER = dict.fromkeys(("user_id", "api_key_id"))


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The documented error body: {"error": {"code", "message"}}."""
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def _rag_error_response(exc: RagError) -> Response:
    headers = {"Retry-After": str(exc.retry_after_seconds)} if isinstance(exc, RateLimited) else None
    return error_response(http_status(exc), exc.code, exc.message, headers)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _next(events: Iterator[query.QueryEvent]) -> Any:
    # StopIteration cannot cross a thread boundary (asyncio turns it into RuntimeError).
    return next(events, _END)


def _sse(kind: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(data, ensure_ascii=False, separators=(",", ":")), event=kind, sep=SEP
    )


async def _stream(
    first: query.QueryEvent,
    events: Iterator[query.QueryEvent],
    context: dict[str, Any],
    stage_metrics: EphemeralMetrics,
) -> AsyncIterator[ServerSentEvent]:
    started = time.perf_counter()
    outcome = "cancelled"  # unless the loop below says otherwise
    tokens = 0
    try:
        event: Any = first
        while event is not _END:
            tokens += event.kind == "token"
            yield _sse(event.kind, event.data)
            # Not abandoned on cancellation: a step in progress finishes before the iterator is closed.
            event = await anyio.to_thread.run_sync(_next, events)
        outcome = "done"
    except RagError as exc:  # the provider failed (after retries, or after the first token)
        outcome = exc.code
        yield _sse("error", {"code": exc.code, "message": exc.message})
    except Exception:
        outcome = "internal_error"
        logger.exception("stream failed", extra=context)
        yield _sse("error", {"code": "internal_error", "message": "internal server error"})
    finally:
        # Runs on completion, failure and client disconnect (cancellation) alike; shielded so that a
        # cancelled request still closes the generator and the provider's response.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(events.close)
        flush(stage_metrics)  # the stages of this answer, as one EMF record
        logger.info(
            "stream finished",
            extra={
                **context,
                "outcome": outcome,
                "tokens": tokens,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )


async def query_stream(request: Request) -> Response:
    try:
        principal = principal_from_authorization(request.headers.get("authorization"))
    except RagError as exc:
        return _rag_error_response(exc)
    try:
        raw = await _read_body(request)
    except _TooLarge:
        return error_response(413, "payload_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
    except ClientDisconnect:
        return Response(status_code=400)
    try:
        payload = parse_json_body(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return error_response(400, "bad_request", "request body is not valid JSON")
    try:
        body = QueryRequest.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        return error_response(422, "validation_error", describe_validation_errors(errors))

    context = principal.log_keys()
    # Every later line of this request (ragcore's included, in worker threads too) carries the caller.
    logger.thread_safe_append_keys(**{**UNSET_CALLER, **context})
    stage_metrics = request_metrics()
    events = query.answer_events(
        principal,
        body.question,
        body.top_k,
        body.filters,
        body.mode,
        body.document_ids,
        body.conversation_id,
    )
    # Retrieval runs before the response starts: its failures are ordinary HTTP errors.
    try:
        first = await anyio.to_thread.run_sync(_next, events)
    except RagError as exc:
        flush(stage_metrics)
        return _rag_error_response(exc)
    except Exception:
        flush(stage_metrics)
        logger.exception("query failed before streaming", extra=context)
        return error_response(500, "internal_error", "internal server error")
    if first is _END:  # answer_events always yields sources first; never reached
        return error_response(500, "internal_error", "internal server error")
    return EventSourceResponse(
        _stream(first, events, context, stage_metrics), headers=SSE_HEADERS, ping=PING_SECONDS, sep=SEP
    )


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(405, "method_not_allowed", "method not allowed", dict(exc.headers or {}))
    if exc.status_code == 404:
        return error_response(404, "not_found", "no such route")
    return error_response(exc.status_code, "bad_request", str(exc.detail))


async def _unexpected(_request: Request, _exc: Exception) -> Response:
    logger.exception("unhandled error")
    return error_response(500, "internal_error", "internal server error")


class CorrelationId:
    """Gives each request a correlation id (see ragcore.observability.correlation_id_from): on every log
    line written while serving it, and returned to the client in the X-Request-Id response header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        correlation_id = correlation_id_from(headers)
        # Each request runs in a task of its own, with its own copy of the context: these keys (context
        # variables) are this request's only, however many requests the process serves at once.
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**NOT_A_LAMBDA_INVOCATION, correlation_id=correlation_id)

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (REQUEST_ID_HEADER.encode(), correlation_id.encode()),
                    ],
                }
            await send(message)

        await self.app(scope, receive, send_with_id)


# CORS wraps the whole application, Starlette's handler of unexpected errors included, so that a browser
# can read every answer an allowed origin gets (the Function URL's own CORS settings say the same).
app = CorrelationId(
    CorsMiddleware(
        Starlette(
            routes=[
                Route("/api/v1/query", query_stream, methods=["POST"]),
                Route("/api/v1/health", health, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error, Exception: _unexpected},
        ),
        allowed=lambda: get_settings().cors_allowed_origins,
    )
)
