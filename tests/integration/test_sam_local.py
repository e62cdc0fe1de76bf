"""What `sam local` users get from the repository, against the real database and handlers: PostgreSQL over
TCP (the local stack's PG_PORT), the committed SQS event for `sam local invoke IngestFunction`, and
`--env-vars` files that only set variables the template declares (SAM ignores any other)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from infra.local.postgres import TcpForwarder, start_postgres
from infra.local.samenv import sam_env_vars, write_sam_env_vars
from infra.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
EVENT = ROOT / "events" / "sqs-ingest.json"
ENV_EXAMPLE = ROOT / "infra" / "sam" / "env.example.json"


def _socket_path(owner_url: str) -> Path:
    parts = urlsplit(owner_url)
    directory = parse_qs(parts.query)["host"][0]
    return Path(directory) / f".s.PGSQL.{parts.port or 5432}"


@pytest.fixture
def tcp(platform):
    forwarder = TcpForwarder(_socket_path(platform.owner_url), "127.0.0.1", 0)
    forwarder.start()
    yield forwarder
    forwarder.stop()


def test_postgres_with_pgvector_over_tcp_for_the_application_role(platform, tcp):
    org = platform.register()
    url = f"postgresql://rag_app@127.0.0.1:{tcp.port}/rag"
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.info.host == "127.0.0.1"
        assert conn.execute("SELECT current_user").fetchone() == ("rag_app",)
        assert conn.execute("SELECT '[1,2,3]'::vector <=> '[1,2,3]'::vector").fetchone() == (0.0,)
        # Row-level security holds over TCP as over the socket: no tenant set, no rows.
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
        conn.execute("SELECT set_config('app.org_id', %s, false)", (org["org"]["id"],))
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)


def test_tcp_endpoint_closes_when_stopped(platform):
    forwarder = TcpForwarder(_socket_path(platform.owner_url), "127.0.0.1", 0)
    forwarder.start()
    url = f"postgresql://rag_app@127.0.0.1:{forwarder.port}/rag"
    conn = psycopg.connect(url, connect_timeout=5)
    forwarder.stop()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")  # an open session is cut, not left dangling
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_embedded_postgres_exposed_over_tcp_gives_urls_that_connect(tmp_path):
    """What `make run PG_PORT=...` does: the same server on a unix socket and, on request, on TCP."""
    database = start_postgres(tmp_path, "rag_app")
    try:
        database.expose_tcp("127.0.0.1", 0)
        owner_url = database.tcp_url(database.owner_url)
        assert owner_url == f"postgresql://postgres@127.0.0.1:{database.tcp.port}/rag"
        assert database.tcp_url(database.app_url).startswith("postgresql://rag_app@127.0.0.1:")
        with psycopg.connect(owner_url, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database(), current_user").fetchone() == ("rag", "postgres")
    finally:
        database.stop()
    assert database.tcp is None


def _event_for(org_id: str, document_id: str) -> dict:
    text = EVENT.read_text().replace("ORG_ID", org_id).replace("DOCUMENT_ID", document_id)
    return json.loads(text)


def test_committed_sqs_event_ingests_the_document_it_names(platform):
    org = platform.register()
    created = platform.request(
        "POST",
        "/api/v1/documents",
        {"name": "tides.txt", "content": "High tide at the north pier comes forty minutes after the south."},
        token=org["token"],
    )
    assert created.status == 202, created.body
    document = created.body["document"]

    result = platform.functions["IngestFunction"].invoke(_event_for(org["org"]["id"], document["id"]))

    assert result == {"batchItemFailures": []}
    ready = platform.request("GET", f"/api/v1/documents/{document['id']}", token=org["token"]).body
    assert ready["document"]["status"] == "ready"
    assert ready["document"]["chunk_count"] == 1
    platform.ingest_all()  # the message the upload queued: a harmless re-delivery


def _declared(template, function: str) -> set[str]:
    return set(template.functions[function].environment)


@pytest.mark.parametrize("source", ["example", "generated"])
def test_env_vars_files_only_set_what_the_template_declares(source, tmp_path):
    template = load_template(ROOT / "template-local.yaml")
    if source == "example":
        values = json.loads(ENV_EXAMPLE.read_text())
    else:
        path = write_sam_env_vars(
            tmp_path,
            sam_env_vars(
                database_url="postgresql://rag_app@127.0.0.1:5433/rag",
                migration_database_url="postgresql://postgres@127.0.0.1:5433/rag",
                jwt_secret="s" * 48,
                queue_url="http://127.0.0.1:4566/queue/us-east-1/000000000000/rag-local-IngestQueue",
                upload_bucket="rag-local-uploadbucket",
            ),
        )
        assert path.stat().st_mode & 0o077 == 0  # it holds the JWT secret
        values = json.loads(path.read_text())
    assert set(values["Parameters"]) == {"DATABASE_URL", "JWT_SECRET", "QUEUE_URL", "UPLOAD_BUCKET"}
    for function in template.functions:
        assert set(values["Parameters"]) <= _declared(template, function), function
    for function, variables in values.items():
        if function != "Parameters":
            assert set(variables) <= _declared(template, function), function
    # The owner's URL goes to the migrate function only.
    assert set(values) == {"Parameters", "MigrateFunction"}
    assert set(values["MigrateFunction"]) == {"MIGRATION_DATABASE_URL"}
