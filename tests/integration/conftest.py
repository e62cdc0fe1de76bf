"""A real platform in-process: embedded PostgreSQL with migrations, moto's SQS, and the handlers of
template-local.yaml invoked with the API Gateway and SQS events they receive in AWS."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pgserver
import psycopg
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from ragcore import db
from ragcore.config import reset_settings
from ragcore.migrations import apply_migrations

from infra.local.events import MatchStatus, RouteTable, build_proxy_event
from infra.local.functions import LocalFunction
from infra.local.sqs import SqsPoller, ensure_queues
from infra.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
UPLOAD_BUCKET = "test-uploadbucket"  # what infra.local.s3.ensure_buckets names UploadBucket


@dataclass
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str]


def random_client_address() -> str:
    """An address of TEST-NET-2: unless a test says otherwise, each request comes from its own client, as
    sign-ups and sign-ins of a real platform do, so per-address limits only bind where a test means them."""
    return f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"


class Platform:
    """Sends HTTP-shaped requests through the real handlers and drains the ingest queue on demand."""

    def __init__(self, queue_url: str, dlq_url: str, owner_url: str):
        self.template = load_template(ROOT / "template-local.yaml")
        self.routes = RouteTable(self.template.routes)
        self.functions = {
            name: LocalFunction(spec, ROOT, REGION) for name, spec in self.template.functions.items()
        }
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url, self.dlq_url, self.owner_url = queue_url, dlq_url, owner_url
        ingest = next(f for f in self.functions.values() if f.spec.sqs_events)
        self.poller = SqsPoller(self.sqs, queue_url, ingest, ingest.spec.sqs_events[0], region=REGION)

    def invoke(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        query: str = "",
        source_ip: str | None = None,
    ) -> dict[str, Any]:
        """The function's raw proxy response to exactly these headers and body."""
        match = self.routes.match(method, path)
        assert match.status is MatchStatus.FOUND, f"{method} {path} is not a route of the template"
        event = build_proxy_event(
            method=method,
            path=path,
            route=match.route,
            path_parameters=match.path_parameters,
            headers=headers,
            query_string=query,
            body=body,
            source_ip=source_ip or random_client_address(),
        )
        return self.functions[match.route.function].invoke(event)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        query: str = "",
        raw_body: bytes | None = None,
        source_ip: str | None = None,
    ) -> HttpResult:
        headers = [("Content-Type", "application/json"), ("Host", "localhost")]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        payload = raw_body if raw_body is not None else (b"" if body is None else json.dumps(body).encode())
        response = self.invoke(method, path, headers, payload, query, source_ip)
        text = response.get("body") or ""
        headers = dict(response.get("headers") or {})
        headers.update({k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items() if v})
        return HttpResult(response["statusCode"], json.loads(text) if text else None, headers)

    def ingest_all(self, max_rounds: int = 200) -> int:
        """Deliver queued messages to the ingest function until none is visible; returns deliveries."""
        delivered = 0
        for _ in range(max_rounds):
            received = self.poller.poll_once(wait_seconds=0)
            if not received:
                break
            delivered += received
        return delivered

    def register(
        self, org_name: str | None = None, email: str | None = None, password: str = "correct-horse-1"
    ):
        email = email or f"{uuid.uuid4().hex[:10]}@example.com"
        result = self.request(
            "POST",
            "/api/v1/auth/register",
            {"org_name": org_name or f"Org {uuid.uuid4().hex[:6]}", "email": email, "password": password},
        )
        assert result.status == 201, result.body
        return result.body

    def owner_query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.owner_url) as conn:
            return conn.execute(sql, params).fetchall()

    def owner_execute(self, sql: str, params: tuple = ()) -> int:
        """Run a statement as the schema owner; returns the rows it touched."""
        with psycopg.connect(self.owner_url) as conn:
            return conn.execute(sql, params).rowcount


@pytest.fixture
def configure(platform):
    """Changes settings for one test: ``configure(login_max_failures_per_address=3)``; undone afterwards."""
    with pytest.MonkeyPatch.context() as env:

        def apply(**values: object) -> None:
            for key, value in values.items():
                env.setenv(key.upper(), str(value))
            reset_settings()

        yield apply
    reset_settings()


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    pgdata = tmp_path_factory.mktemp("pg")
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE rag")
    owner_url = server.get_uri("rag")
    app_url = make_conninfo(**{**conninfo_to_dict(owner_url), "user": "rag_app", "password": ""})
    with pytest.MonkeyPatch.context() as env, mock_aws():
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "DATABASE_URL": app_url,
            "MIGRATION_DATABASE_URL": owner_url,
            "JWT_SECRET": "integration-" + "k" * 32,
            "PASSWORD_BCRYPT_ROUNDS": "12",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }.items():
            env.setenv(key, value)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        sqs = boto3.client("sqs", region_name=REGION)
        # The queues as the template declares them (redrive to the DLQ after maxReceiveCount receives),
        # with no visibility timeout so that a failed message is delivered again at once.
        template = load_template(ROOT / "template-local.yaml")
        urls = ensure_queues(sqs, template, name_prefix="test", visibility_timeout=0)
        ingest_source = next(f.sqs_events[0] for f in template.functions.values() if f.sqs_events)
        queue_url = urls[ingest_source.queue]
        dlq_url = urls[template.queues[ingest_source.queue].dead_letter_queue]
        env.setenv("QUEUE_URL", queue_url)
        # The upload bucket exists for every test (upload URLs are signed without any request); the
        # upload tests serve it over HTTP and connect its notifications to the queue (test_uploads.py).
        env.setenv("UPLOAD_BUCKET", UPLOAD_BUCKET)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=UPLOAD_BUCKET)
        reset_settings()
        apply_migrations(owner_url)
        from ragcore.queue import get_ingest_queue

        get_ingest_queue.cache_clear()
        yield Platform(queue_url, dlq_url, owner_url)
        db.close_pool()
        get_ingest_queue.cache_clear()
        from ragcore.storage import get_object_store

        get_object_store.cache_clear()
    reset_settings()
