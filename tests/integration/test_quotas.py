"""Quotas and usage through the real handlers and database: counters, limits, overrides, concurrency."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import psycopg
import pytest
from httpx_sse import connect_sse
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from ragcore.chunking import Chunk
from ragcore.documents import create_document
from ragcore.errors import ChunkQuotaExceeded, ServiceUnavailable
from ragcore.ingest import PgDocumentStore
from ragcore.principal import Principal

from tests.integration.test_api_keys import create_key, new_user
from tests.integration.test_documents import HANDBOOK, upload
from tests.integration.test_stream import stream_url  # noqa: F401 (the real stream app over HTTP)

QUESTION = {"question": "How many vacation days does an employee get?"}
LIMIT_COLUMNS = {
    "documents": "max_documents",
    "chunks": "max_chunks",
    "stored_bytes": "max_stored_bytes",
    "queries_per_day": "max_queries_per_day",
    "queries_per_minute": "max_queries_per_minute",
}


def usage(platform, token) -> dict:
    result = platform.request("GET", "/api/v1/usage", token=token)
    assert result.status == 200, result.body
    return result.body


def set_quota(platform, org_id: str, **limits: int) -> None:
    """What docs/decisions.md tells the operator to run, as the schema owner."""
    columns = [LIMIT_COLUMNS[name] for name in limits]
    platform.owner_execute(
        f"""INSERT INTO org_quotas (org_id, {", ".join(columns)})
            VALUES (%s, {", ".join(["%s"] * len(columns))})
            ON CONFLICT (org_id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in columns)},
                                               updated_at = now()""",
        (org_id, *limits.values()),
    )


def ask(platform, token):
    return platform.request("POST", "/api/v1/query/sync", QUESTION, token=token)


def stored(platform, org_id: str) -> tuple[int, int]:
    """(documents, chunks) really in the database for the organisation."""
    docs = platform.owner_query("SELECT count(*) FROM documents WHERE org_id = %s", (org_id,))[0][0]
    chunks = platform.owner_query("SELECT count(*) FROM document_chunks WHERE org_id = %s", (org_id,))[0][0]
    return docs, chunks


def test_usage_starts_at_zero_with_the_configured_limits(platform, configure):
    configure(quota_max_documents=7, quota_max_queries_per_minute=9)
    org = platform.register()
    body = usage(platform, org["token"])
    assert {k: v for k, v in body["usage"].items() if k != "day"} == dict.fromkeys(
        (
            "documents",
            "chunks",
            "stored_bytes",
            "embedding_tokens",
            "generation_input_tokens",
            "generation_output_tokens",
            "generation_tokens",
            "queries_today",
            "queries_this_minute",
            "queries_total",
        ),
        0,
    )
    assert body["days"] == []
    assert body["limits"]["documents"] == 7
    assert body["limits"]["queries_per_minute"] == 9
    assert body["limits"]["chunks"] == 500_000  # the default of ragcore.config


def test_usage_counts_what_is_stored_and_spent(platform):
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    doc = upload(platform, token)
    after_upload = usage(platform, token)["usage"]
    assert (after_upload["documents"], after_upload["stored_bytes"]) == (1, len(HANDBOOK.encode()))
    assert after_upload["chunks"] == 0  # counted when stored, not before
    platform.ingest_all()
    after_ingest = usage(platform, token)["usage"]
    tokens = platform.owner_query(
        "SELECT count(*), sum(token_count) FROM document_chunks WHERE document_id = %s", (doc["id"],)
    )[0]
    assert after_ingest["chunks"] == tokens[0] == 1
    assert after_ingest["embedding_tokens"] == tokens[1] > 0

    answer = ask(platform, token)
    assert answer.status == 200, answer.body
    after_query = usage(platform, token)["usage"]
    assert after_query["queries_today"] == after_query["queries_this_minute"] == 1
    assert after_query["queries_total"] == 1
    assert after_query["generation_input_tokens"] == answer.body["usage"]["input_tokens"] > 0
    assert after_query["generation_output_tokens"] == answer.body["usage"]["output_tokens"] > 0
    assert after_query["generation_tokens"] == (
        after_query["generation_input_tokens"] + after_query["generation_output_tokens"]
    )
    # The question was embedded: its word pieces are added to the ingested chunks' tokens.
    assert after_query["embedding_tokens"] > after_ingest["embedding_tokens"]
    assert stored(platform, org_id) == (1, 1)


def test_every_caller_of_the_organisation_reads_its_usage_and_no_other(platform):
    org, other = platform.register(), platform.register()
    upload(platform, other["token"])
    email = new_user(platform, org["token"])["email"]
    member = platform.request("POST", "/api/v1/auth/login", {"email": email, "password": "member-pass"}).body[
        "token"
    ]
    for scope in ("query", "write", "admin"):
        key = create_key(platform, org["token"], scope=scope)["secret"]
        assert usage(platform, key)["usage"]["documents"] == 0
    assert usage(platform, member)["usage"]["documents"] == 0
    assert usage(platform, other["token"])["usage"]["documents"] == 1
    refused = platform.request("GET", "/api/v1/usage")
    assert refused.status == 401 and refused.body["error"]["code"] == "unauthorized"


def test_over_the_document_quota_is_409_and_deleting_gives_it_back(platform):
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    set_quota(platform, org_id, documents=2)
    first, _ = upload(platform, token, content="alpha " * 20), upload(platform, token, content="beta " * 20)
    refused = platform.request("POST", "/api/v1/documents", {"name": "c", "content": "gamma"}, token=token)
    assert refused.status == 409
    assert refused.body["error"]["code"] == "document_quota_exceeded"
    assert "2" in refused.body["error"]["message"]
    assert stored(platform, org_id)[0] == 2
    platform.ingest_all()

    assert platform.request("DELETE", f"/api/v1/documents/{first['id']}", token=token).status == 204
    body = usage(platform, token)
    assert body["usage"]["documents"] == 1 and body["limits"]["documents"] == 2
    assert body["usage"]["chunks"] == 1
    assert body["usage"]["stored_bytes"] == len(("beta " * 20).encode())
    upload(platform, token, content="gamma " * 20)


def test_over_the_storage_quota_is_413_before_anything_is_stored(platform):
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    set_quota(platform, org_id, stored_bytes=len(HANDBOOK.encode()) + 10)
    upload(platform, token)
    refused = platform.request(
        "POST", "/api/v1/documents", {"name": "more", "content": "eleven byte"}, token=token
    )
    assert refused.status == 413
    assert refused.body["error"]["code"] == "storage_quota_exceeded"
    assert stored(platform, org_id)[0] == 1
    assert usage(platform, token)["usage"]["stored_bytes"] == len(HANDBOOK.encode())
    # What fits still fits.
    upload(platform, token, content="ten bytes!")


def test_a_document_over_the_chunk_quota_fails_without_being_embedded(platform, configure):
    configure(chunk_size_words=16, chunk_overlap_words=0)
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    set_quota(platform, org_id, chunks=3)
    doc = upload(platform, token, content=" ".join(f"word{i}" for i in range(16 * 5)))  # 5 chunks
    platform.ingest_all()
    failed = platform.request("GET", f"/api/v1/documents/{doc['id']}", token=token).body["document"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("chunk_quota_exceeded"), failed["error"]
    body = usage(platform, token)["usage"]
    assert body["chunks"] == 0
    assert body["embedding_tokens"] == 0  # nothing was embedded
    assert stored(platform, org_id) == (1, 0)
    # A smaller document fits.
    small = upload(platform, token, content=" ".join(f"term{i}" for i in range(40)))  # 3 chunks
    platform.ingest_all()
    assert (
        platform.request("GET", f"/api/v1/documents/{small['id']}", token=token).body["document"]["status"]
        == "ready"
    )
    assert usage(platform, token)["usage"]["chunks"] == 3


def test_the_chunk_quota_is_enforced_again_when_chunks_are_stored(platform):
    """Two ingestions that both passed the check before embedding: only what fits is stored."""
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    set_quota(platform, org_id, chunks=3)
    first, second = upload(platform, token), upload(platform, token, content="other words")
    store = PgDocumentStore()
    claimed = [store.claim(uuid.UUID(org_id), uuid.UUID(d["id"])) for d in (first, second)]
    for doc in claimed:
        store.check_chunk_quota(doc, 2)  # 2 each: both pass while nothing is stored
    vectors = np.eye(2, 384, dtype=np.float32)
    chunks = [Chunk(0, "a", 1), Chunk(1, "b", 1)]
    assert store.save_chunks(claimed[0], chunks, vectors, "test")
    with pytest.raises(ChunkQuotaExceeded):
        store.save_chunks(claimed[1], chunks, vectors, "test")
    assert stored(platform, org_id) == (2, 2)
    assert usage(platform, token)["usage"]["chunks"] == 2


def test_ingestion_is_counted_once_when_messages_are_delivered_again(platform):
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    doc = upload(platform, token)
    platform.ingest_all()
    once = usage(platform, token)["usage"]
    body = json.dumps({"org_id": org_id, "document_id": doc["id"]})
    for _ in range(3):
        platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=body)
    assert platform.ingest_all() >= 3
    assert usage(platform, token)["usage"] == once


def test_two_workers_storing_the_same_version_count_it_once(platform):
    """A message delivered twice at once: both workers embed, both store; the usage counts one."""
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    doc = upload(platform, token)
    store = PgDocumentStore()
    a = store.claim(uuid.UUID(org_id), uuid.UUID(doc["id"]))
    b = store.claim(uuid.UUID(org_id), uuid.UUID(doc["id"]))
    chunks = [Chunk(0, "a b c", 7), Chunk(1, "d e f", 5)]
    vectors = np.eye(2, 384, dtype=np.float32)
    assert store.save_chunks(a, chunks, vectors, "test")
    assert store.save_chunks(b, chunks, vectors, "test")
    body = usage(platform, token)["usage"]
    assert (body["chunks"], body["embedding_tokens"]) == (2, 12)
    assert stored(platform, org_id) == (1, 2)


def test_reingesting_counts_the_new_embedding_and_the_chunk_difference(platform):
    org = platform.register()
    token = org["token"]
    doc = upload(platform, token)
    platform.ingest_all()
    first = usage(platform, token)["usage"]
    assert platform.request("POST", f"/api/v1/documents/{doc['id']}/reingest", token=token).status == 202
    platform.ingest_all()
    second = usage(platform, token)["usage"]
    assert second["chunks"] == first["chunks"] == 1  # replaced, not added
    assert second["embedding_tokens"] == 2 * first["embedding_tokens"]  # embedded again: spent again
    assert second["documents"] == 1 and second["stored_bytes"] == first["stored_bytes"]


def test_over_the_daily_query_quota_is_429_with_retry_after(platform):
    org = platform.register()
    token = org["token"]
    set_quota(platform, org["org"]["id"], queries_per_day=2)
    upload(platform, token)
    platform.ingest_all()
    assert [ask(platform, token).status for _ in range(2)] == [200, 200]
    refused = ask(platform, token)
    assert refused.status == 429
    assert refused.body["error"]["code"] == "query_quota_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 86_400
    body = usage(platform, token)["usage"]
    assert body["queries_today"] == 2 and body["queries_total"] == 2  # a refused question is not counted


def test_over_the_per_minute_query_quota_is_429_until_the_minute_ends(platform):
    org = platform.register()
    token = org["token"]
    set_quota(platform, org["org"]["id"], queries_per_minute=1)
    assert ask(platform, token).status == 200
    refused = ask(platform, token)
    assert refused.status == 429 and refused.body["error"]["code"] == "query_quota_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The next minute's window: move the stored one back, as the passing of time would.
    platform.owner_execute(
        "UPDATE org_usage SET queries_minute = queries_minute - interval '1 minute' WHERE org_id = %s",
        (org["org"]["id"],),
    )
    assert ask(platform, token).status == 200


def test_the_stream_refuses_over_quota_before_it_starts(platform, stream_url):  # noqa: F811
    org = platform.register()
    set_quota(platform, org["org"]["id"], queries_per_day=0)
    response = httpx.post(
        f"{stream_url}/api/v1/query",
        json=QUESTION,
        headers={"Authorization": f"Bearer {org['token']}"},
        timeout=30,
    )
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "query_quota_exceeded"
    assert int(response.headers["retry-after"]) >= 1


def test_concurrent_uploads_never_exceed_the_document_quota(platform):
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    set_quota(platform, org_id, documents=5)

    def create(i: int) -> int:
        return platform.request(
            "POST", "/api/v1/documents", {"name": f"d{i}", "content": f"document number {i}"}, token=token
        ).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(create, range(12)))
    assert statuses == [202] * 5 + [409] * 7
    assert stored(platform, org_id)[0] == 5
    assert usage(platform, token)["usage"]["documents"] == 5


def test_concurrent_queries_never_exceed_the_daily_quota(platform):
    org = platform.register()
    token = org["token"]
    set_quota(platform, org["org"]["id"], queries_per_day=4)
    upload(platform, token)
    platform.ingest_all()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda _: ask(platform, token).status, range(10)))
    assert statuses == [200] * 4 + [429] * 6
    assert usage(platform, token)["usage"]["queries_today"] == 4


def test_overrides_are_per_organisation(platform):
    limited, free = platform.register(), platform.register()
    set_quota(platform, limited["org"]["id"], documents=0)
    refused = platform.request(
        "POST", "/api/v1/documents", {"name": "x", "content": "y"}, token=limited["token"]
    )
    assert refused.status == 409
    upload(platform, free["token"])
    assert usage(platform, free["token"])["limits"]["documents"] == 10_000


def test_the_application_role_reads_its_limits_but_cannot_change_them(platform):
    org = platform.register()
    set_quota(platform, org["org"]["id"], documents=3)
    url = make_conninfo(**{**conninfo_to_dict(platform.owner_url), "user": "rag_app"})
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('app.org_id', %s, false)", (org["org"]["id"],))
        assert conn.execute("SELECT max_documents FROM org_quotas").fetchall() == [(3,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE org_quotas SET max_documents = 1000000")


def test_the_operator_sets_and_clears_overrides_through_the_migrate_function(platform, configure):
    configure(quota_max_documents=50)
    org = platform.register()
    migrate = next(f for f in platform.functions.values() if f.spec.code_uri.rstrip("/").endswith("migrate"))
    stored_row = migrate.invoke(
        {"task": "set_quota", "org_id": org["org"]["id"], "limits": {"documents": 1, "queries_per_day": 9}}
    )
    assert stored_row["documents"] == 1 and stored_row["queries_per_day"] == 9
    assert stored_row["chunks"] is None  # not named: still the default
    limits = usage(platform, org["token"])["limits"]
    assert (limits["documents"], limits["queries_per_day"]) == (1, 9)
    upload(platform, org["token"])
    assert (
        platform.request(
            "POST", "/api/v1/documents", {"name": "b", "content": "more"}, token=org["token"]
        ).status
        == 409
    )
    # null: back to the configured default; queries_per_day keeps its override.
    migrate.invoke({"task": "set_quota", "org_id": org["org"]["id"], "limits": {"documents": None}})
    limits = usage(platform, org["token"])["limits"]
    assert (limits["documents"], limits["queries_per_day"]) == (50, 9)
    for bad in (
        {"org_id": org["org"]["id"], "limits": {"document": 5}},
        {"org_id": org["org"]["id"], "limits": {"documents": -1}},
        {"org_id": org["org"]["id"], "limits": {"documents": "5"}},
        {"org_id": org["org"]["id"], "limits": {}},
        {"org_id": "not-a-uuid", "limits": {"documents": 5}},
        {"org_id": str(uuid.uuid4()), "limits": {"documents": 5}},
    ):
        assert "error" in migrate.invoke({"task": "set_quota", **bad}), bad
    assert usage(platform, org["token"])["limits"]["documents"] == 50


def test_a_document_the_queue_refuses_gives_its_reservation_back(platform):
    """The real SQS client against a queue that does not exist (moto answers an error): 503, and the
    document and its bytes are given back."""
    from ragcore.queue import SqsIngestQueue

    org = platform.register()
    missing = SqsIngestQueue(platform.queue_url.rsplit("/", 1)[0] + "/no-such-queue")
    admin = Principal(uuid.UUID(org["user"]["id"]), uuid.UUID(org["org"]["id"]), "admin")
    with pytest.raises(ServiceUnavailable):
        create_document(admin, "x.txt", HANDBOOK, queue=missing)
    body = usage(platform, org["token"])["usage"]
    assert (body["documents"], body["stored_bytes"]) == (0, 0)
    assert stored(platform, org["org"]["id"]) == (0, 0)


def test_a_streamed_answer_counts_one_query_and_its_generation_tokens(platform, stream_url):  # noqa: F811
    org = platform.register()
    token = org["token"]
    upload(platform, token)
    platform.ingest_all()
    with (
        httpx.Client(timeout=60) as client,
        connect_sse(
            client,
            "POST",
            f"{stream_url}/api/v1/query",
            json=QUESTION,
            headers={"Authorization": f"Bearer {token}"},
        ) as source,
    ):
        events = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
    assert events[-1][0] == "done", events[-1]
    reported = events[-1][1]["usage"]
    body = usage(platform, token)["usage"]
    assert body["queries_today"] == body["queries_total"] == 1
    assert body["generation_input_tokens"] == reported["input_tokens"] > 0
    assert body["generation_output_tokens"] == reported["output_tokens"] > 0


def test_the_operator_script_sets_and_clears_overrides(platform, capsys):
    from scripts.set_quota import main

    org = platform.register()
    assert main(["--org", org["org"]["id"], "--documents", "3", "--queries-per-minute", "7"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["documents"], printed["queries_per_minute"], printed["chunks"]) == (3, 7, None)
    limits = usage(platform, org["token"])["limits"]
    assert (limits["documents"], limits["queries_per_minute"]) == (3, 7)
    assert main(["--org", org["org"]["id"], "--documents", "default"]) == 0
    assert usage(platform, org["token"])["limits"]["documents"] == 10_000
    assert main(["--org", str(uuid.uuid4()), "--documents", "3"]) == 2  # no such organisation
    for bad in (["--documents", "-1"], ["--documents", "many"], []):
        with pytest.raises(SystemExit):
            main(["--org", org["org"]["id"], *bad])
    assert usage(platform, org["token"])["limits"]["queries_per_minute"] == 7


def test_spending_is_listed_per_utc_day_and_adds_up_to_the_totals(platform):
    org = platform.register()
    token, org_id = org["token"], org["org"]["id"]
    assert usage(platform, token)["days"] == []
    upload(platform, token)
    platform.ingest_all()
    assert ask(platform, token).status == 200
    body = usage(platform, token)
    today = body["usage"]["day"]
    assert body["days"] == [
        {
            "day": today,
            "queries": 1,
            "embedding_tokens": body["usage"]["embedding_tokens"],
            "generation_input_tokens": body["usage"]["generation_input_tokens"],
            "generation_output_tokens": body["usage"]["generation_output_tokens"],
        }
    ]
    # Earlier days, as the passing of time leaves them: listed within the window asked for, newest first.
    for days_ago, queries in ((1, 4), (10, 9)):
        platform.owner_execute(
            """INSERT INTO org_usage_days (org_id, day, queries)
               VALUES (%s, (now() AT TIME ZONE 'UTC')::date - %s::integer, %s)""",
            (org_id, days_ago, queries),
        )
    assert [d["queries"] for d in usage(platform, token)["days"]] == [1, 4]  # the default: 7 days
    listed = platform.request("GET", "/api/v1/usage", token=token, query="days=11").body["days"]
    assert [d["queries"] for d in listed] == [1, 4, 9]
    assert [d["day"] for d in listed] == sorted((d["day"] for d in listed), reverse=True)
    assert (
        platform.request("GET", "/api/v1/usage", token=token, query="days=1").body["days"][0]["day"] == today
    )
    for bad in ("days=0", "days=91", "days=week"):
        refused = platform.request("GET", "/api/v1/usage", token=token, query=bad)
        assert refused.status == 422 and refused.body["error"]["code"] == "validation_error", bad
