"""HTTP glue shared by the API functions: request models, authentication, and the one place where
domain errors become HTTP responses with the documented error body."""

from __future__ import annotations

import json
import math
import time
import uuid
from http import HTTPStatus
from typing import Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from .auth import Principal, principal_from_authorization
from .config import get_settings
from .cors import add_cors_headers
from .errors import (
    BadRequest,
    Conflict,
    ExtractionFailed,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RagError,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
)
from .extractors import SUPPORTED_CONTENT_TYPES
from .observability import logger

HTTP_STATUS: dict[type[RagError], int] = {
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    InvalidInput: 422,
    ExtractionFailed: 422,
    RateLimited: 429,
    ServiceUnavailable: 503,
}


def http_status(exc: RagError) -> int:
    """The HTTP status of a domain error, subclasses included."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


# The schema says what validation enforces (the same regexes run in pydantic and in JSON Schema clients):
# text PostgreSQL can store (no NUL), text that is not blank, a password with 8 characters besides
# leading and trailing spaces. Whitespace is spelt out as the characters str.strip() removes: `\s` means
# something else in each regex engine (Python, Rust's for pydantic, ECMAScript's for JSON Schema).
WS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
EMAIL_PATTERN = rf"^[^@{WS}\u0000]+@[^@{WS}\u0000]+\.[^@{WS}\u0000]+$"
NO_NUL_PATTERN = r"^[^\u0000]*$"
NOT_BLANK_PATTERN = rf"^[^\u0000]*[^{WS}\u0000][^\u0000]*$"
PASSWORD_PATTERN = rf"^[{WS}]*[^{WS}\u0000][^\u0000]{{6,}}[^{WS}\u0000][{WS}]*$"
PASSWORD_DESCRIPTION = (
    "8 characters at least, not counting leading and trailing spaces; at most 72 bytes of UTF-8"
)


MAX_JSON_DEPTH = 32  # nesting allowed inside metadata and filters


def _storable_problem(value: Any) -> str | None:
    """Why ``value`` (or anything inside it) cannot be stored as PostgreSQL text or jsonb, if it cannot.

    Iterative, so a deeply nested value is reported rather than exhausting the stack.
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "text must not contain NUL (\\u0000) characters"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "text must be valid Unicode (no unpaired surrogate escapes)"
        elif isinstance(item, float) and not math.isfinite(item):
            return "numbers must be finite"
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return f"values must not nest deeper than {MAX_JSON_DEPTH} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
            pending.extend((child, depth + 1) for child in children)
    return None


def _reject_non_finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {literal[:40]}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_body(body: str | bytes) -> Any:
    """Parse a request body as strict JSON (UTF-8; no NaN or Infinity, no numbers out of range).

    Every failure, including nesting beyond the parser's depth and integers beyond Python's digit limit,
    is a ``json.JSONDecodeError``, which the API reports as 400.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return json.loads(text, parse_float=_reject_non_finite, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise json.JSONDecodeError(f"invalid JSON: {type(exc).__name__}", "", 0) from exc


def parse_json_object_body(body: str | bytes) -> dict[str, Any]:
    """``parse_json_body`` for the REST routes, whose bodies are all JSON objects: any other top level
    (an array, a string) is refused here, since the validation layer would otherwise read the first item
    of an array as the body."""
    payload = parse_json_body(body)
    if not isinstance(payload, dict):
        raise InvalidInput("body: must be a JSON object")
    return payload


class StrictModel(BaseModel):
    # Unknown fields are refused so that a misspelt option ("topk") is reported, not silently ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="after")
    def _text_is_storable(self):
        # JSON can carry NUL characters and lone surrogates, which PostgreSQL (and UTF-8) cannot hold:
        # refused here as invalid input rather than failing later as a database error.
        for name in type(self).model_fields:
            problem = _storable_problem(getattr(self, name))
            if problem:
                raise ValueError(f"{name}: {problem}")
        return self


def _password_fits_bcrypt(value: str) -> str:
    if len(value.encode()) > 72:
        raise ValueError("password must be at most 72 bytes")
    if len(value.strip()) < 8:
        # Eight spaces are eight characters but no secret at all.
        raise ValueError("password must have at least 8 characters besides leading and trailing spaces")
    return value


class RegisterRequest(StrictModel):
    org_name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK_PATTERN)
    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    password: str = Field(
        min_length=8, max_length=72, pattern=PASSWORD_PATTERN, description=PASSWORD_DESCRIPTION
    )

    _password = field_validator("password")(_password_fits_bcrypt)

    @field_validator("org_name")
    @classmethod
    def _org_name_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("org_name must not be blank")
        return value.strip()


class LoginRequest(StrictModel):
    email: str = Field(min_length=1, max_length=320, pattern=NO_NUL_PATTERN)
    password: str = Field(min_length=1, max_length=1024, pattern=NO_NUL_PATTERN)


class CreateUserRequest(StrictModel):
    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    password: str = Field(
        min_length=8, max_length=72, pattern=PASSWORD_PATTERN, description=PASSWORD_DESCRIPTION
    )
    role: Literal["admin", "member"] = "member"

    _password = field_validator("password")(_password_fits_bcrypt)


class CreateApiKeyRequest(StrictModel):
    name: str = Field(
        min_length=1, max_length=100, pattern=NOT_BLANK_PATTERN, description="What the key is for"
    )
    scope: Literal["query", "write", "admin"] = Field(
        description=(
            "query: ask questions only; write: also create, list, re-ingest and delete documents; "
            "admin: everything, users and API keys included"
        )
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (with a time zone; in the future)"
    )


class CreateDocumentRequest(StrictModel):
    name: str = Field(min_length=1, max_length=512, pattern=NO_NUL_PATTERN)
    content: str = Field(pattern=NOT_BLANK_PATTERN)
    metadata: dict[str, Any] | None = None


class CreateUploadRequest(StrictModel):
    name: str = Field(min_length=1, max_length=512, pattern=NOT_BLANK_PATTERN)
    content_type: Literal[SUPPORTED_CONTENT_TYPES] = Field(  # type: ignore[valid-type]
        description="The file's media type, sent unchanged as the PUT's Content-Type (it is signed)"
    )
    # Strict: "1024" and 1024.0 are refused rather than coerced. The byte limit (MAX_UPLOAD_BYTES) is
    # checked by ragcore.documents.create_upload: 413 above it.
    size: int = Field(
        ge=1, strict=True, description="The file's exact length in bytes, signed as the PUT's Content-Length"
    )
    metadata: dict[str, Any] | None = None


class QueryRequest(StrictModel):
    question: str = Field(min_length=1, max_length=4000, pattern=NOT_BLANK_PATTERN)
    # Strict: "5", 5.0 and true are refused rather than coerced.
    top_k: int = Field(default=5, ge=1, le=50, strict=True)
    filters: dict[str, Any] | None = Field(
        default=None,
        description='Metadata the documents must contain (JSON containment), e.g. {"team": "hr"}',
    )
    mode: Literal["hybrid", "dense", "lexical"] = Field(
        default="hybrid",
        description="Retrievers: hybrid (dense and BM25, fused), dense (embeddings) or lexical (BM25)",
    )
    document_ids: list[uuid.UUID] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Search only these documents of the caller's organisation",
    )
    conversation_id: uuid.UUID | None = Field(
        default=None,
        description=(
            "One of the caller's conversations (404 otherwise): the question is understood in its "
            "context and, once answered, stored in it with the answer and its sources. The response "
            'then also has "conversation": {"id", "retrieval": {"query", "method"}}, saying what '
            "retrieval searched with: the question itself (question), a standalone question the model "
            "wrote from the history (condensed), or, with the extractive generator, the question with "
            "the previous ones (with_history)"
        ),
    )

    @field_validator("question")
    @classmethod
    def _question_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value


class CreateConversationRequest(StrictModel):
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NOT_BLANK_PATTERN,
        description="Optional; an untitled conversation is named after its first question",
    )


class AnswerSource(BaseModel):
    """A retrieved passage as answers return it (``sources``; the stream's ``sources`` event too)."""

    document_id: str
    document_name: str
    chunk_index: int
    content: str
    score: float
    retrievers: list[str] = Field(description="The retrievers that found the passage: dense, lexical")
    page: int | None = Field(
        description="The page the passage is on (its first page), for files with pages (PDF); else null"
    )
    pages: list[int] | None = Field(
        min_length=2, max_length=2, description="[first, last] page of the passage; null without pages"
    )
    headings: list[str] = Field(
        description="The heading path above the passage, outermost first (Markdown, HTML, DOCX); may be empty"
    )


class QueryAnswer(BaseModel):
    """The synchronous answer; the stream sends the same parts as events."""

    answer: str = Field(description="The answer, citing sources as [n] (1-based positions in sources)")
    abstained: bool = Field(
        description=(
            'True when the answer is the no-answer sentence ("I could not find ..."): no retrieved '
            "chunk cleared the relevance floor (no generator ran), or the generator found nothing to "
            "answer with. The sources are listed all the same."
        )
    )
    sources: list[AnswerSource]
    usage: dict[str, Any] = Field(description="Provider, token counts and retrieved_chunks")
    conversation: dict[str, Any] | None = Field(
        default=None,
        description=(
            'With a conversation_id: {"id", "retrieval": {"query", "method"}}, what retrieval searched with'
        ),
    )


QUERY_RESPONSES: dict[int, Any] = {
    200: {"description": "The answer", "content": {"application/json": {"model": QueryAnswer}}}
}


class Usage(BaseModel):
    """What the organisation holds and has spent."""

    documents: int = Field(description="Documents held (any status)")
    chunks: int = Field(description="Chunks stored for its documents")
    stored_bytes: int = Field(description="Bytes of content held (reserved when each document was created)")
    embedding_tokens: int = Field(description="Tokens embedded: ingested chunks and questions")
    generation_input_tokens: int = Field(description="Tokens sent to the generator, as it reported them")
    generation_output_tokens: int = Field(description="Tokens the generator produced, as it reported them")
    generation_tokens: int = Field(description="generation_input_tokens + generation_output_tokens")
    queries_today: int = Field(description="Questions asked this UTC day (`day`)")
    queries_this_minute: int = Field(description="Questions asked in the current minute")
    queries_total: int = Field(description="Questions asked since the organisation was created")
    day: str = Field(description="The UTC day queries_today counts (YYYY-MM-DD)")


class QuotaLimits(BaseModel):
    """The limits that apply to the organisation (the platform's defaults or its operator's overrides)."""

    documents: int
    chunks: int
    stored_bytes: int
    queries_per_day: int = Field(description="Per UTC day; past it, queries get 429 until midnight UTC")
    queries_per_minute: int


class UsageDay(BaseModel):
    """What the organisation spent on one UTC day."""

    day: str = Field(description="YYYY-MM-DD (UTC)")
    queries: int
    embedding_tokens: int
    generation_input_tokens: int
    generation_output_tokens: int


class UsageResponse(BaseModel):
    usage: Usage
    limits: QuotaLimits
    days: list[UsageDay] = Field(
        description="The last `days` UTC days that saw any use, newest first (days without use are left out)"
    )


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A response carrying the documented error body."""
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"error": {"code": code, "message": message}}),
        headers=headers,
    )


def no_content() -> Response:
    """204, with no body at all (HTTP forbids one)."""
    return Response(status_code=204, body="")


def json_response(status: int, body: Any) -> Response:
    """A JSON response with an explicit status."""
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """One readable line naming each invalid field (at most ten)."""
    parts = []
    for err in errors[:10]:
        location = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{location}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts)


class PlatformResolver(APIGatewayRestResolver):
    """Powertools' REST resolver whose every response, errors and unknown routes included, carries the
    CORS headers of the configured origins (Powertools adds them only to matched routes), and which logs
    one line per request: route, status and duration, never a header, a query string or a body."""

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        response = super().resolve(event, context)
        logger.info(
            "request handled",
            extra={
                "method": event.get("httpMethod"),
                "route": event.get("resource"),
                "status": response.get("statusCode"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return add_cors_headers(event, response, get_settings().cors_allowed_origins)


def create_resolver() -> APIGatewayRestResolver:
    """An API Gateway REST resolver with request validation and the platform's error mapping."""
    # debug=False whatever POWERTOOLS_DEV says: Powertools' debug mode prints every event, and an event
    # holds the Authorization header and the body.
    app = PlatformResolver(enable_validation=True, json_body_deserializer=parse_json_object_body, debug=False)

    @app.exception_handler(RagError)
    def _domain_error(exc: RagError) -> Response:
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after_seconds)}
        return error_response(http_status(exc), exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "bad_request", "request body is not valid JSON")
        if errors and all(tuple(e.get("loc", ()))[:2] == ("query", "cursor") for e in errors):
            # A cursor is opaque: one that is not a cursor is malformed (400), as one that fails to decode.
            return error_response(400, "bad_request", "malformed cursor")
        if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
            # No body at all is malformed (400), as the stream endpoint says too, not an invalid field.
            return error_response(400, "bad_request", "request body is missing; a JSON object is expected")
        return error_response(422, "validation_error", describe_validation_errors(errors))

    @app.exception_handler(UnicodeDecodeError)
    def _undecodable_body(_exc: UnicodeDecodeError) -> Response:
        return error_response(400, "bad_request", "request body is not UTF-8 encoded JSON")

    @app.not_found
    def _no_route(_exc: Exception) -> Response:
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal server error")

    return app


def as_json_request(event: dict[str, Any]) -> dict[str, Any]:
    """The proxy event with its body declared as JSON, whatever Content-Type the client sent.

    Every body of this API is JSON; `curl -d` says application/x-www-form-urlencoded and other clients
    say text/plain or nothing. Reading them all as JSON gives one clear outcome (400 for malformed JSON,
    422 for invalid fields) instead of a form parse of a JSON document.
    """
    if not event.get("body"):
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if k.lower() != "content-type"}
    headers["Content-Type"] = "application/json"
    multi["Content-Type"] = ["application/json"]
    return {**event, "headers": headers, "multiValueHeaders": multi}


def authenticate(app: APIGatewayRestResolver) -> Principal:
    """The verified caller of the current request (a user's JWT or an API key); its org id and its user
    or key id are added to every log line."""
    principal = principal_from_authorization(app.current_event.headers.get("Authorization"))
    logger.append_keys(**principal.log_keys())
    return principal


def client_address(app: APIGatewayRestResolver) -> str | None:
    """The caller's IP address as API Gateway saw it (requestContext.identity.sourceIp)."""
    identity = (app.current_event.get("requestContext") or {}).get("identity") or {}
    address = identity.get("sourceIp")
    return address if isinstance(address, str) and address else None


def parse_id(value: str, what: str) -> uuid.UUID:
    """A path id as UUID; a malformed id names nothing, so it is reported as not found."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(f"{what} not found") from exc
