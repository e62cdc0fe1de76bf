"""API key secrets and what each kind of caller may do (no database: see tests/integration/test_api_keys.py
for the routes)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from ragcore import api_keys
from ragcore.errors import Forbidden, Unauthenticated
from ragcore.principal import ALL_CAPABILITIES, Principal


def test_a_secret_is_rag_and_256_bits_of_base62():
    secrets = [api_keys.generate_secret() for _ in range(2000)]
    assert all(api_keys.SECRET_PATTERN.match(s) for s in secrets)
    assert len(set(secrets)) == len(secrets)
    # 43 base62 digits hold every 32-byte value and no more than needed.
    assert 62**43 >= 2**256 > 62**42
    # Every position past the leading digit uses the whole alphabet (no bias towards a few characters).
    body = "".join(s[5:] for s in secrets)
    counts = {c: body.count(c) for c in api_keys._ALPHABET}
    expected = len(body) / 62
    assert min(counts.values()) > expected * 0.8 and max(counts.values()) < expected * 1.2


def test_the_stored_form_is_the_sha256_digest():
    secret = api_keys.generate_secret()
    assert api_keys.hash_secret(secret) == hashlib.sha256(secret.encode()).digest()
    assert len(api_keys.hash_secret(secret)) == 32


@pytest.mark.parametrize(
    "token",
    ["rag_", "rag_short", "rag_" + "a" * 42, "rag_" + "a" * 44, "rag_" + "a" * 42 + "-", "rag_" + "é" * 43],
)
def test_a_malformed_key_is_refused_without_a_database(token, monkeypatch):
    # No DATABASE_URL here: a lookup would fail with RuntimeError, not answer Unauthenticated.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(Unauthenticated) as refused:
        api_keys.principal_from_api_key(token)
    assert refused.value.message == api_keys.INVALID


def test_bearer_tokens_are_told_apart_by_their_prefix():
    assert api_keys.looks_like_api_key(api_keys.generate_secret())
    assert not api_keys.looks_like_api_key("eyJhbGciOiJIUzI1NiJ9.e30.sig")


ORG = uuid.uuid4()


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (Principal(uuid.uuid4(), ORG, "admin"), set(ALL_CAPABILITIES)),
        (Principal(uuid.uuid4(), ORG, "member"), {"ask", "read_documents", "write_documents", "read_usage"}),
        (Principal.for_api_key(uuid.uuid4(), ORG, "query"), {"ask", "read_usage"}),
        (
            Principal.for_api_key(uuid.uuid4(), ORG, "write"),
            {"ask", "read_documents", "write_documents", "manage_documents", "read_usage"},
        ),
        (Principal.for_api_key(uuid.uuid4(), ORG, "admin"), set(ALL_CAPABILITIES)),
    ],
)
def test_capabilities_of_each_caller(principal, allowed):
    for capability in ALL_CAPABILITIES:
        assert principal.can(capability) == (capability in allowed), capability
        if capability in allowed:
            principal.require(capability)
        else:
            with pytest.raises(Forbidden):
                principal.require(capability)
    assert principal.is_admin == (allowed == set(ALL_CAPABILITIES))


def test_an_unknown_scope_or_role_may_do_nothing():
    assert not Principal(uuid.uuid4(), ORG, None).capabilities  # type: ignore[arg-type]
    assert not Principal.for_api_key(uuid.uuid4(), ORG, "root").capabilities  # type: ignore[arg-type]


def test_log_lines_name_the_key_or_the_user():
    key_id = uuid.uuid4()
    assert Principal.for_api_key(key_id, ORG, "query").log_keys() == {
        "org_id": str(ORG),
        "auth": "api_key",
        "api_key_id": str(key_id),
    }
    user_id = uuid.uuid4()
    assert Principal(user_id, ORG, "member").log_keys() == {
        "org_id": str(ORG),
        "auth": "user",
        "user_id": str(user_id),
    }
