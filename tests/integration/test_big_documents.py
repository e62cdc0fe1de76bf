"""A large document is embedded in bounded chunk ranges, one queue message (one invocation) each, through
the real queue, ingest handler, embedding model and database. The range size is lowered through settings
so a document of a few dozen chunks takes the same path as one at the size limit (many ranges, chained).

Each test delivers the queue one message at a time, as the template's batch size of one does, and
measures after every invocation how many of the big document's chunks have a vector."""

from __future__ import annotations

import json
import uuid

import pytest
from ragcore.config import get_settings
from ragcore.embeddings import get_embedder
from ragcore.ingest import chunk_for
from ragcore.reaper import reap

from tests.integration.test_documents import get, upload
from tests.integration.test_uploads import s3, upload_file  # noqa: F401 (s3: the bucket fixture)

RANGE = 4
# About 40 chunks of 16 words: ten ranges, so two chains of five.
BIG = " ".join(
    f"Clause {i} of the travel policy covers expenses claimed in region {i} and their approval by managers."
    for i in range(40)
)
SMALL = "Parking permits are issued by the front desk on the first day."


@pytest.fixture
def ranged(platform, configure):
    # These tests count deliveries one by one: what earlier tests left in the queue is delivered first.
    platform.ingest_all()
    configure(ingest_range_chunks=RANGE, ingest_range_chains=2, chunk_size_words=16, chunk_overlap_words=0)


def _embedded(platform, document_id: str) -> int:
    """Chunks of the document that have a vector, staged or stored."""
    staged = platform.owner_query(
        "SELECT count(*) FROM document_chunks_staged WHERE document_id = %s AND embedding IS NOT NULL",
        (document_id,),
    )[0][0]
    stored = platform.owner_query(
        "SELECT count(*) FROM document_chunks WHERE document_id = %s", (document_id,)
    )
    return staged + stored[0][0]


def _expected_chunks():
    settings = get_settings()
    return chunk_for(get_embedder(settings), BIG, settings)


def _status(platform, org, doc) -> str:
    return get(platform, org["token"], doc["id"]).body["document"]["status"]


def _assert_exactly_the_chunks(platform, org, doc, *, queried: bool = False) -> None:
    """Ready, holding exactly the chunks the single-invocation path makes, nothing staged, and counted once
    against the organisation's usage."""
    expected = _expected_chunks()
    document = get(platform, org["token"], doc["id"]).body["document"]
    assert document["status"] == "ready", document
    assert document["chunk_count"] == len(expected)
    rows = platform.owner_query(
        "SELECT chunk_index, content, token_count FROM document_chunks WHERE document_id = %s "
        "ORDER BY chunk_index",
        (doc["id"],),
    )
    assert rows == [(c.index, c.content, c.token_count) for c in expected]
    assert platform.owner_query(
        "SELECT count(*) FROM document_chunks_staged WHERE document_id = %s", (doc["id"],)
    ) == [(0,)]
    assert platform.owner_query("SELECT ingest_run FROM documents WHERE id = %s", (doc["id"],)) == [(None,)]
    usage = platform.owner_query(
        "SELECT chunks, embedding_tokens FROM org_usage WHERE org_id = %s", (org["org"]["id"],)
    )
    assert usage[0][0] == len(expected)
    if not queried:  # a query's embedding counts its question's tokens too
        assert usage[0][1] == sum(c.token_count for c in expected)


def _lexical_terms(platform, org) -> int:
    return platform.owner_query(
        "SELECT count(*) FROM bm25_term_stats WHERE org_id = %s", (org["org"]["id"],)
    )[0][0]


def test_a_big_document_is_embedded_in_bounded_ranges_and_a_small_one_queued_behind_it_is_ready_first(
    platform, ranged
):
    big_org, small_org = platform.register(), platform.register()
    big = upload(platform, big_org["token"], name="big.txt", content=BIG)
    assert len(_expected_chunks()) > 4 * RANGE  # several ranges per chain

    # The first invocation chunks and stages the big document and sends the first range of each chain.
    assert platform.poller.poll_once(wait_seconds=0) == 1
    assert _status(platform, big_org, big) == "processing"
    assert _embedded(platform, big["id"]) == 0
    # The small document of another tenant arrives now: behind the big document's ranges.
    small = upload(platform, small_org["token"], name="small.txt", content=SMALL)

    per_invocation, ready_at, invocations = [], {}, 1
    while platform.poller.poll_once(wait_seconds=0):
        invocations += 1
        assert invocations < 100
        before = sum(per_invocation)
        per_invocation.append(_embedded(platform, big["id"]) - before)
        for name, org, doc in (("big", big_org, big), ("small", small_org, small)):
            if name not in ready_at and _status(platform, org, doc) == "ready":
                ready_at[name] = invocations
        if "big" not in ready_at:
            # Staged chunks are invisible: no chunk, no lexical statistics, nothing to retrieve.
            assert platform.owner_query(
                "SELECT count(*) FROM document_chunks WHERE document_id = %s", (big["id"],)
            ) == [(0,)]
            assert _lexical_terms(platform, big_org) == 0
            answer = platform.request(
                "POST",
                "/api/v1/query/sync",
                {"question": "travel policy clause", "top_k": 5},
                token=big_org["token"],
            )
            assert answer.status == 200, answer.body
            assert answer.body["sources"] == []

    ranges = -(-len(_expected_chunks()) // RANGE)
    # Every invocation embedded at most one range of the big document.
    assert max(per_invocation) <= RANGE
    assert invocations == 1 + ranges + 1  # the staging, each range once, the small document
    # The small document went through after at most the two ranges queued ahead of it, long before the
    # big one was done.
    assert ready_at["small"] <= 1 + 2 + 1 < ready_at["big"]
    _assert_exactly_the_chunks(platform, big_org, big, queried=True)
    assert _lexical_terms(platform, big_org) > 0


def _run_id(platform, doc) -> str:
    (row,) = platform.owner_query("SELECT ingest_run FROM documents WHERE id = %s", (doc["id"],))
    assert row[0] is not None
    return str(row[0])


def test_a_range_delivered_twice_embeds_and_counts_once(platform, ranged):
    org = platform.register()
    doc = upload(platform, org["token"], name="big.txt", content=BIG)
    assert platform.poller.poll_once(wait_seconds=0) == 1
    body = json.dumps(
        {"org_id": org["org"]["id"], "document_id": doc["id"], "run_id": _run_id(platform, doc), "start": 0,
         "stop": RANGE}
    )  # fmt: skip
    for _ in range(2):
        platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=body)
    platform.ingest_all()
    _assert_exactly_the_chunks(platform, org, doc)
    # Once ready, the same range again finds its run gone: nothing changes.
    platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=body)
    platform.ingest_all()
    _assert_exactly_the_chunks(platform, org, doc)


def test_deleting_a_document_while_its_ranges_are_in_flight_leaves_nothing(platform, ranged):
    org = platform.register()
    doc = upload(platform, org["token"], name="big.txt", content=BIG)
    for _ in range(3):  # staged, then two ranges embedded
        assert platform.poller.poll_once(wait_seconds=0) == 1
    assert 0 < _embedded(platform, doc["id"]) <= 2 * RANGE
    assert platform.request("DELETE", f"/api/v1/documents/{doc['id']}", token=org["token"]).status == 204
    platform.ingest_all()
    assert platform.owner_query(
        "SELECT count(*) FROM document_chunks_staged WHERE document_id = %s", (doc["id"],)
    ) == [(0,)]
    assert platform.owner_query(
        "SELECT count(*) FROM document_chunks WHERE document_id = %s", (doc["id"],)
    ) == [(0,)]
    assert platform.owner_query("SELECT chunks FROM org_usage WHERE org_id = %s", (org["org"]["id"],)) == [
        (0,)
    ]
    assert _lexical_terms(platform, org) == 0
    assert platform.sqs.receive_message(QueueUrl=platform.queue_url).get("Messages") is None
    assert platform.sqs.receive_message(QueueUrl=platform.dlq_url).get("Messages") is None


def test_reingesting_while_ranges_are_in_flight_gives_one_set_of_chunks(platform, ranged):
    org = platform.register()
    doc = upload(platform, org["token"], name="big.txt", content=BIG)
    for _ in range(3):
        assert platform.poller.poll_once(wait_seconds=0) == 1
    first_run = _run_id(platform, doc)
    reingest = platform.request("POST", f"/api/v1/documents/{doc['id']}/reingest", token=org["token"])
    assert reingest.status == 202, reingest.body
    platform.ingest_all()
    expected = _expected_chunks()
    document = get(platform, org["token"], doc["id"]).body["document"]
    assert document["status"] == "ready", document
    rows = platform.owner_query(
        "SELECT chunk_index, content FROM document_chunks WHERE document_id = %s ORDER BY chunk_index",
        (doc["id"],),
    )
    assert rows == [(c.index, c.content) for c in expected]
    assert platform.owner_query(
        "SELECT count(*) FROM document_chunks_staged WHERE document_id = %s", (doc["id"],)
    ) == [(0,)]
    assert platform.owner_query("SELECT chunks FROM org_usage WHERE org_id = %s", (org["org"]["id"],)) == [
        (len(expected),)
    ]
    # A range of the first staging arriving late changes nothing (its run is gone).
    late = {
        "org_id": org["org"]["id"],
        "document_id": doc["id"],
        "run_id": first_run,
        "start": 0,
        "stop": RANGE,
    }
    platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=json.dumps(late))
    platform.ingest_all()
    assert (
        platform.owner_query(
            "SELECT chunk_index, content FROM document_chunks WHERE document_id = %s ORDER BY chunk_index",
            (doc["id"],),
        )
        == rows
    )
    assert get(platform, org["token"], doc["id"]).body["document"]["status"] == "ready"


def test_a_small_document_keeps_the_single_invocation_path(platform, ranged):
    org = platform.register()
    doc = upload(platform, org["token"], name="small.txt", content=SMALL)
    assert platform.poller.poll_once(wait_seconds=0) == 1
    assert _status(platform, org, doc) == "ready"
    assert platform.poller.poll_once(wait_seconds=0) == 0


def _age(platform, doc, seconds: int) -> None:
    platform.owner_execute(
        "UPDATE documents SET updated_at = now() - make_interval(secs => %s) WHERE id = %s",
        (seconds, doc["id"]),
    )


def test_a_document_whose_ranges_progress_is_not_reaped(platform, ranged):
    org = platform.register()
    doc = upload(platform, org["token"], name="big.txt", content=BIG)
    assert platform.poller.poll_once(wait_seconds=0) == 1
    _age(platform, doc, get_settings().reaper_processing_after_seconds + 60)
    assert platform.poller.poll_once(wait_seconds=0) == 1  # one range stored: progress
    report = reap()
    assert uuid.UUID(doc["id"]) not in [*report.requeued, *report.failed]
    platform.ingest_all()
    _assert_exactly_the_chunks(platform, org, doc)


def test_a_document_whose_range_messages_were_lost_is_sent_again_by_the_reaper(platform, ranged):
    org = platform.register()
    doc = upload(platform, org["token"], name="big.txt", content=BIG)
    for _ in range(2):  # staged, one range embedded
        assert platform.poller.poll_once(wait_seconds=0) == 1
    platform.sqs.purge_queue(QueueUrl=platform.queue_url)  # the ranges' messages are lost
    assert platform.sqs.receive_message(QueueUrl=platform.queue_url).get("Messages") is None
    _age(platform, doc, get_settings().reaper_processing_after_seconds + 60)
    report = reap()
    assert report.requeued == [uuid.UUID(doc["id"])]
    platform.ingest_all()
    _assert_exactly_the_chunks(platform, org, doc)


@pytest.mark.usefixtures("s3")  # the upload bucket served, its events sent to the queue
def test_two_identical_big_files_staged_at_once_end_one_ready_and_one_its_duplicate(platform, ranged):
    org = platform.register()
    data = (f"Probe {uuid.uuid4().hex}. " + BIG).encode()
    first = upload_file(platform, org["token"], "big.txt", "text/plain", data)
    second = upload_file(platform, org["token"], "big-copy.txt", "text/plain", data)
    platform.ingest_all()  # both staged before either is ready; their ranges interleave
    states = {d["id"]: get(platform, org["token"], d["id"]).body["document"] for d in (first, second)}
    ready = [d for d in states.values() if d["status"] == "ready"]
    duplicate = [d for d in states.values() if d["status"] == "failed"]
    assert len(ready) == 1 and len(duplicate) == 1, states
    assert duplicate[0]["duplicate_of"] == ready[0]["id"] and duplicate[0]["chunk_count"] == 0
    for document in states.values():
        assert platform.owner_query(
            "SELECT count(*) FROM document_chunks_staged WHERE document_id = %s", (document["id"],)
        ) == [(0,)]
    assert platform.owner_query(
        "SELECT count(*) FROM document_chunks WHERE document_id = %s", (duplicate[0]["id"],)
    ) == [(0,)]
    (stored,) = platform.owner_query("SELECT chunks FROM org_usage WHERE org_id = %s", (org["org"]["id"],))
    assert stored[0] == ready[0]["chunk_count"] > 4 * RANGE
