"""Cross-origin access for browsers: which origins may read the API's responses.

The allowed origins are configuration (``CORS_ALLOWED_ORIGINS``, from the stack's ``corsOrigins``). A
response to an allowed Origin echoes that origin; any other Origin gets no Access-Control-Allow-Origin
at all, so the browser withholds the response. Whenever CORS is configured, responses say
``Vary: Origin``: they differ by origin and a cache must not hand one origin's answer to another.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ALLOWED_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
# Readable by the page: Retry-After tells a throttled client when to come back.
EXPOSED_HEADERS = ("Retry-After",)
PREFLIGHT_MAX_AGE_SECONDS = 600


def cors_headers(origin: str | None, allowed: Iterable[str]) -> dict[str, str]:
    """The CORS headers of a response to a request from ``origin`` (none when CORS is off)."""
    allowed = tuple(allowed)
    if not allowed:
        return {}
    headers = {"Vary": "Origin"}
    if origin and origin.rstrip("/") in allowed:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    return headers


def _request_origin(event: dict[str, Any]) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == "origin":
            return value
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == "origin" and values:
            return values[0]
    return None


def _merge_vary(existing: str | None, value: str) -> str:
    parts = [p.strip() for p in (existing or "").split(",") if p.strip()]
    if value.lower() not in (p.lower() for p in parts):
        parts.append(value)
    return ", ".join(parts)


def add_cors_headers(
    event: dict[str, Any], response: dict[str, Any], allowed: Iterable[str]
) -> dict[str, Any]:
    """The API Gateway proxy ``response`` to ``event`` with its CORS headers (every status, errors
    included: a browser shows the page nothing of a response it may not read)."""
    extra = cors_headers(_request_origin(event), allowed)
    if not extra:
        return response
    multi = response.get("multiValueHeaders")
    if multi is not None:
        for key, value in extra.items():
            if key == "Vary":
                current = ", ".join(multi.get("Vary", []))
                multi["Vary"] = [_merge_vary(current, value)]
            else:
                multi[key] = [value]
    else:
        headers = response.setdefault("headers", {}) or {}
        response["headers"] = headers
        for key, value in extra.items():
            headers[key] = _merge_vary(headers.get(key), value) if key == "Vary" else value
    return response


class CorsMiddleware:
    """ASGI middleware giving every response of ``app`` (streamed ones included, errors included) the
    CORS headers of the configured origins, and answering preflight requests from allowed origins.

    ``allowed`` is called per request, so the origins come from the current settings.
    """

    def __init__(self, app: Any, allowed: Any):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        allowed = tuple(self.allowed())
        extra = cors_headers(request_headers.get("origin"), allowed)
        if not extra:
            await self.app(scope, receive, send)
            return
        if (
            scope["method"] == "OPTIONS"
            and "Access-Control-Allow-Origin" in extra
            and "access-control-request-method" in request_headers
        ):
            preflight = {
                **extra,
                "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in preflight.items()],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
                vary = ", ".join(v.decode() for k, v in message.get("headers", []) if k.lower() == b"vary")
                for key, value in extra.items():
                    if key == "Vary":
                        value = _merge_vary(vary, value)
                    headers.append((key.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)
