"""Upload plumbing without network: object keys, the two message shapes of the ingest queue, and the local
S3 endpoint's check of presigned URLs (against URLs botocore signs)."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from ragcore.queue import IngestRequest, parse_ingest_message
from ragcore.storage import object_key, parse_object_key

from infra.local.s3 import PresignedRequestCheck, verify_presigned

ORG, DOC = uuid.uuid4(), uuid.uuid4()
ENDPOINT = "http://127.0.0.1:9999"


def test_object_keys_round_trip_and_nothing_else_parses():
    key = object_key(ORG, DOC)
    assert key == f"{ORG}/{DOC}"
    assert parse_object_key(key) == (ORG, DOC)
    for other in ("", "x", f"{ORG}", f"{ORG}/{DOC}/x", f"{ORG}/not-a-uuid", str(ORG).upper() + f"/{DOC}"):
        assert parse_object_key(other) is None, other


def s3_event(key: str, *, bucket="uploads", name="ObjectCreated:Put", version=None) -> str:
    obj = {"key": key, "size": 3} | ({"versionId": version} if version else {})
    record = {"eventSource": "aws:s3", "eventName": name, "s3": {"bucket": {"name": bucket}, "object": obj}}
    return json.dumps({"Records": [record]})


def test_document_messages_parse_as_before():
    body = json.dumps({"org_id": str(ORG), "document_id": str(DOC)})
    assert parse_ingest_message(body, "uploads").requests == [IngestRequest(ORG, DOC)]


def test_s3_events_name_the_document_and_its_key():
    parsed = parse_ingest_message(s3_event(f"{ORG}/{DOC}", version="v1"), "uploads")
    assert parsed.requests == [IngestRequest(ORG, DOC, object_key=f"{ORG}/{DOC}", version_id="v1")]
    # S3 URL-encodes keys in events (moto encodes the slash too).
    encoded = parse_ingest_message(s3_event(f"{ORG}%2F{DOC}"), "uploads")
    assert encoded.requests[0].object_key == f"{ORG}/{DOC}"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"}),
        s3_event("some/other/key"),
        s3_event("readme.txt"),
        s3_event(f"{ORG}/{DOC}", bucket="elsewhere"),
        s3_event(f"{ORG}/{DOC}", name="ObjectRemoved:Delete"),
        json.dumps({"Records": [{"eventSource": "aws:sqs"}]}),
    ],
)
def test_events_that_can_never_be_ingested_are_ignored_with_a_reason(body):
    parsed = parse_ingest_message(body, "uploads")
    assert parsed.requests == [] and len(parsed.ignored) == 1 and parsed.ignored[0]


@pytest.mark.parametrize("body", ["not json", "[]", "{}", json.dumps({"Records": "x"}), '{"org_id": "x"}'])
def test_malformed_messages_raise_so_they_are_retried_then_dead_lettered(body):
    with pytest.raises((ValueError, KeyError)):
        parse_ingest_message(body, "uploads")


def presigned(key="o/report 1.pdf", content_type="application/pdf", size=1234, expires=900, secret="s3cr3t"):
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id="AKIDLOCAL",
        aws_secret_access_key=secret,
        config=Config(signature_version="s3v4"),
    )
    return client.generate_presigned_url(
        "put_object",
        Params={"Bucket": "uploads", "Key": key, "ContentType": content_type, "ContentLength": size},
        ExpiresIn=expires,
        HttpMethod="PUT",
    )


def environ_for(url: str, *, method="PUT", content_type="application/pdf", length=1234) -> dict:
    parts = urlsplit(url)
    environ = {
        "REQUEST_METHOD": method,
        "RAW_URI": parts.path + "?" + parts.query,
        "PATH_INFO": parts.path,
        "QUERY_STRING": parts.query,
        "HTTP_HOST": parts.netloc,
        "wsgi.input": io.BytesIO(b""),
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    return environ


SECRETS = {"AKIDLOCAL": "s3cr3t"}


def test_a_url_signed_by_botocore_verifies_with_exactly_the_signed_type_and_length():
    url = presigned()
    assert verify_presigned(environ_for(url), SECRETS) is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"content_type": "text/plain"}, "SignatureDoesNotMatch"),
        ({"length": 1235}, "SignatureDoesNotMatch"),
        ({"length": None}, "SignatureDoesNotMatch"),
        ({"method": "GET"}, "SignatureDoesNotMatch"),
    ],
)
def test_another_type_length_or_method_is_refused(change, code):
    assert verify_presigned(environ_for(presigned(), **change), SECRETS)[0] == code


def test_another_key_a_wrong_secret_or_an_unknown_key_id_is_refused():
    url = presigned()
    moved = url.replace("/uploads/o/", "/uploads/p/")
    assert verify_presigned(environ_for(moved), SECRETS)[0] == "SignatureDoesNotMatch"
    assert verify_presigned(environ_for(presigned(secret="other")), SECRETS)[0] == "SignatureDoesNotMatch"
    assert verify_presigned(environ_for(url), {"SOMEONE": "x"})[0] == "InvalidAccessKeyId"


def test_an_expired_url_is_refused():
    url = presigned(expires=60)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
    assert verify_presigned(environ_for(url), SECRETS, now=later) == ("AccessDenied", "Request has expired")


def test_requests_that_are_not_presigned_pass_through_and_refusals_look_like_s3():
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"ok"]

    check = PresignedRequestCheck(app, lambda: SECRETS)
    statuses = []
    assert check(environ_for(ENDPOINT + "/uploads/o/x"), lambda s, h: statuses.append(s)) == [b"ok"]
    assert check(environ_for(presigned(), method="OPTIONS"), lambda s, h: statuses.append(s)) == [b"ok"]
    refused = check(environ_for(presigned(), length=1), lambda s, h: statuses.append(s))
    assert statuses == ["200 OK", "200 OK", "403 Forbidden"]
    assert b"<Code>SignatureDoesNotMatch</Code>" in refused[0]
    assert len(calls) == 2


@pytest.mark.parametrize(
    "endpoint, host",
    [
        # In AWS: the bucket's regional name, which needs no redirect a browser could not follow.
        (None, "uploads-bucket.s3.eu-west-1.amazonaws.com"),
        # A local endpoint (moto, LocalStack) is addressed by path.
        (ENDPOINT, "127.0.0.1:9999"),
    ],
)
def test_presigned_urls_name_the_buckets_region_in_aws(monkeypatch, endpoint, host):
    from ragcore.config import reset_settings
    from ragcore.storage import S3ObjectStore

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    reset_settings()
    try:
        url = S3ObjectStore("uploads-bucket").presign_put(f"{ORG}/{DOC}", "text/plain", 5, 900).url
    finally:
        reset_settings()
    parts = urlsplit(url)
    assert parts.netloc == host
    assert parts.path == (f"/{ORG}/{DOC}" if endpoint is None else f"/uploads-bucket/{ORG}/{DOC}")
