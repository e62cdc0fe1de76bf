"""The reaper's and the throttle's decisions around their stores (the SQL itself is tested on PostgreSQL
in tests/integration)."""

import uuid

import pytest
from ragcore.config import Settings
from ragcore.errors import RateLimited, ServiceUnavailable
from ragcore.reaper import StaleDocument, reap
from ragcore.throttle import LoginThrottle, throttle_key


class FakeSource:
    def __init__(self, stale):
        self.stale = stale
        self.asked = None
        self.purged_older_than = None

    def take(self, pending_after, processing_after, max_requeues, max_attempts, limit, upload_grace):
        self.asked = (pending_after, processing_after, max_requeues, max_attempts, limit, upload_grace)
        return self.stale

    def purge_throttle(self, older_than_seconds):
        self.purged_older_than = older_than_seconds
        return 3


class FakeQueue:
    def __init__(self, refuse=(), backlog=0):
        self.sent = []
        self.refuse = set(refuse)
        self._backlog = backlog

    def backlog(self):
        return self._backlog

    def send(self, org_id, document_id):
        if document_id in self.refuse:
            raise ServiceUnavailable("queue down")
        self.sent.append((org_id, document_id))


def test_the_reaper_resends_what_it_may_and_reports_the_rest():
    org = uuid.uuid4()
    again, lost, gone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source = FakeSource(
        [
            StaleDocument(org, again, "requeue"),
            StaleDocument(org, lost, "requeue"),
            StaleDocument(org, gone, "failed"),
        ]
    )
    queue = FakeQueue(refuse={lost})
    settings = Settings(reaper_pending_after_seconds=900, reaper_processing_after_seconds=2100)
    report = reap(source=source, queue=queue, settings=settings)
    assert queue.sent == [(org, again)]
    assert (report.requeued, report.unsent, report.failed) == ([again], [lost], [gone])
    assert source.asked == (900, 2100, 3, 3, 500, 300)
    # Throttle rows are kept a day past the longest window.
    assert source.purged_older_than == 3600 + 86_400 and report.purged_throttle_rows == 3


def test_pending_documents_are_left_alone_while_the_queue_holds_messages():
    source = FakeSource([])
    report = reap(source=source, queue=FakeQueue(backlog=7), settings=Settings())
    assert source.asked[:2] == (None, 2100)  # stuck `processing` documents are still judged by age
    assert report.backlog == 7


def test_the_reaper_at_start_up_takes_every_unfinished_document():
    source = FakeSource([])
    reap(
        pending_after_seconds=0,
        processing_after_seconds=0,
        source=source,
        queue=FakeQueue(),
        settings=Settings(),
    )
    assert source.asked[:2] == (0, 0)


class FakeThrottleStore:
    def __init__(self, wait=0):
        self.wait = wait
        self.hits = []
        self.forgiven = []

    def hit(self, limits, window_seconds):
        self.hits.append(([(limit.key, limit.max_attempts) for limit in limits], window_seconds))
        return self.wait

    def forgive(self, reset, refund):
        self.forgiven.append((reset, refund))


def test_sign_in_counts_the_account_and_the_address_and_refuses_with_the_wait():
    store = FakeThrottleStore(wait=42)
    throttle = LoginThrottle(store, Settings())
    with pytest.raises(RateLimited) as refused:
        throttle.before_login(" Ada@Example.com ", "203.0.113.5")
    assert refused.value.retry_after_seconds == 42
    ((limits, window),) = store.hits
    assert limits == [
        (throttle_key("login-account", "ada@example.com"), 5),
        (throttle_key("login-address", "203.0.113.5"), 30),
    ]
    assert window == 900


def test_a_success_resets_the_account_and_refunds_the_address():
    store = FakeThrottleStore()
    LoginThrottle(store, Settings()).login_succeeded("ada@example.com", None)
    assert store.forgiven == [
        ([throttle_key("login-account", "ada@example.com")], [throttle_key("login-address", "unknown")])
    ]


def test_keys_hold_no_e_mail_or_address_in_clear():
    key = throttle_key("login-account", "ada@example.com")
    assert len(key) == 64 and "ada" not in key
    assert key != throttle_key("register-address", "ada@example.com")
