"""Ingestion under faults, through the real queue, ingest handler and database: a flaky embedding provider
(an OpenAI-compatible server at the wire), the same message twice or to two workers at once, a worker
whose database session dies mid-document, and poison messages in a batch of good ones."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from ragcore.embeddings import reset_embedders
from ragcore.ingest import Outcome, ingest_document

from tests.integration.test_documents import HANDBOOK, get, upload

DIMS = 384  # the chunks' column type


class FlakyEmbeddings:
    """An OpenAI-compatible /embeddings endpoint answering the scripted (status, Retry-After) pairs first,
    then vectors. Records when each request arrived."""

    def __init__(self, script: list[tuple[int, str | None]]):
        self.script = list(script)
        self.arrivals: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.arrivals.append(time.monotonic())
                if server.script:
                    status, retry_after = server.script.pop(0)
                    payload = json.dumps({"error": {"message": "scripted failure"}}).encode()
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                else:
                    rng = np.random.default_rng(0)
                    data = [
                        {"object": "embedding", "index": i, "embedding": rng.standard_normal(DIMS).tolist()}
                        for i, _ in enumerate(body["input"])
                    ]
                    payload = json.dumps({"object": "list", "data": data, "model": body["model"]}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _chunks(platform, document_id: str) -> list[int]:
    rows = platform.owner_query(
        "SELECT chunk_index FROM document_chunks WHERE document_id = %s ORDER BY chunk_index", (document_id,)
    )
    return [r[0] for r in rows]


def _one_set(platform, token: str, document_id: str) -> dict:
    """The document is ready and holds exactly one set of chunks: 0..n-1, each once, n = chunk_count."""
    document = get(platform, token, document_id).body["document"]
    assert document["status"] == "ready", document
    assert _chunks(platform, document_id) == list(range(document["chunk_count"])), document
    return document


@pytest.fixture
def openai_embeddings(platform, configure):
    """Points the platform's embedder at a FlakyEmbeddings server; the local model again afterwards.

    Messages other tests left in the queue are ingested first, so that the script meets only this test's.
    """
    platform.ingest_all()
    servers = []

    def start(script):
        server = FlakyEmbeddings(script).__enter__()
        servers.append(server)
        configure(
            embedding_provider="openai",
            embedding_model="text-embedding-3-small",
            embedding_dimensions=DIMS,
            openai_base_url=server.url,
            openai_api_key="sk-test",
        )
        return server

    yield start
    for server in servers:
        server.__exit__()
    reset_embedders()


def test_throttling_and_server_errors_are_retried_with_backoff_honouring_retry_after(
    platform, openai_embeddings
):
    server = openai_embeddings([(429, "1"), (500, None), (503, None)])
    org = platform.register()
    doc = upload(platform, org["token"])
    platform.ingest_all()
    _one_set(platform, org["token"], doc["id"])
    assert len(server.arrivals) == 4  # three failures, then the answer: one delivery, no redelivery
    gaps = np.diff(server.arrivals)
    assert gaps[0] >= 1.0, gaps  # Retry-After: 1 is a floor for the wait after the 429
    # Full jitter below a doubling cap (0.5 s base: at most 1 s, then 2 s), never the cap of 20 s.
    assert gaps[1] <= 1.0 + 1.0 and gaps[2] <= 2.0 + 1.0, gaps  # + what a busy machine adds


def test_a_provider_down_past_one_delivery_s_retries_is_retried_by_the_queue(
    platform, openai_embeddings, configure
):
    server = openai_embeddings([(500, None)] * 3)
    configure(embed_max_retries=1)  # two calls per delivery: the first delivery fails, the second succeeds
    org = platform.register()
    doc = upload(platform, org["token"])
    platform.ingest_all()
    _one_set(platform, org["token"], doc["id"])
    assert len(server.arrivals) == 4
    attempts = platform.owner_query("SELECT attempts FROM documents WHERE id = %s", (doc["id"],))
    assert attempts == [(2,)]


def test_the_same_message_twice_in_one_batch_gives_one_set_of_chunks(platform):
    org = platform.register()
    doc = upload(platform, org["token"], content=" ".join([HANDBOOK] * 8))
    body = json.dumps({"org_id": org["org"]["id"], "document_id": doc["id"]})
    for _ in range(2):
        platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=body)
    platform.ingest_all()
    document = _one_set(platform, org["token"], doc["id"])
    assert document["chunk_count"] > 1


def test_two_workers_on_the_same_document_at_once_give_one_set_of_chunks(platform):
    org = platform.register()
    doc = upload(platform, org["token"], content=" ".join([HANDBOOK] * 8))
    org_id, document_id = uuid.UUID(org["org"]["id"]), uuid.UUID(doc["id"])
    start = threading.Barrier(2)

    def worker():
        start.wait()
        return ingest_document(org_id, document_id)

    with ThreadPoolExecutor(2) as pool:
        outcomes = [f.result() for f in [pool.submit(worker), pool.submit(worker)]]
    assert Outcome.READY in outcomes and set(outcomes) <= {Outcome.READY, Outcome.SKIPPED}, outcomes
    _one_set(platform, org["token"], doc["id"])
    platform.ingest_all()  # the upload's own message: nothing left to do
    _one_set(platform, org["token"], doc["id"])


def test_a_worker_whose_database_session_dies_mid_document_leaves_no_partial_chunks(platform):
    org = platform.register()
    doc = upload(platform, org["token"], content=" ".join([HANDBOOK] * 8))
    # The worker stops inside its chunk-writing transaction, three chunks written: it is killed there.
    platform.owner_execute(
        """CREATE FUNCTION test_hold_writer() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$"""
    )
    platform.owner_execute(
        """CREATE TRIGGER test_hold_writer AFTER INSERT ON document_chunks FOR EACH ROW
           WHEN (NEW.chunk_index = 2) EXECUTE FUNCTION test_hold_writer()"""
    )
    try:
        worker = threading.Thread(target=platform.ingest_all, kwargs={"max_rounds": 1})
        worker.start()
        deadline = time.monotonic() + 60
        while True:
            held = platform.owner_query(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND usename = 'rag_app'"
            )
            if held:
                break
            assert time.monotonic() < deadline, "the worker never reached the chunk insert"
            time.sleep(0.05)
        # Three chunks are inserted but not committed: nobody sees them.
        assert _chunks(platform, doc["id"]) == []
        assert platform.owner_query("SELECT pg_terminate_backend(%s)", (held[0][0],)) == [(True,)]
        worker.join(60)
        assert not worker.is_alive()
    finally:
        platform.owner_execute("DROP TRIGGER IF EXISTS test_hold_writer ON document_chunks")
        platform.owner_execute("DROP FUNCTION IF EXISTS test_hold_writer()")
    # The transaction died with its session: no partial chunks; the document is still being processed.
    assert _chunks(platform, doc["id"]) == []
    assert get(platform, org["token"], doc["id"]).body["document"]["status"] == "processing"
    # The message was not deleted: the next delivery finishes it on a fresh connection.
    platform.ingest_all()
    _one_set(platform, org["token"], doc["id"])


def test_poison_messages_fail_alone_and_the_rest_of_the_batch_succeeds(platform):
    mine, theirs = platform.register(), platform.register()
    their_doc = upload(platform, theirs["token"])
    platform.ingest_all()
    before = get(platform, theirs["token"], their_doc["id"]).body["document"]
    good = upload(platform, mine["token"])
    poison = [
        "not json at all",
        json.dumps(["a", "list"]),
        json.dumps({"org_id": mine["org"]["id"]}),
        json.dumps({"org_id": "not-a-uuid", "document_id": good["id"]}),
        # Another organisation's document under mine: forged or corrupted, never processed.
        json.dumps({"org_id": mine["org"]["id"], "document_id": their_doc["id"]}),
    ]
    harmless = [
        # Well formed, naming a document that exists nowhere (deleted while its message waited): done.
        json.dumps({"org_id": mine["org"]["id"], "document_id": str(uuid.uuid4())}),
    ]
    for body in [*poison, *harmless]:
        platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=body)
    platform.ingest_all()
    _one_set(platform, mine["token"], good["id"])
    after = get(platform, theirs["token"], their_doc["id"]).body["document"]
    assert after == before  # another tenant's id in a message changes nothing of that tenant
    dead = []
    while batch := platform.sqs.receive_message(QueueUrl=platform.dlq_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        dead += batch
        platform.sqs.delete_message_batch(
            QueueUrl=platform.dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    assert sorted(m["Body"] for m in dead) == sorted(poison)
    assert platform.sqs.receive_message(QueueUrl=platform.queue_url).get("Messages") is None
