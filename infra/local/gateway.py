"""The local API Gateway: HTTP in, REST proxy event to the function, proxy response back to HTTP."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .console import is_api_path
from .events import (
    MAX_PAYLOAD_BYTES,
    MalformedProxyResponse,
    MatchStatus,
    RouteTable,
    build_proxy_event,
    error_body,
    normalise_path,
    translate_proxy_response,
)
from .functions import FunctionError, LocalFunction, Throttled

log = logging.getLogger("infra.local.gateway")

API_GATEWAY_TIMEOUT_SECONDS = 29  # REST API integration timeout
# Lambda's synchronous invocation limit, for the request event (the whole proxy event as JSON) and for
# the response (the proxy result as JSON): 6 MB, whatever API Gateway itself accepts (10 MB).
LAMBDA_PAYLOAD_BYTES = 6_291_456
# API Gateway's limit on the request line plus header values; larger requests are refused, not reset.
MAX_HEADER_BYTES = 10_240
# How long a request may wait for a free execution environment before it is throttled (Lambda itself
# refuses at once past its concurrency; a short wait absorbs bursts of a laptop's few environments).
ENVIRONMENT_WAIT_SECONDS = 10.0
ASGIApp = Callable[..., Any]


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(error_body(code, message)),
        status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


class PayloadTooLarge(Exception):
    pass


class Gateway:
    """An ASGI app that behaves like the REST API of template-local.yaml in front of its functions.

    `asgi_routes` maps exact paths to ASGI apps served as they are, without a proxy event: the hook for
    the streaming app (POST /api/v1/query), which runs behind a Function URL in AWS, not API Gateway.
    `site` serves GET and HEAD requests outside /api/ (the web console, a static site in AWS); every
    other request is the API's, so a file can never shadow a route.
    """

    def __init__(
        self,
        routes: RouteTable,
        functions: Mapping[str, LocalFunction],
        *,
        stage: str = "v1",
        binary_media_types: Sequence[str] = (),
        asgi_routes: Mapping[str, ASGIApp] | None = None,
        max_workers: int = 64,
        environment_wait_seconds: float = ENVIRONMENT_WAIT_SECONDS,
        site: ASGIApp | None = None,
    ):
        self.routes = routes
        self.functions = functions
        self.stage = stage
        self.binary_media_types = tuple(binary_media_types)
        self.asgi_routes = {normalise_path(path): app for path, app in (asgi_routes or {}).items()}
        self.environment_wait_seconds = environment_wait_seconds
        self.site = site
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lambda")

    def close(self) -> None:
        # Running invocations finish on their own; nothing waits for a handler that hangs.
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        header_bytes = len(scope.get("raw_path") or scope["path"].encode()) + sum(
            len(key) + len(value) for key, value in scope["headers"]
        )
        if header_bytes > MAX_HEADER_BYTES:
            response = _error(
                431,
                "request_header_fields_too_large",
                f"the request line and headers are {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}",
            )
            await response(scope, receive, send)
            return
        app = self.asgi_routes.get(normalise_path(scope["path"]))
        if app is not None:
            await app(scope, receive, send)
            return
        if self.site is not None and scope["method"] in ("GET", "HEAD") and not is_api_path(scope["path"]):
            await self.site(scope, receive, send)
            return
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    @staticmethod
    async def _lifespan(receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        # The decoded path of the request line as it came: Request.url re-parses it with urllib, which
        # drops CR, LF and tab (so /users/%0D would become /users and answer 405 instead of 404).
        path = normalise_path(request.scope["path"])
        match = self.routes.match(request.method, path)
        if match.status is MatchStatus.NOT_FOUND:
            return _error(404, "not_found", f"no route for {request.method} {path}")
        if match.status is MatchStatus.METHOD_NOT_ALLOWED:
            allowed = ", ".join(match.allowed_methods)
            return _error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {path} (allowed: {allowed})",
                {"Allow": allowed},
            )

        try:
            body = await self._read_body(request)
        except PayloadTooLarge:
            return _error(413, "payload_too_large", f"request body exceeds {MAX_PAYLOAD_BYTES} bytes")
        except ClientDisconnect:
            return Response(status_code=400)

        assert match.route is not None
        function = self.functions.get(match.route.function)
        if function is None:
            return _error(502, "internal_error", f"route points at unknown function {match.route.function}")
        event = build_proxy_event(
            method=request.method,
            path=path,
            route=match.route,
            path_parameters=match.path_parameters,
            headers=[
                (key.decode("latin-1"), value.decode("latin-1")) for key, value in request.scope["headers"]
            ],
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            body=body,
            stage=self.stage,
            source_ip=request.client.host if request.client else "127.0.0.1",
            binary_media_types=self.binary_media_types,
            request_id=request_id,
        )
        event_bytes = len(json.dumps(event).encode())
        if event_bytes > LAMBDA_PAYLOAD_BYTES:
            return _error(
                413,
                "payload_too_large",
                f"the request's Lambda event is {event_bytes} bytes; Lambda accepts {LAMBDA_PAYLOAD_BYTES}",
            )
        timeout = min(function.spec.timeout, API_GATEWAY_TIMEOUT_SECONDS)
        try:
            result = await self._invoke(function, event, request_id, timeout)
            result_bytes = len(json.dumps(result).encode())
            if result_bytes > LAMBDA_PAYLOAD_BYTES:
                log.error("%s returned %d bytes (request %s)", function.name, result_bytes, request_id)
                return _error(
                    502,
                    "internal_error",
                    f"the function's response is {result_bytes} bytes; Lambda returns at most "
                    f"{LAMBDA_PAYLOAD_BYTES}",
                )
            http = translate_proxy_response(result)
        except Throttled:
            log.warning(
                "%s: no free environment within %ss (request %s)",
                function.name,
                self.environment_wait_seconds,
                request_id,
            )
            return _error(
                429,
                "too_many_requests",
                "the function is at its concurrency limit; retry",
                {"Retry-After": "1"},
            )
        except TimeoutError:
            log.error("%s did not answer within %ss (request %s)", function.name, timeout, request_id)
            return _error(504, "gateway_timeout", f"the function did not answer within {timeout} seconds")
        except FunctionError as exc:
            return _error(502, "internal_error", str(exc))
        except (MalformedProxyResponse, TypeError, ValueError) as exc:
            log.error("%s returned a malformed proxy response: %s", function.name, exc)
            return _error(502, "internal_error", f"malformed Lambda proxy response: {exc}")

        response = Response(http.body, http.status)
        response.raw_headers = [
            *[(k.encode("latin-1"), v.encode("latin-1")) for k, v in http.headers],
            (b"content-length", str(len(http.body)).encode()),
            (b"x-amzn-requestid", request_id.encode()),
        ]
        return response

    async def _invoke(self, function: LocalFunction, event: dict, request_id: str, timeout: float) -> Any:
        """The handler's result. The integration timeout runs from the moment the handler starts, so time
        spent waiting for a free environment (at most environment_wait_seconds, then Throttled) is never
        turned into a 504 for work that then completes."""
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        def on_start() -> None:
            loop.call_soon_threadsafe(lambda: started.done() or started.set_result(None))

        call = loop.run_in_executor(
            self._executor,
            functools.partial(
                function.invoke,
                event,
                request_id,
                wait_seconds=self.environment_wait_seconds,
                on_start=on_start,
            ),
        )
        await asyncio.wait({call, started}, return_when=asyncio.FIRST_COMPLETED)
        if not call.done():
            done, _ = await asyncio.wait({call}, timeout=timeout)
            if not done:
                raise TimeoutError
        started.cancel()
        return call.result()

    @staticmethod
    async def _read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_PAYLOAD_BYTES:  # chunked uploads declare no length
                raise PayloadTooLarge
            chunks.append(chunk)
        return b"".join(chunks)
