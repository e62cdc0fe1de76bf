"""Tokens as RFC 8725 (JSON Web Token Best Current Practices) asks, through the real handlers: only HS256
signed with the platform's key, every claim present and right, time claims within a small leeway; and
sign-in that tells an unknown e-mail from a wrong password by nothing, its timing included."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
from ragcore.config import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
ROUTES = (("GET", "/api/v1/me"), ("GET", "/api/v1/documents"), ("POST", "/api/v1/query/sync"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(platform) -> tuple[dict, str]:
    """The claims of a fresh admin's valid token, and the key that signs them."""
    registered = platform.register()
    settings = get_settings()
    key = settings.jwt_secret.get_secret_value()
    claims = jwt.decode(registered["token"], key, algorithms=["HS256"], audience=settings.jwt_audience)
    return claims, key


def _status(platform, token: str) -> set[int]:
    return {
        platform.request(method, path, {"question": "why?"} if method == "POST" else None, token=token).status
        for method, path in ROUTES
    }


def _forge(claims: dict, key: str, header: dict | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=header)


def _unsigned(claims: dict, alg: str = "none") -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(claims).encode())}."


@pytest.fixture
def valid(platform):
    claims, key = _claims(platform)
    assert _status(platform, _forge(claims, key)) == {200}  # the baseline every forgery departs from
    return claims, key


def test_alg_none_in_any_spelling_is_401(platform, valid):
    claims, _ = valid
    for alg in ("none", "None", "NONE", "nOnE"):
        assert _status(platform, _unsigned(claims, alg)) == {401}, alg


def test_stripped_or_tampered_signature_is_401(platform, valid):
    claims, key = valid
    token = _forge(claims, key)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_org = _b64(json.dumps({**claims, "org_id": str(uuid.uuid4())}).encode())
    for forged in (
        f"{head}.{payload}.",  # signature stripped
        f"{head}.{payload}",  # and its separator
        f"{head}.{payload}.{flipped}",  # one character of the signature changed
        f"{head}.{other_org}.{signature}",  # the payload changed under the old signature
        f"{head}.{payload}.{signature}{signature}",
    ):
        assert _status(platform, forged) == {401}, forged


def test_another_algorithm_or_key_is_401(platform, valid):
    claims, key = valid
    for algorithm in ("HS384", "HS512"):
        assert _status(platform, _forge(claims, key, algorithm=algorithm)) == {401}, algorithm
    # An HMAC made with the right key under a header naming another algorithm (key confusion).
    for alg in ("RS256", "ES256", "PS256"):
        head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        signing_input = f"{head}.{_b64(json.dumps(claims).encode())}"
        mac = _b64(hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest())
        assert _status(platform, f"{signing_input}.{mac}") == {401}, alg
    assert _status(platform, _forge(claims, "k" * 32 + "x")) == {401}


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "org_id", "role"])
def test_a_missing_claim_is_401(platform, valid, claim):
    claims, key = valid
    assert _status(platform, _forge({k: v for k, v in claims.items() if k != claim}, key)) == {401}


@pytest.mark.parametrize(
    "claim, value",
    [
        ("iss", "someone-else"),
        ("iss", ""),
        ("aud", "another-api"),
        ("aud", ["another-api"]),
        ("sub", "not-a-uuid"),
        ("sub", str(uuid.uuid4())),  # well formed, but no such user
        ("exp", "tomorrow"),
        ("iat", "yesterday"),
        ("role", "owner"),
    ],
)
def test_a_wrong_claim_is_401(platform, valid, claim, value):
    claims, key = valid
    assert _status(platform, _forge({**claims, claim: value}, key)) == {401}


def test_time_claims_allow_a_small_leeway_and_no_more(platform, valid):
    claims, key = valid
    leeway = get_settings().jwt_leeway_seconds
    assert 0 < leeway <= 60
    now = int(time.time())
    # Clock skew between the environment that issued and the one that checks: accepted.
    assert _status(platform, _forge({**claims, "iat": now + 5}, key)) == {200}
    assert _status(platform, _forge({**claims, "exp": now - 5}, key)) == {200}
    # Beyond the leeway: expired, or issued in the future.
    assert _status(platform, _forge({**claims, "exp": now - leeway - 5}, key)) == {401}
    assert _status(platform, _forge({**claims, "iat": now + leeway + 60}, key)) == {401}
    expired = platform.request("GET", "/api/v1/me", token=_forge({**claims, "exp": now - 3600}, key))
    assert expired.status == 401 and expired.body["error"]["message"] == "token expired"


def test_a_secret_shorter_than_32_bytes_is_refused_by_the_settings():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(jwt_secret="s" * 31)
    assert Settings(jwt_secret="s" * 32).jwt_secret.get_secret_value() == "s" * 32
    assert Settings(jwt_secret="").jwt_secret.get_secret_value() == ""  # read from jwt_secret_arn


def test_a_secret_shorter_than_32_bytes_stops_the_local_stack_before_it_starts(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "JWT_SECRET": "too-short", "DATA_DIR": str(tmp_path), "PORT": "0"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "infra.local"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "JWT_SECRET must be at least 32 bytes" in result.stderr + result.stdout
    assert not (tmp_path / "pgdata").exists()  # nothing was started
    assert time.monotonic() - started < 30


def test_unknown_email_and_wrong_password_differ_in_nothing_not_even_time(platform):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    platform.register(email=email, password="right-password")
    wrong, unknown = [], []
    # Four of each, interleaved: under the per-account limit (5), each from its own address.
    for _ in range(4):
        started = time.perf_counter()
        a = platform.request("POST", "/api/v1/auth/login", {"email": email, "password": "wrong-password"})
        wrong.append(time.perf_counter() - started)
        started = time.perf_counter()
        b = platform.request(
            "POST", "/api/v1/auth/login", {"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "x"}
        )
        unknown.append(time.perf_counter() - started)
        assert a.status == b.status == 401
        assert a.body == b.body
        assert a.headers.get("Content-Type") == b.headers.get("Content-Type")
    # Both run one bcrypt verification: the medians agree within a factor of three, loose enough for a
    # shared machine (skipping the hash for an unknown e-mail would make it a hundred times faster).
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 1 / 3 < ratio < 3, (wrong, unknown)
