"""Generates docs/openapi.json from the API functions' routes (run `make openapi` after changing them).

Each function has its own resolver; their documents are merged into one description of the API.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from ragcore.api import NO_NUL_PATTERN

ROOT = Path(__file__).resolve().parents[1]
API_FUNCTIONS = ("auth", "documents", "query")
OUTPUT = ROOT / "docs" / "openapi.json"
PUBLIC_OPERATIONS = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("get", "/api/v1/health"),
}

# What each operation answers besides the errors every operation may give (401 when authenticated, 400
# and 422 when it takes a body): its success status and its own error statuses (DESIGN.md's API table).
OPERATION_STATUSES: dict[tuple[str, str], tuple[int, tuple[int, ...]]] = {
    ("post", "/api/v1/auth/register"): (201, (409, 429)),
    ("post", "/api/v1/auth/login"): (200, (401, 429)),
    ("get", "/api/v1/me"): (200, ()),
    ("post", "/api/v1/users"): (201, (403, 409)),
    ("get", "/api/v1/users"): (200, (403,)),
    ("delete", "/api/v1/users/{user_id}"): (204, (403, 404, 409)),
    ("post", "/api/v1/api-keys"): (201, (403, 409)),
    ("get", "/api/v1/api-keys"): (200, (403,)),
    ("delete", "/api/v1/api-keys/{key_id}"): (204, (403, 404)),
    ("post", "/api/v1/documents"): (202, (403, 409, 413, 503)),
    ("post", "/api/v1/documents/uploads"): (201, (403, 409, 413, 503)),
    ("get", "/api/v1/documents"): (200, (400, 403, 422)),
    ("get", "/api/v1/documents/{document_id}"): (200, (403, 404)),
    ("delete", "/api/v1/documents/{document_id}"): (204, (403, 404, 503)),
    ("post", "/api/v1/documents/{document_id}/reingest"): (202, (403, 404, 503)),
    ("post", "/api/v1/query/sync"): (200, (404, 409, 429, 503)),
    ("get", "/api/v1/usage"): (200, (422,)),
    ("post", "/api/v1/conversations"): (201, ()),
    ("get", "/api/v1/conversations"): (200, (400, 422)),
    ("get", "/api/v1/conversations/{conversation_id}"): (200, (400, 404, 422)),
    ("delete", "/api/v1/conversations/{conversation_id}"): (204, (404,)),
    ("get", "/api/v1/health"): (200, ()),
}
# Either bearer kind is accepted on every authenticated operation (alternatives, as OpenAPI lists them).
SECURITY = [{"bearer": []}, {"apiKey": []}]
# What each event of the stream endpoint is. OpenAPI before 3.2 has the schema of text/event-stream
# describe one event ({event, data, id, retry} as an SSE parser reads it), not the body as a whole;
# `data` is JSON whose shape depends on the event's name. Keep-alive comments (`: ping`) are no events.
_EVENT_DATA: dict[str, dict] = {
    "sources": {
        "type": "object",
        "required": ["sources"],
        "properties": {"sources": {"type": "array", "items": {"type": "object"}}},
    },
    "token": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    "done": {"type": "object", "required": ["usage"], "properties": {"usage": {"type": "object"}}},
    "error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
}
SSE_EVENT_SCHEMA = {
    "description": (
        "One event: `event: <name>` then `data: <JSON>`, the name one of sources, token, done, error; "
        "comment frames (`: ping`) keep the connection alive"
    ),
    "oneOf": [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
            },
        }
        for name, data in _EVENT_DATA.items()
    ],
}
ERROR_DESCRIPTIONS = {
    400: "Malformed request (invalid JSON, bad cursor)",
    401: "Missing, invalid or expired token or API key (login: wrong e-mail or password)",
    403: "The caller's role, or its API key's scope, does not allow this",
    404: "No such resource in the caller's organisation",
    409: "Conflicts with existing state (a taken e-mail, or a quota of documents used up)",
    413: "Content too large (for the request, or for the organisation's storage quota)",
    422: "Invalid fields or parameters",
    429: (
        "Too many attempts, or the organisation's query quota is used up; the Retry-After header says "
        "how many seconds to wait"
    ),
    503: "A dependency (queue, model provider) is unavailable; retry later",
}


def _resolver(function: str):
    path = ROOT / "functions" / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"_openapi_{function}_handler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def _stream_operation(sync_operation: dict) -> dict:
    """The streamed query (served by the stream function's ASGI app, not a Powertools route): the same
    request body as the synchronous query, answered with Server-Sent Events."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "tags": ["stream"],
        "summary": "Answer a question, streamed as Server-Sent Events",
        "description": (
            'Events, in order: `sources` (data {"sources": [...]}, each an `AnswerSource`; '
            "with a `conversation_id` also "
            '"conversation": {"id", "retrieval": {"query", "method"}}), '
            'one or more `token` (data {"text": ...}), then `done` (data {"usage": {...}, '
            '"abstained": bool}: true when the answer is the no-answer sentence, see QueryAnswer); '
            "a failure after the stream started ends it with `error` "
            '(data {"code", "message"}). Each data line is JSON.'
        ),
        "operationId": "query_stream",
        "security": SECURITY,
        "requestBody": sync_operation["requestBody"],
        "responses": {
            "200": {
                "description": "The answer as an event stream",
                "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
            },
            **{
                status: {"description": description, **error}
                for status, description in (
                    ("400", "Malformed JSON"),
                    ("401", "Missing or invalid token or API key"),
                    ("413", "Body too large"),
                    ("404", "No such conversation of the caller"),
                    ("409", "The conversation holds the most turns it can"),
                    ("429", "The organisation's query quota is used up (Retry-After: seconds to wait)"),
                    ("422", "Invalid question"),
                    ("503", "Retrieval or the model provider is unavailable before the stream starts"),
                )
            },
        },
    }


def _document_statuses(method: str, path: str, operation: dict) -> None:
    """Replace the framework's default 200/422 with the statuses the operation really answers."""
    success, own_errors = OPERATION_STATUSES[(method, path)]
    generated = operation.get("responses", {})
    ok = generated.get("200", {"description": "Successful Response"})
    responses: dict = {}
    if success == 204:
        responses["204"] = {"description": "Done; no content"}
    else:
        responses[str(success)] = {**ok, "description": "Success"}
    errors = set(own_errors)
    if (method, path) not in PUBLIC_OPERATIONS:
        errors.add(401)
    if "requestBody" in operation:
        errors |= {400, 422}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == 429:
            responses[str(status)]["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}
            }
    operation["responses"] = responses


# Free-form JSON objects (metadata, filters) hold only what PostgreSQL can store: no NUL in any string or
# key at any depth (ragcore.api refuses it with 422). JSON Schema says so with a recursive definition.
FREE_FORM_FIELDS = (("CreateDocumentRequest", "metadata"), ("QueryRequest", "filters"))
JSON_SCHEMAS = {
    "JsonObject": {
        "type": "object",
        "propertyNames": {"pattern": NO_NUL_PATTERN},
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    },
    "JsonValue": {
        "anyOf": [
            {"type": "string", "pattern": NO_NUL_PATTERN},
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {"$ref": "#/components/schemas/JsonObject"},
        ]
    },
}


def _storable_json(schemas: dict) -> None:
    """Give the free-form objects of the request models the definition of storable JSON."""
    schemas.update(JSON_SCHEMAS)
    for model, field in FREE_FORM_FIELDS:
        branches = schemas[model]["properties"][field]["anyOf"]
        for index, branch in enumerate(branches):
            if branch.get("type") == "object":
                branches[index] = {"$ref": "#/components/schemas/JsonObject"}


def build_openapi() -> dict:
    """The merged OpenAPI document of every API function, with bearer auth and the error body."""
    merged: dict = {
        "openapi": "3.1.0",
        "info": {"title": "RAG platform API", "version": "1.0.0"},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": {},
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        }
                    },
                }
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A person's token, from register or login",
                },
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "rag_<43 base62 characters>",
                    "description": (
                        "A tenant API key (POST /api/v1/api-keys), sent as `Authorization: Bearer rag_...`. "
                        "Scope query: ask only (query, stream, me, health); write: also create, list, "
                        "re-ingest and delete documents; admin: everything, users and API keys included"
                    ),
                },
            },
        },
    }
    for function in API_FUNCTIONS:
        document = json.loads(_resolver(function).get_openapi_json_schema())
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                operation["tags"] = [function]
                if (method, path) not in PUBLIC_OPERATIONS:
                    operation["security"] = SECURITY
                _document_statuses(method, path, operation)
            merged["paths"].setdefault(path, {}).update(operations)
        schemas = document.get("components", {}).get("schemas", {})
        # Validation failures are answered with the platform's Error body, not the framework's.
        for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
            schemas.pop(unused, None)
        merged["components"]["schemas"].update(schemas)
    _storable_json(merged["components"]["schemas"])
    merged["paths"]["/api/v1/query"] = {
        "post": _stream_operation(merged["paths"]["/api/v1/query/sync"]["post"])
    }
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"]["schemas"] = dict(sorted(merged["components"]["schemas"].items()))
    return merged


def render() -> str:
    return json.dumps(build_openapi(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT.relative_to(ROOT)}\n")
