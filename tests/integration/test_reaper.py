"""The reaper: documents stranded by a lost message or a dead worker end ready or failed, within its bound."""

from concurrent.futures import ThreadPoolExecutor

from ragcore.config import get_settings
from ragcore.reaper import reap

from infra.local.schedule import scheduled_event
from tests.integration.test_documents import get, upload


def _run_reaper(platform) -> dict:
    """One scheduled run of the reaper function, with the event EventBridge sends."""
    return platform.functions["ReaperFunction"].invoke(scheduled_event("us-east-1"))


def _lose_queued_messages(platform) -> None:
    """What a crash of the local queue (or a message past the DLQ) does: the messages are gone."""
    while True:
        messages = platform.sqs.receive_message(
            QueueUrl=platform.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages")
        if not messages:
            return
        platform.sqs.delete_message_batch(
            QueueUrl=platform.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def _age(platform, document_id: str, seconds: int, **columns) -> None:
    assignments = "".join(f", {name} = %s" for name in columns)
    platform.owner_execute(
        f"UPDATE documents SET updated_at = now() - make_interval(secs => %s){assignments} WHERE id = %s",
        (seconds, *columns.values(), document_id),
    )


def _status(platform, token: str, document_id: str) -> dict:
    return get(platform, token, document_id).body["document"]


def test_a_pending_document_whose_message_was_lost_is_sent_again_after_the_bound(platform):
    org = platform.register()
    doc = upload(platform, org["token"])
    _lose_queued_messages(platform)
    bound = get_settings().reaper_pending_after_seconds

    _age(platform, doc["id"], bound - 60)  # not yet stale: left alone
    _run_reaper(platform)
    assert platform.ingest_all() == 0
    assert _status(platform, org["token"], doc["id"])["status"] == "pending"

    _age(platform, doc["id"], bound + 1)
    assert _run_reaper(platform)["requeued"] >= 1
    assert platform.ingest_all() >= 1
    assert _status(platform, org["token"], doc["id"])["status"] == "ready"


def test_a_stale_pending_document_is_left_alone_while_the_queue_holds_messages(platform):
    """Its message may be waiting behind others: only a drained queue proves it lost."""
    org = platform.register()
    _lose_queued_messages(platform)  # whatever earlier tests left: only this document's message remains
    waiting = upload(platform, org["token"])
    _age(platform, waiting["id"], get_settings().reaper_pending_after_seconds + 1)
    report = _run_reaper(platform)
    assert report["requeued"] == 0 and report["failed"] == 0
    assert platform.ingest_all() == 1  # exactly its own message: nothing was sent twice
    assert _status(platform, org["token"], waiting["id"])["status"] == "ready"


def test_a_document_whose_worker_died_is_sent_again_then_failed_when_attempts_are_used_up(platform):
    org = platform.register()
    first, second = upload(platform, org["token"]), upload(platform, org["token"])
    _lose_queued_messages(platform)
    stale = get_settings().reaper_processing_after_seconds + 1
    # Both were being processed when their worker died; the second had used up its attempts.
    _age(platform, first["id"], stale, status="processing", attempts=1)
    _age(platform, second["id"], stale, status="processing", attempts=get_settings().ingest_max_attempts)

    _run_reaper(platform)
    platform.ingest_all()
    assert _status(platform, org["token"], first["id"])["status"] == "ready"
    failed = _status(platform, org["token"], second["id"])
    assert failed["status"] == "failed"
    assert "did not finish after" in failed["error"]


def test_a_document_whose_message_keeps_getting_lost_fails_after_the_requeue_limit(platform):
    org = platform.register()
    doc = upload(platform, org["token"])
    stale = get_settings().reaper_pending_after_seconds + 1
    for _ in range(get_settings().reaper_max_requeues):
        _lose_queued_messages(platform)
        _age(platform, doc["id"], stale)
        _run_reaper(platform)
        assert _status(platform, org["token"], doc["id"])["status"] == "pending"
    _lose_queued_messages(platform)
    _age(platform, doc["id"], stale)
    _run_reaper(platform)
    failed = _status(platform, org["token"], doc["id"])
    assert failed["status"] == "failed"
    assert "message was lost" in failed["error"]


def test_concurrent_reapers_never_send_a_document_twice(platform):
    org = platform.register()
    docs = [upload(platform, org["token"]) for _ in range(6)]
    _lose_queued_messages(platform)
    for doc in docs:
        _age(platform, doc["id"], get_settings().reaper_pending_after_seconds + 1)
    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = list(pool.map(lambda _: reap(), range(3)))
    sent = [d for report in reports for d in report.requeued]
    assert len(sent) == len(set(sent))
    assert {str(d) for d in sent} >= {doc["id"] for doc in docs}
    platform.ingest_all()
    assert {_status(platform, org["token"], doc["id"])["status"] for doc in docs} == {"ready"}


def test_the_reaper_leaves_finished_and_recent_documents_alone(platform):
    org = platform.register()
    doc = upload(platform, org["token"])
    platform.ingest_all()
    ready = _status(platform, org["token"], doc["id"])
    _age(platform, doc["id"], 10 * get_settings().reaper_processing_after_seconds)
    _run_reaper(platform)
    assert platform.ingest_all() == 0
    after = _status(platform, org["token"], doc["id"])
    assert (after["status"], after["chunk_count"]) == ("ready", ready["chunk_count"])
