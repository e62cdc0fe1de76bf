"""File uploads: POST /documents/uploads, the presigned PUT over real HTTP to moto's S3 server (behind the
local stack's check of presigned signatures), the S3 event through the ingest queue, and what follows
(ready and cited, refused PUTs, expiry, deletion, duplicates, poison events)."""

from __future__ import annotations

import json
import uuid

import boto3
import httpx
import pytest
from botocore.config import Config
from ragcore.config import reset_settings
from ragcore.storage import get_object_store

from infra.local.s3 import LocalAwsServer, ensure_buckets
from infra.local.schedule import scheduled_event
from tests.integration.conftest import UPLOAD_BUCKET
from tests.integration.test_documents import get
from tests.integration.test_reaper import _lose_queued_messages

BUCKET = UPLOAD_BUCKET
POLICY_TEXT = (
    "Travel policy of Acme Research.\n\n"
    "Employees travelling by train may book first class for journeys longer than four hours. "
    "Hotel costs are reimbursed up to one hundred and forty euros per night in capital cities."
)
MARKDOWN = (
    "# Security handbook\n\n"
    "## Laptops\n\n"
    "Every laptop must use full-disk encryption and lock its screen after five minutes.\n\n"
    "## Badges\n\n"
    "Visitors wear a red badge and are escorted by an employee at all times.\n"
)


@pytest.fixture(scope="module")
def s3(platform):
    """moto's S3 on a real port (shared state with the in-process SQS of the platform), the bucket with
    its notification to the ingest queue, and the platform's functions pointed at both."""
    server = LocalAwsServer(secrets={"testing": "testing"})
    endpoint = server.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        reset_settings()
        get_object_store.cache_clear()
        client = boto3.client(
            "s3", region_name="us-east-1", endpoint_url=endpoint, config=Config(signature_version="s3v4")
        )
        queue_arn = platform.sqs.get_queue_attributes(
            QueueUrl=platform.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        # The bucket as the local stack makes it from template-local.yaml: versioned, notifying the queue.
        names = ensure_buckets(
            client, platform.template, name_prefix="test", queue_arns={"IngestQueue": queue_arn}
        )
        assert names == {"UploadBucket": BUCKET}
        platform.ingest_all()  # S3's test event: ignored, and out of the way
        yield client
        client.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
        get_object_store.cache_clear()
    reset_settings()
    server.stop()


def start_upload(platform, token, name="policy.txt", content_type="text/plain", size=None, data=b"x"):
    body = {"name": name, "content_type": content_type, "size": len(data) if size is None else size}
    return platform.request("POST", "/api/v1/documents/uploads", body, token=token)


def put(upload: dict, data: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.put(upload["url"], content=data, headers=headers or upload["headers"], timeout=10)


def upload_file(platform, token, name, content_type, data: bytes) -> dict:
    created = start_upload(platform, token, name, content_type, data=data)
    assert created.status == 201, created.body
    response = put(created.body["upload"], data)
    assert response.status_code == 200, response.text
    return created.body["document"]


def ask(platform, token, question):
    result = platform.request("POST", "/api/v1/query/sync", {"question": question}, token=token)
    assert result.status == 200, result.body
    return result.body


def status_of(platform, token, doc_id) -> dict:
    return get(platform, token, doc_id).body["document"]


def run_reaper(platform) -> dict:
    return platform.functions["ReaperFunction"].invoke(scheduled_event("us-east-1"))


def test_a_file_uploaded_with_the_presigned_url_is_ingested_and_cited(platform, s3):
    org = platform.register()
    created = start_upload(platform, org["token"], "travel.txt", "text/plain", data=POLICY_TEXT.encode())
    assert created.status == 201, created.body
    doc, upload = created.body["document"], created.body["upload"]
    assert doc["status"] == "pending" and doc["content_hash"] is None
    assert doc["content_type"] == "text/plain" and doc["size"] == len(POLICY_TEXT.encode())
    assert upload["method"] == "PUT" and upload["headers"] == {"Content-Type": "text/plain"}
    # The key is under the tenant's prefix, and type and length are signed.
    assert f"/{BUCKET}/{org['org']['id']}/{doc['id']}?" in upload["url"]
    assert "content-length%3Bcontent-type%3Bhost" in upload["url"]
    assert "X-Amz-Expires=900" in upload["url"]

    assert put(upload, POLICY_TEXT.encode()).status_code == 200
    assert platform.ingest_all() >= 1
    ready = status_of(platform, org["token"], doc["id"])
    assert ready["status"] == "ready", ready
    assert ready["chunk_count"] >= 1 and ready["duplicate_of"] is None
    assert len(ready["content_hash"]) == 64

    answer = ask(platform, org["token"], "How much is reimbursed for a hotel night in a capital city?")
    assert answer["sources"][0]["document_id"] == doc["id"]
    assert answer["sources"][0]["document_name"] == "travel.txt"
    assert "[1]" in answer["answer"]


def test_markdown_upload_is_ingested(platform, s3):
    org = platform.register()
    doc = upload_file(platform, org["token"], "security.md", "text/markdown", MARKDOWN.encode())
    platform.ingest_all()
    assert status_of(platform, org["token"], doc["id"])["status"] == "ready"
    answer = ask(platform, org["token"], "What colour badge do visitors wear?")
    assert answer["sources"][0]["document_id"] == doc["id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "a.exe", "content_type": "application/x-msdownload", "size": 10}, 422, "validation_error"),
        ({"name": "a.txt", "content_type": "text/plain; charset=utf-8", "size": 10}, 422, "validation_error"),
        ({"name": "a.txt", "content_type": "text/plain", "size": 0}, 422, "validation_error"),
        ({"name": "a.txt", "content_type": "text/plain", "size": "10"}, 422, "validation_error"),
        ({"name": "a.txt", "content_type": "text/plain"}, 422, "validation_error"),
        ({"name": " ", "content_type": "text/plain", "size": 10}, 422, "validation_error"),
        ({"name": "a.pdf", "content_type": "application/pdf", "size": 50 * 1024 * 1024 + 1}, 413, None),
    ],
)
def test_unsupported_type_or_size_is_refused_before_anything_is_stored(platform, s3, body, status, code):
    org = platform.register()
    result = platform.request("POST", "/api/v1/documents/uploads", body, token=org["token"])
    assert result.status == status, result.body
    assert set(result.body) == {"error"} and set(result.body["error"]) == {"code", "message"}
    assert result.body["error"]["code"] == (code or "payload_too_large")
    assert platform.request("GET", "/api/v1/documents", token=org["token"]).body["items"] == []


def test_upload_needs_a_token(platform, s3):
    result = platform.request(
        "POST", "/api/v1/documents/uploads", {"name": "a.txt", "content_type": "text/plain", "size": 3}
    )
    assert result.status == 401 and result.body["error"]["code"] == "unauthorized"


def test_a_put_with_another_type_or_size_is_refused_by_the_signature(platform, s3):
    org = platform.register()
    data = POLICY_TEXT.encode()
    created = start_upload(platform, org["token"], "travel.txt", "text/plain", data=data)
    upload, doc = created.body["upload"], created.body["document"]

    wrong_type = put(upload, data, {"Content-Type": "text/html"})
    assert wrong_type.status_code == 403 and "SignatureDoesNotMatch" in wrong_type.text
    longer = put(upload, data + b" and more")
    assert longer.status_code == 403 and "SignatureDoesNotMatch" in longer.text
    shorter = put(upload, data[:-1])
    assert shorter.status_code == 403
    tampered = httpx.put(
        upload["url"].replace(doc["id"], str(uuid.uuid4())), content=data, headers=upload["headers"]
    )
    assert tampered.status_code == 403
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key=f"{org['org']['id']}/{doc['id']}")
    assert platform.ingest_all() == 0
    assert status_of(platform, org["token"], doc["id"])["status"] == "pending"


def _expire(platform, doc_id: str, seconds_ago: int) -> None:
    platform.owner_execute(
        """UPDATE documents SET upload_expires_at = now() - make_interval(secs => %s),
                                updated_at = now() - make_interval(secs => %s) WHERE id = %s""",
        (seconds_ago, seconds_ago, doc_id),
    )


def test_an_upload_never_received_ends_failed_after_its_url_expired(platform, s3):
    org = platform.register()
    created = start_upload(platform, org["token"], "never.txt", "text/plain", data=b"never sent")
    doc = created.body["document"]
    run_reaper(platform)
    platform.ingest_all()
    assert status_of(platform, org["token"], doc["id"])["status"] == "pending"  # the URL is still valid

    _expire(platform, doc["id"], 60)  # expired, but within the grace for a PUT still arriving
    run_reaper(platform)
    platform.ingest_all()
    assert status_of(platform, org["token"], doc["id"])["status"] == "pending"

    _expire(platform, doc["id"], 301)
    assert run_reaper(platform)["requeued"] >= 1
    platform.ingest_all()
    failed = status_of(platform, org["token"], doc["id"])
    assert failed["status"] == "failed"
    assert failed["error"].startswith("upload not received before 20"), failed


def test_an_upload_whose_event_was_lost_is_found_by_the_reaper_and_ingested(platform, s3):
    org = platform.register()
    doc = upload_file(platform, org["token"], "travel.txt", "text/plain", POLICY_TEXT.encode())
    _lose_queued_messages(platform)  # the S3 event is lost
    _expire(platform, doc["id"], 301)
    run_reaper(platform)
    platform.ingest_all()
    assert status_of(platform, org["token"], doc["id"])["status"] == "ready"


def test_deleting_a_document_deletes_its_file_and_reingest_reads_it_again(platform, s3):
    org = platform.register()
    doc = upload_file(platform, org["token"], "travel.txt", "text/plain", POLICY_TEXT.encode())
    platform.ingest_all()
    key = f"{org['org']['id']}/{doc['id']}"

    again = platform.request("POST", f"/api/v1/documents/{doc['id']}/reingest", token=org["token"])
    assert again.status == 202
    platform.ingest_all()
    assert status_of(platform, org["token"], doc["id"])["status"] == "ready"

    assert platform.request("DELETE", f"/api/v1/documents/{doc['id']}", token=org["token"]).status == 204
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")
    assert get(platform, org["token"], doc["id"]).status == 404


def test_reingest_of_a_file_gone_from_storage_fails_with_a_reason(platform, s3):
    org = platform.register()
    doc = upload_file(platform, org["token"], "travel.txt", "text/plain", POLICY_TEXT.encode())
    platform.ingest_all()
    get_object_store().delete(f"{org['org']['id']}/{doc['id']}")
    platform.request("POST", f"/api/v1/documents/{doc['id']}/reingest", token=org["token"])
    platform.ingest_all()
    failed = status_of(platform, org["token"], doc["id"])
    assert failed["status"] == "failed"
    assert "no longer in storage" in failed["error"]


def test_identical_bytes_are_a_duplicate_within_a_tenant_only(platform, s3):
    data = ("Unique duplicate probe " + uuid.uuid4().hex + ". " + POLICY_TEXT).encode()
    org = platform.register()
    first = upload_file(platform, org["token"], "travel.txt", "text/plain", data)
    platform.ingest_all()
    second = upload_file(platform, org["token"], "travel-copy.txt", "text/plain", data)
    platform.ingest_all()

    dup = status_of(platform, org["token"], second["id"])
    assert dup["duplicate_of"] == first["id"]
    assert dup["status"] == "failed" and dup["chunk_count"] == 0
    assert f"duplicate of document {first['id']} (travel.txt)" in dup["error"]
    assert dup["content_hash"] == status_of(platform, org["token"], first["id"])["content_hash"]
    chunks = platform.owner_query(
        "SELECT count(*) FROM document_chunks WHERE document_id = %s", (second["id"],)
    )
    assert chunks[0][0] == 0

    other = platform.register()
    theirs = upload_file(platform, other["token"], "travel.txt", "text/plain", data)
    platform.ingest_all()
    mine = status_of(platform, other["token"], theirs["id"])
    assert mine["status"] == "ready" and mine["duplicate_of"] is None
    # Nothing of the first tenant leaks through the other's answers.
    answer = ask(platform, other["token"], "How much is reimbursed for a hotel night?")
    assert {s["document_id"] for s in answer["sources"]} == {theirs["id"]}

    # Once the original is gone, re-ingesting the copy embeds it.
    platform.request("DELETE", f"/api/v1/documents/{first['id']}", token=org["token"])
    platform.request("POST", f"/api/v1/documents/{second['id']}/reingest", token=org["token"])
    platform.ingest_all()
    now_original = status_of(platform, org["token"], second["id"])
    assert now_original["status"] == "ready" and now_original["duplicate_of"] is None


def _s3_event(key: str, bucket: str = BUCKET, name: str = "ObjectCreated:Put") -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": name,
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}},
                }
            ]
        }
    )


def test_poison_s3_events_are_dropped_or_dead_lettered_and_the_batch_goes_on(platform, s3):
    org = platform.register()
    ready = upload_file(platform, org["token"], "travel.txt", "text/plain", POLICY_TEXT.encode())
    platform.ingest_all()
    waiting = start_upload(platform, org["token"], "later.md", "text/markdown", data=MARKDOWN.encode())
    waiting_doc = waiting.body["document"]
    org_id = org["org"]["id"]
    bodies = [
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}),
        _s3_event("not-an-upload.txt"),
        _s3_event(f"{org_id}/{uuid.uuid4()}"),  # no such document
        _s3_event(f"{org_id}/{ready['id']}"),  # a document in another state (ready)
        _s3_event(f"{org_id}/{waiting_doc['id']}", bucket="someone-elses-bucket"),
        _s3_event(f"{org_id}/{waiting_doc['id']}", name="ObjectRemoved:Delete"),
        _s3_event(f"{org_id}/{waiting_doc['id']}"),  # event before the file exists: keeps waiting
        "not json at all",
    ]
    for body in bodies:
        platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=body)
    # The real upload in the same batches: unaffected by its neighbours.
    assert put(waiting.body["upload"], MARKDOWN.encode()).status_code == 200
    platform.ingest_all(max_rounds=40)

    assert status_of(platform, org["token"], waiting_doc["id"])["status"] == "ready"
    assert status_of(platform, org["token"], ready["id"])["status"] == "ready"
    chunks = platform.owner_query(
        "SELECT count(*) FROM document_chunks WHERE document_id = %s", (ready["id"],)
    )
    assert chunks[0][0] == status_of(platform, org["token"], ready["id"])["chunk_count"]
    # Only the malformed body ends in the dead-letter queue.
    dead = platform.sqs.receive_message(QueueUrl=platform.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["not json at all"]
    platform.sqs.delete_message(QueueUrl=platform.dlq_url, ReceiptHandle=dead[0]["ReceiptHandle"])


def test_an_unsupported_file_behind_a_supported_type_fails_with_a_reason(platform, s3):
    org = platform.register()
    doc = upload_file(platform, org["token"], "binary.txt", "text/plain", b"\x00" * 64)
    platform.ingest_all()
    failed = status_of(platform, org["token"], doc["id"])
    assert failed["status"] == "failed" and failed["error"], failed


def test_an_s3_event_delivered_again_after_a_worker_died_finishes_the_document(platform, s3):
    org = platform.register()
    created = start_upload(platform, org["token"], "travel.txt", "text/plain", data=POLICY_TEXT.encode())
    doc = created.body["document"]
    assert put(created.body["upload"], POLICY_TEXT.encode()).status_code == 200
    event = platform.sqs.receive_message(QueueUrl=platform.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    # A worker took the event, recorded the file and died while processing it.
    platform.owner_execute(
        "UPDATE documents SET status = 'processing', uploaded_at = now(), attempts = 1 WHERE id = %s",
        (doc["id"],),
    )
    platform.sqs.change_message_visibility(
        QueueUrl=platform.queue_url, ReceiptHandle=event["ReceiptHandle"], VisibilityTimeout=0
    )
    platform.ingest_all()
    assert status_of(platform, org["token"], doc["id"])["status"] == "ready"


def test_a_file_over_the_byte_limit_at_ingestion_fails_before_it_is_read(platform, s3, configure):
    org = platform.register()
    data = POLICY_TEXT.encode()
    doc = upload_file(platform, org["token"], "travel.txt", "text/plain", data)
    configure(extract_max_bytes=len(data) - 1)  # lowered between the upload and its ingestion
    platform.ingest_all()
    failed = status_of(platform, org["token"], doc["id"])
    assert failed["status"] == "failed"
    assert failed["error"] == f"file too large: the file is {len(data)} bytes; the limit is {len(data) - 1}"
    assert failed["content_hash"] is None  # refused on the object's length: no byte was hashed


def test_a_browser_may_put_from_another_origin_locally(platform, s3):
    org = platform.register()
    created = start_upload(platform, org["token"], "travel.txt", "text/plain", data=POLICY_TEXT.encode())
    upload = created.body["upload"]
    origin = {"Origin": "http://127.0.0.1:8080"}
    preflight = httpx.options(
        upload["url"],
        headers={
            **origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin["Origin"]
    response = put(upload, POLICY_TEXT.encode(), {**upload["headers"], **origin})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == origin["Origin"]
    platform.ingest_all()
    assert status_of(platform, org["token"], created.body["document"]["id"])["status"] == "ready"


def test_when_the_checks_are_lost_the_reaper_fails_the_upload_itself_but_only_on_a_drained_queue(
    platform, s3
):
    org = platform.register()
    doc = start_upload(platform, org["token"], "never.txt", "text/plain", data=b"never sent").body["document"]
    _lose_queued_messages(platform)
    _expire(platform, doc["id"], 301)
    platform.owner_execute("UPDATE documents SET requeues = 3 WHERE id = %s", (doc["id"],))  # sends used up

    # Another message waits in the queue (this upload's S3 event could be behind it): hands off.
    platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody=_s3_event("unrelated.txt"))
    report = run_reaper(platform)
    assert report["failed"] == 0 and status_of(platform, org["token"], doc["id"])["status"] == "pending"

    platform.ingest_all()  # drained
    assert run_reaper(platform)["failed"] >= 1
    failed = status_of(platform, org["token"], doc["id"])
    assert failed["status"] == "failed" and failed["error"].startswith("upload not received before 20")
