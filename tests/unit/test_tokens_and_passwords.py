import time
import uuid

import jwt
import pytest
from ragcore.auth import (
    Principal,
    hash_password,
    issue_token,
    principal_from_authorization,
    verify_password,
    verify_token,
)
from ragcore.config import Settings
from ragcore.errors import Unauthenticated

SECRET = "s" * 32


@pytest.fixture
def settings():
    return Settings(jwt_secret=SECRET, jwt_ttl_seconds=60)


@pytest.fixture
def principal():
    return Principal(user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="member")


def test_token_round_trip_carries_every_claim(settings, principal):
    token = issue_token(principal, settings)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=settings.jwt_audience)
    assert set(claims) == {"sub", "org_id", "role", "iss", "aud", "iat", "exp"}
    assert claims["exp"] - claims["iat"] == 60
    assert verify_token(token, settings) == principal


def test_expired_token_is_refused(settings, principal):
    token = issue_token(principal, settings, now=int(time.time()) - 3600)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(token, settings)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: {**c, "aud": "someone-else"},
        lambda c: {**c, "iss": "someone-else"},
        lambda c: {k: v for k, v in c.items() if k != "org_id"},
        lambda c: {**c, "role": "owner"},
        lambda c: {**c, "org_id": "not-a-uuid"},
    ],
)
def test_tokens_with_wrong_claims_are_refused(settings, principal, tamper):
    claims = jwt.decode(
        issue_token(principal, settings), SECRET, algorithms=["HS256"], audience=settings.jwt_audience
    )
    forged = jwt.encode(tamper(claims), SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        verify_token(forged, settings)


def test_token_signed_with_another_secret_or_algorithm_is_refused(settings, principal):
    claims = jwt.decode(
        issue_token(principal, settings), SECRET, algorithms=["HS256"], audience=settings.jwt_audience
    )
    with pytest.raises(Unauthenticated):
        verify_token(jwt.encode(claims, "x" * 32, algorithm="HS256"), settings)
    with pytest.raises(Unauthenticated):
        verify_token(jwt.encode(claims, None, algorithm="none"), settings)


def test_short_secret_refuses_to_sign(principal):
    with pytest.raises(ValueError, match="32 bytes"):
        issue_token(principal, Settings(jwt_secret="short"))


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer    ", "token abc"])
def test_malformed_authorization_headers(header):
    with pytest.raises(Unauthenticated):
        principal_from_authorization(header)


def test_password_hash_verifies_only_the_right_password():
    hashed = hash_password("correct horse battery", rounds=12)
    assert hashed.startswith("$2b$12$")
    assert verify_password("correct horse battery", hashed)
    assert not verify_password("correct horse batterY", hashed)
    assert not verify_password("anything", "not-a-bcrypt-hash")


def test_bcrypt_cost_below_12_is_rejected_by_settings():
    with pytest.raises(ValueError):
        Settings(password_bcrypt_rounds=10)
