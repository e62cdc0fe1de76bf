"""The web console's built files (web/dist), served by the local gateway at / as CloudFront serves them
from the site's bucket in AWS. Only GET and HEAD outside /api/ reach it: the API is never shadowed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from .events import error_body

# The same headers as the CloudFront response-headers policy of the static site (infra/constructs/site.py),
# with the API on the page's own origin here; the page may also reach the S3 endpoint its upload URLs
# name (another port of this machine), as the deployed page reaches the upload bucket.


def content_security_policy(connect: tuple[str, ...] = ()) -> str:
    """The console's policy: its own origin, plus ``connect`` (origins the page's requests may reach)."""
    sources = " ".join(("'self'", *connect))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {sources}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
        "object-src 'none'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()


def security_headers(connect: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        "content-security-policy": content_security_policy(connect),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }


SECURITY_HEADERS = security_headers()
# Vite names the files under assets/ by their content hash: they never change, everything else may.
IMMUTABLE_PREFIX = "/assets/"


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class ConsoleSite:
    """An ASGI app serving ``directory`` (index.html at /), with cache and security headers; a missing
    file or an unbuilt console is a 404 with the platform's error body. ``connect`` names the origins
    besides its own that the page may send requests to (the local S3 endpoint of upload URLs)."""

    def __init__(self, directory: Path, connect: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.headers = security_headers(connect)
        self._files = StaticFiles(directory=directory, html=True, check_dir=False)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if not (self.directory / "index.html").is_file():
            await _json(
                send,
                404,
                "console_not_built",
                "the web console is not built: `make run` builds it (or `npm ci && npm run build` in web/)",
            )
            return
        path = scope["path"]

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                cache = (
                    "public, max-age=31536000, immutable"
                    if path.startswith(IMMUTABLE_PREFIX) and message["status"] == 200
                    else "no-cache"
                )
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers += [(b"cache-control", cache.encode())]
                headers += [(k.encode(), v.encode()) for k, v in self.headers.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._files(scope, receive, send_with_headers)
        except HTTPException as exc:
            await _json(send, exc.status_code, "not_found", f"no file {path} in the web console")


async def _json(send: Callable, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *[(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()],
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
