import json
import uuid

import pytest

HANDBOOK = (
    "Employee handbook of Acme Research.\n\n"
    "Every employee accrues twenty-five days of paid vacation per calendar year. "
    "Unused vacation days may be carried over until the end of March of the following year. "
    "Remote work is allowed up to three days per week with the approval of the team lead. "
    "The office is closed on public holidays and between Christmas and New Year."
)


def upload(platform, token, name="handbook.txt", content=HANDBOOK, metadata=None):
    result = platform.request(
        "POST",
        "/api/v1/documents",
        {"name": name, "content": content, "metadata": metadata or {}},
        token=token,
    )
    assert result.status == 202, result.body
    return result.body["document"]


def get(platform, token, doc_id):
    return platform.request("GET", f"/api/v1/documents/{doc_id}", token=token)


def test_upload_is_pending_then_ready_after_ingestion(platform):
    org = platform.register()
    doc = upload(platform, org["token"], metadata={"team": "hr"})
    assert doc["status"] == "pending"
    assert doc["chunk_count"] == 0
    assert len(doc["content_hash"]) == 64
    platform.ingest_all()
    ready = get(platform, org["token"], doc["id"]).body["document"]
    assert ready["status"] == "ready", ready
    assert ready["chunk_count"] == 1
    assert ready["error"] is None
    assert ready["metadata"] == {"team": "hr"}
    rows = platform.owner_query(
        "SELECT chunk_index, embedding_model, token_count FROM document_chunks WHERE document_id = %s",
        (doc["id"],),
    )
    assert rows[0][1] == "sentence-transformers/all-MiniLM-L6-v2"
    assert rows[0][2] <= 254


def test_long_document_is_chunked_within_the_embedder_window(platform):
    org = platform.register()
    content = " ".join(f"Paragraph {i} talks about topic number {i} in some detail." for i in range(300))
    doc = upload(platform, org["token"], content=content)
    platform.ingest_all()
    ready = get(platform, org["token"], doc["id"]).body["document"]
    assert ready["status"] == "ready"
    rows = platform.owner_query(
        "SELECT chunk_index, token_count FROM document_chunks WHERE document_id = %s ORDER BY chunk_index",
        (doc["id"],),
    )
    assert [r[0] for r in rows] == list(range(ready["chunk_count"]))
    assert ready["chunk_count"] > 5
    assert max(r[1] for r in rows) <= 254


def test_redelivered_message_is_harmless(platform):
    org = platform.register()
    doc = upload(platform, org["token"])
    platform.ingest_all()
    platform.sqs.send_message(
        QueueUrl=platform.queue_url,
        MessageBody=f'{{"org_id": "{org["org"]["id"]}", "document_id": "{doc["id"]}"}}',
    )
    platform.ingest_all()
    after = get(platform, org["token"], doc["id"]).body["document"]
    assert after["status"] == "ready" and after["chunk_count"] == 1
    count = platform.owner_query("SELECT count(*) FROM document_chunks WHERE document_id = %s", (doc["id"],))
    assert count[0][0] == 1


def test_poison_message_fails_alone_and_ends_in_the_dead_letter_queue(platform):
    org = platform.register()
    platform.sqs.send_message(QueueUrl=platform.queue_url, MessageBody="not json at all")
    good = upload(platform, org["token"])
    platform.ingest_all()
    assert get(platform, org["token"], good["id"]).body["document"]["status"] == "ready"
    dead = platform.sqs.receive_message(QueueUrl=platform.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in dead] == ["not json at all"]
    platform.sqs.delete_message(QueueUrl=platform.dlq_url, ReceiptHandle=dead[0]["ReceiptHandle"])


def test_document_whose_ingestion_keeps_failing_ends_failed_not_processing(platform, monkeypatch, capsys):
    org = platform.register()
    doc = upload(platform, org["token"])

    def provider_down(*_args, **_kwargs):
        raise ConnectionError("embedding provider unreachable")

    monkeypatch.setattr("ragcore.ingest.embed_in_batches", provider_down)
    platform.ingest_all()
    failed = get(platform, org["token"], doc["id"]).body["document"]
    assert failed["status"] == "failed"
    assert "embedding provider unreachable" in failed["error"]
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("DocumentsFailed") == [1.0] or m.get("DocumentsFailed") == 1.0 for m in emitted), emitted
    assert platform.sqs.receive_message(QueueUrl=platform.dlq_url).get("Messages") is None
    monkeypatch.undo()
    assert (
        platform.request("POST", f"/api/v1/documents/{doc['id']}/reingest", token=org["token"]).status == 202
    )
    platform.ingest_all()
    assert get(platform, org["token"], doc["id"]).body["document"]["status"] == "ready"


def test_listing_pages_with_cursor_and_filters_by_status(platform):
    org = platform.register()
    ids = [upload(platform, org["token"], name=f"doc-{i}.txt")["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = platform.request("GET", "/api/v1/documents", token=org["token"], query=query).body
        assert len(page["items"]) <= 2
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each exactly once
    pending = platform.request("GET", "/api/v1/documents", token=org["token"], query="status=pending").body
    assert {d["id"] for d in pending["items"]} == set(ids)
    platform.ingest_all()
    assert (
        platform.request("GET", "/api/v1/documents", token=org["token"], query="status=pending").body["items"]
        == []
    )


@pytest.mark.parametrize(
    "query,status",
    [
        ("limit=0", 422),
        ("limit=101", 422),
        ("limit=abc", 422),
        ("status=done", 422),
        ("cursor=%%%", 400),
        ("cursor=bm90LWpzb24", 400),
    ],
)
def test_bad_listing_parameters(platform, query, status):
    org = platform.register()
    result = platform.request("GET", "/api/v1/documents", token=org["token"], query=query)
    assert result.status == status, result.body
    assert "error" in result.body


def test_other_tenants_documents_are_404_everywhere(platform):
    owner, stranger = platform.register(), platform.register()
    doc = upload(platform, owner["token"])
    for method, path in [
        ("GET", f"/api/v1/documents/{doc['id']}"),
        ("DELETE", f"/api/v1/documents/{doc['id']}"),
        ("POST", f"/api/v1/documents/{doc['id']}/reingest"),
    ]:
        result = platform.request(method, path, token=stranger["token"])
        assert result.status == 404, (method, result.body)
        assert result.body["error"]["code"] == "not_found"
    listed = platform.request("GET", "/api/v1/documents", token=stranger["token"]).body
    assert doc["id"] not in {d["id"] for d in listed["items"]}
    assert get(platform, owner["token"], doc["id"]).status == 200


def test_malformed_or_unknown_id_is_404(platform):
    org = platform.register()
    assert get(platform, org["token"], "not-a-uuid").status == 404
    assert get(platform, org["token"], str(uuid.uuid4())).status == 404


def test_only_admins_delete_and_chunks_go_too(platform):
    admin = platform.register()
    member = platform.request(
        "POST",
        "/api/v1/users",
        {"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "member-pass"},
        token=admin["token"],
    ).body["user"]
    member_token = platform.request(
        "POST", "/api/v1/auth/login", {"email": member["email"], "password": "member-pass"}
    ).body["token"]
    doc = upload(platform, member_token)
    platform.ingest_all()
    denied = platform.request("DELETE", f"/api/v1/documents/{doc['id']}", token=member_token)
    assert denied.status == 403
    assert denied.body["error"]["code"] == "forbidden"
    # Members upload and read; re-ingestion (embedding work, replaces what everyone queries) is an admin's.
    reingest = platform.request("POST", f"/api/v1/documents/{doc['id']}/reingest", token=member_token)
    assert reingest.status == 403
    assert reingest.body["error"]["code"] == "forbidden"
    assert get(platform, member_token, doc["id"]).body["document"]["status"] == "ready"
    assert platform.request("DELETE", f"/api/v1/documents/{doc['id']}", token=admin["token"]).status == 204
    assert get(platform, admin["token"], doc["id"]).status == 404
    assert (
        platform.owner_query("SELECT count(*) FROM document_chunks WHERE document_id = %s", (doc["id"],))[0][
            0
        ]
        == 0
    )


def test_reingest_rebuilds_chunks(platform):
    org = platform.register()
    doc = upload(platform, org["token"])
    platform.ingest_all()
    before = platform.owner_query("SELECT min(id) FROM document_chunks WHERE document_id = %s", (doc["id"],))[
        0
    ][0]
    again = platform.request("POST", f"/api/v1/documents/{doc['id']}/reingest", token=org["token"])
    assert again.status == 202 and again.body["document"]["status"] == "pending"
    platform.ingest_all()
    assert get(platform, org["token"], doc["id"]).body["document"]["status"] == "ready"
    after = platform.owner_query("SELECT min(id) FROM document_chunks WHERE document_id = %s", (doc["id"],))[
        0
    ][0]
    assert after > before


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"name": "x", "content": "   "}, 422, "validation_error"),
        ({"name": "", "content": "text"}, 422, "validation_error"),
        ({"content": "text"}, 422, "validation_error"),
        ({"name": "x", "content": 42}, 422, "validation_error"),
        ({"name": "x", "content": "text", "metadata": "nope"}, 422, "validation_error"),
    ],
)
def test_invalid_uploads_store_nothing(platform, body, status, code):
    org = platform.register()
    result = platform.request("POST", "/api/v1/documents", body, token=org["token"])
    assert result.status == status, result.body
    assert result.body["error"]["code"] == code
    assert platform.request("GET", "/api/v1/documents", token=org["token"]).body["items"] == []


def test_oversized_upload_is_413(platform, monkeypatch):
    from ragcore.config import get_settings

    org = platform.register()
    limit = get_settings().max_document_bytes
    result = platform.request(
        "POST", "/api/v1/documents", {"name": "big", "content": "a" * (limit + 1)}, token=org["token"]
    )
    assert result.status == 413
    assert result.body["error"]["code"] == "payload_too_large"


def test_a_document_that_would_not_fit_lambdas_event_once_escaped_is_413(platform):
    """Under the raw size limit, but each quote takes 4 bytes of event: refused before anything is stored."""
    from ragcore.config import get_settings

    org = platform.register()
    content = 'He said "yes". ' * (get_settings().max_document_bytes // 16)
    assert len(content.encode()) <= get_settings().max_document_bytes
    result = platform.request(
        "POST", "/api/v1/documents", {"name": "quotes", "content": content}, token=org["token"]
    )
    assert result.status == 413
    assert result.body["error"]["code"] == "payload_too_large"
    assert "escaped" in result.body["error"]["message"]
    assert platform.request("GET", "/api/v1/documents", token=org["token"]).body["items"] == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "x", "content": "before\\u0000after"}',
        b'{"name": "nul\\u0000name", "content": "text"}',
        b'{"name": "x", "content": "text", "metadata": {"k\\u0000": "v"}}',
        b'{"name": "x", "content": "lone \\ud800 surrogate"}',
    ],
)
def test_text_postgres_cannot_store_is_422(platform, raw):
    org = platform.register()
    result = platform.request("POST", "/api/v1/documents", raw_body=raw, token=org["token"])
    assert result.status == 422, result.body
    assert result.body["error"]["code"] == "validation_error"
    assert platform.request("GET", "/api/v1/documents", token=org["token"]).body["items"] == []


def test_registration_with_nul_characters_is_422(platform):
    raw = b'{"org_name": "Acme\\u0000", "email": "nul@example.com", "password": "long-enough"}'
    result = platform.request("POST", "/api/v1/auth/register", raw_body=raw)
    assert result.status == 422
