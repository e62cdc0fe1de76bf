"""The local AWS endpoint: moto's server (SQS, S3 with its S3 -> SQS notifications), behind a check of
presigned requests that moto does not make.

S3 refuses a presigned request whose signature does not match what was signed (the method, key, query,
and the signed headers: for an upload URL, Content-Type and Content-Length) or whose time is up; moto
accepts any. The platform relies on that refusal (an upload URL is bound to a type and an exact size), so
the local endpoint verifies AWS Signature Version 4 query signatures itself, at the S3 boundary, before the
request reaches moto: what a client sees locally is what it would see from S3.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

log = logging.getLogger("infra.local.s3")

ALGORITHM = "AWS4-HMAC-SHA256"
# Headers that WSGI keeps outside HTTP_* (their names in a signature are lower case).
_UNPREFIXED = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    """A request header as SigV4 canonicalises it (inner whitespace runs collapsed), None if absent."""
    value = environ.get(_UNPREFIXED.get(name) or "HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else " ".join(str(value).split())


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify_presigned(
    environ: Mapping[str, Any], secrets: Mapping[str, str], now: dt.datetime | None = None
) -> tuple[str, str] | None:
    """Why S3 would refuse this presigned request, as (error code, message); None when it is valid or
    not presigned at all (requests signed in the Authorization header are moto's business)."""
    params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    query = dict(params)
    signature = query.get("X-Amz-Signature")
    if signature is None:
        return None
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        return "AuthorizationQueryParametersError", f"X-Amz-Algorithm must be {ALGORITHM}"
    try:
        access_key, date, region, service, terminator = query["X-Amz-Credential"].split("/")
        amz_date = query["X-Amz-Date"]
        expires = int(query["X-Amz-Expires"])
        signed_headers = query["X-Amz-SignedHeaders"].split(";")
        issued = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError", "malformed presigned request parameters"
    if terminator != "aws4_request" or not amz_date.startswith(date):
        return "AuthorizationQueryParametersError", "malformed X-Amz-Credential"
    if (now or dt.datetime.now(dt.UTC)) > issued + dt.timedelta(seconds=expires):
        return "AccessDenied", "Request has expired"
    secret = secrets.get(access_key)
    if secret is None:
        return "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
    canonical_headers = ""
    for name in signed_headers:
        value = _header(environ, name)
        canonical_headers += f"{name}:{'' if value is None else value}\n"
    canonical_query = "&".join(
        f"{_encode(k)}={_encode(v)}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    # The path exactly as the client sent it (S3 signs the encoded key, without normalising it).
    raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
    canonical_request = "\n".join(
        [
            str(environ.get("REQUEST_METHOD", "GET")),
            raw_uri.split("?", 1)[0],
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            query.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
        ]
    )
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    expected = hmac.new(
        _signing_key(secret, date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return (
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    return None


class PresignedRequestCheck:
    """WSGI middleware: refuses presigned requests S3 would refuse, as S3 does (403, XML error body)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], secrets: Callable[[], Mapping[str, str]]):
        self.app = app
        self.secrets = secrets

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # A CORS preflight carries the URL but is not the signed request: S3 answers it from the CORS rules.
        preflight = environ.get("REQUEST_METHOD") == "OPTIONS"
        refusal = None if preflight else verify_presigned(environ, self.secrets())
        if refusal is None:
            return self.app(environ, start_response)
        code, message = refusal
        log.info("refused a presigned %s: %s", environ.get("REQUEST_METHOD"), code)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        ).encode()
        # Whatever the client sent is read and dropped, so the connection stays usable.
        stream = environ.get("wsgi.input")
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        while stream is not None and remaining > 0:
            chunk = stream.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
        start_response(
            "403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        )
        return [body]


class LocalAwsServer:
    """moto's server (every service it emulates) in a thread, with presigned requests checked."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, secrets: Mapping[str, str] | None = None):
        self.host, self.port = host, port
        self._secrets = dict(secrets or {})
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def add_credentials(self, access_key: str, secret_key: str) -> None:
        self._secrets[access_key] = secret_key

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = PresignedRequestCheck(DomainDispatcherApplication(create_backend_app), lambda: self._secrets)
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-aws", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def ensure_buckets(
    client: Any, template: Any, *, name_prefix: str, queue_arns: Mapping[str, str]
) -> dict[str, str]:
    """Creates every bucket of the template (logical id -> bucket name) with its versioning and its
    notifications to the template's queues, as the deployed stack has them.

    Browsers may PUT to it from any origin: locally the console and the API are on other ports than the
    S3 endpoint, and nothing here is reachable from beyond this machine.
    """
    names: dict[str, str] = {}
    for logical, resource in (template.raw.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::S3::Bucket":
            continue
        props = resource.get("Properties") or {}
        name = f"{name_prefix}-{logical.lower()}"
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        if (props.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        queues = []
        for item in (props.get("NotificationConfiguration") or {}).get("QueueConfigurations") or []:
            target = item.get("Queue")
            queue = target.get("Fn::GetAtt", [None])[0] if isinstance(target, dict) else None
            if queue not in queue_arns:
                raise ValueError(f"{logical}: notifications must go to a queue of the template")
            queues.append({"QueueArn": queue_arns[queue], "Events": [item["Event"]]})
        client.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"QueueConfigurations": queues}
        )
        client.put_bucket_cors(
            Bucket=name,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedMethods": ["PUT"],
                        "AllowedOrigins": ["*"],
                        "AllowedHeaders": ["*"],
                        "MaxAgeSeconds": 600,
                    }
                ]
            },
        )
        names[logical] = name
    return names
