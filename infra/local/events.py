"""What AWS puts between a client and a Lambda: route matching, proxy and SQS events, the context object.

Pure functions and small classes, no I/O, so each rule of API Gateway and of the SQS event source can be
unit-tested on its own.
"""

from __future__ import annotations

import base64
import enum
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from .template import Route

ACCOUNT_ID = "123456789012"  # the account id moto and LocalStack use by default
API_ID = "local"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit


def error_body(code: str, message: str) -> dict[str, Any]:
    """The platform's documented error shape."""
    return {"error": {"code": code, "message": message}}


# ---------------------------------------------------------------------------------------------- routes


class MatchStatus(enum.Enum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"


@dataclass(frozen=True)
class RouteMatch:
    status: MatchStatus
    route: Route | None = None
    path_parameters: dict[str, str] = field(default_factory=dict)
    allowed_methods: tuple[str, ...] = ()


def normalise_path(path: str) -> str:
    """API Gateway ignores a trailing slash and repeated slashes."""
    segments = [segment for segment in path.split("/") if segment]
    return "/" + "/".join(segments)


@dataclass(frozen=True)
class _PathTemplate:
    path: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, path: str) -> _PathTemplate:
        template = cls(normalise_path(path), tuple(s for s in path.split("/") if s))
        for index, segment in enumerate(template.segments):
            if segment.endswith("+}") and index != len(template.segments) - 1:
                raise ValueError(f"greedy path variable must be last: {path}")
        return template

    @property
    def specificity(self) -> tuple[int, ...]:
        # Literal segments beat {param}, which beats {proxy+}: /documents/search wins over /documents/{id}.
        return tuple(0 if s.endswith("+}") else 1 if s.startswith("{") else 2 for s in self.segments)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for index, pattern in enumerate(self.segments):
            if pattern.startswith("{") and pattern.endswith("+}"):
                rest = segments[index:]
                if not rest:
                    return None
                params[pattern[1:-2]] = "/".join(rest)
                return params
            if index >= len(segments):
                return None
            if pattern.startswith("{") and pattern.endswith("}"):
                params[pattern[1:-1]] = segments[index]
            elif pattern != segments[index]:
                return None
        return params if len(segments) == len(self.segments) else None


class RouteTable:
    """The API's resources and methods, matched the way API Gateway does."""

    def __init__(self, routes: Iterable[Route]):
        self._by_path: dict[str, list[Route]] = {}
        self._templates: list[_PathTemplate] = []
        for route in routes:
            template = _PathTemplate.parse(route.path)
            if template.path not in self._by_path:
                self._by_path[template.path] = []
                self._templates.append(template)
            self._by_path[template.path].append(route)
        self._templates.sort(key=lambda t: t.specificity, reverse=True)

    def match(self, method: str, path: str) -> RouteMatch:
        segments = [s for s in path.split("/") if s]
        method = method.upper()
        for template in self._templates:
            params = template.match(segments)
            if params is None:
                continue
            # The most specific resource is the one (API Gateway picks the resource, then the method):
            # GET /documents/uploads is not GET /documents/{id} with id "uploads".
            allowed: list[str] = []
            for route in self._by_path[template.path]:
                if route.method in (method, "ANY"):
                    return RouteMatch(MatchStatus.FOUND, route, params)
                allowed.append(route.method)
            return RouteMatch(MatchStatus.METHOD_NOT_ALLOWED, allowed_methods=tuple(sorted(set(allowed))))
        return RouteMatch(MatchStatus.NOT_FOUND)


# --------------------------------------------------------------------------------- API Gateway events


def _single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """API Gateway's two views of repeated keys: the last value, and every value in order."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def _is_binary(content_type: str | None, binary_media_types: Sequence[str]) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    for pattern in binary_media_types:
        pattern = pattern.replace("~1", "/").lower()  # CloudFormation escapes "/" as "~1"
        if pattern in ("*/*", media_type) or (pattern.endswith("/*") and media_type.startswith(pattern[:-1])):
            return True
    return False


def build_proxy_event(
    *,
    method: str,
    path: str,
    route: Route,
    path_parameters: dict[str, str],
    headers: Sequence[tuple[str, str]],
    query_string: str = "",
    body: bytes = b"",
    stage: str = "v1",
    source_ip: str = "127.0.0.1",
    binary_media_types: Sequence[str] = (),
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The API Gateway REST API (payload format 1.0) Lambda proxy integration event."""
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    header_map, multi_headers = _single_and_multi(headers)
    lower = {key.lower(): value for key, value in header_map.items()}
    query_pairs = parse_qsl(query_string, keep_blank_values=True)
    query, multi_query = _single_and_multi(query_pairs)

    if not body:
        event_body, is_base64 = None, False
    elif _is_binary(lower.get("content-type"), binary_media_types):
        event_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    else:
        try:
            event_body, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            # API Gateway would mangle non-UTF-8 text; passing it base64-encoded keeps the bytes intact.
            event_body, is_base64 = base64.b64encode(body).decode("ascii"), True

    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": header_map,
        "multiValueHeaders": multi_headers,
        # API Gateway sends null, not {}, when there is nothing: handlers must cope, so we do the same.
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": method.upper(),
            "extendedRequestId": request_id,
            "requestId": request_id,
            "path": f"/{stage}{path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "domainName": lower.get("host", "localhost"),
            "domainPrefix": lower.get("host", "localhost").split(".", 1)[0],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {
                "sourceIp": source_ip,
                "userAgent": lower.get("user-agent"),
                "accountId": None,
                "apiKey": None,
                "caller": None,
                "user": None,
                "userArn": None,
                "accessKey": None,
                "cognitoIdentityPoolId": None,
                "cognitoIdentityId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
            },
        },
        "body": event_body,
        "isBase64Encoded": is_base64,
    }


class MalformedProxyResponse(ValueError):
    """The function returned something API Gateway would answer with 502."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _header_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedProxyResponse(f"header values must be strings, got {value!r}")
    return str(value)


def translate_proxy_response(result: Any) -> HttpResponse:
    """The HTTP response API Gateway makes of a Lambda proxy integration result."""
    if not isinstance(result, dict):
        raise MalformedProxyResponse(f"the function returned {type(result).__name__}, not an object")
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode must be an HTTP status, got {status!r}")

    # Multi-value headers win for a key given both ways (API Gateway merges the two maps this way).
    merged: dict[str, list[str]] = {}
    for key, value in (result.get("headers") or {}).items():
        merged[key.lower()] = [_header_value(value)]
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{key!r}] must be a list")
        merged[key.lower()] = [_header_value(v) for v in values]

    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise MalformedProxyResponse(f"body must be a string, got {type(body).__name__}")
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise MalformedProxyResponse("isBase64Encoded is true but body is not base64") from exc
    else:
        payload = body.encode("utf-8")

    merged.setdefault("content-type", ["application/json"])  # API Gateway's default
    merged.pop("content-length", None)  # recomputed from the actual body
    headers = [(key, value) for key, values in merged.items() for value in values]
    return HttpResponse(status, headers, payload)


# ------------------------------------------------------------------------------------- Lambda context


@dataclass
class LambdaContext:
    """The fields of the Python runtime's context object that code (and Powertools) read."""

    function_name: str
    memory_limit_in_mb: str  # a string in the real runtime too (it comes from an environment variable)
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ------------------------------------------------------------------------------------------ SQS events


def queue_arn(queue_url: str, region: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> from a queue URL (.../<account>/<name>)."""
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _lambda_message_attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    binary = attribute.get("BinaryValue")
    return {
        "stringValue": attribute.get("StringValue"),
        "binaryValue": base64.b64encode(binary).decode("ascii") if binary is not None else None,
        "stringListValues": list(attribute.get("StringListValues") or []),
        "binaryListValues": [
            base64.b64encode(v).decode("ascii") for v in attribute.get("BinaryListValues") or []
        ],
        "dataType": attribute.get("DataType"),
    }


def build_sqs_event(messages: Sequence[dict[str, Any]], event_source_arn: str, region: str) -> dict[str, Any]:
    """The event the Lambda SQS event source mapping sends, from boto3 ReceiveMessage results."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message.get("Body", ""),
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": {
                    name: _lambda_message_attribute(value)
                    for name, value in (message.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": message.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": event_source_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def messages_to_delete(
    message_ids: Sequence[str], result: Any, *, raised: bool, report_batch_item_failures: bool
) -> list[str]:
    """Which messages the event source mapping deletes after an invocation.

    A raised error fails the whole batch. With ReportBatchItemFailures, a null or empty response or
    batchItemFailures means full success, and the listed ids fail; a response that names no valid id
    (missing, empty, unknown) fails the whole batch, as Lambda does.
    """
    if raised:
        return []
    if not report_batch_item_failures or result is None or result == {} or result == "":
        return list(message_ids)
    if not isinstance(result, dict):
        return []
    failures = result.get("batchItemFailures")
    if failures is None:
        return list(message_ids)
    if not isinstance(failures, list):
        return []
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return []
        failed.add(identifier)
    return [message_id for message_id in message_ids if message_id not in failed]
