"""Rotating the JWT signing key in Secrets Manager (moto's, in-process) signs nobody out: tokens issued
before the rotation keep working for their lifetime, tokens from processes that already read the new key
verify in processes that have not, and the old key stops working when its window closes."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest
from moto import mock_aws
from ragcore.auth import Principal, issue_token, verify_token
from ragcore.config import Settings
from ragcore.errors import Unauthenticated
from ragcore.secrets import MISMATCH_REFRESH_SECONDS, JwtKeyRing, SecretsManagerStore

OLD, NEW = "o" * 64, "n" * 64
TTL, REFRESH = 3600, 300
PRINCIPAL = Principal(user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="member")


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(SecretsManagerStore):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def read(self, arn, stage="AWSCURRENT"):
        self.reads += 1
        return super().read(arn, stage)


@pytest.fixture
def secret(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = client.create_secret(Name=f"rag/test/jwt-{uuid.uuid4().hex[:8]}", SecretString=OLD)["ARN"]
        yield client, arn


def rotate(client, arn) -> float:
    """What `aws secretsmanager put-secret-value` does: the new version becomes AWSCURRENT and the one
    it replaces AWSPREVIOUS. Returns when the new version was created."""
    version = client.put_secret_value(SecretId=arn, SecretString=NEW)["VersionId"]
    return client.get_secret_value(SecretId=arn, VersionId=version)["CreatedDate"].timestamp()


def ring(arn, clock, store=None) -> tuple[Settings, JwtKeyRing]:
    settings = Settings(jwt_secret_arn=arn, jwt_ttl_seconds=TTL, jwt_secret_refresh_seconds=REFRESH)
    return settings, JwtKeyRing(settings, store or SecretsManagerStore(), clock=clock)


def test_tokens_issued_before_a_rotation_still_verify_and_new_ones_use_the_new_key(secret):
    client, arn = secret
    settings, before = ring(arn, Clock(time.time()))
    old_token = issue_token(PRINCIPAL, settings, keys=before)

    rotate(client, arn)
    settings, after = ring(arn, Clock(time.time()))  # a process started after the rotation

    assert verify_token(old_token, settings, keys=after) == PRINCIPAL
    new_token = issue_token(PRINCIPAL, settings, keys=after)
    assert verify_token(new_token, Settings(jwt_secret=NEW)) == PRINCIPAL
    with pytest.raises(Unauthenticated):
        verify_token(new_token, Settings(jwt_secret=OLD))


def test_a_warm_process_verifies_tokens_signed_with_a_key_it_has_not_read_yet(secret):
    client, arn = secret
    clock = Clock(time.time())
    settings, warm = ring(arn, clock)
    warm.keys()  # read before the rotation
    rotate(client, arn)
    _, cold = ring(arn, Clock(time.time()))
    token = issue_token(PRINCIPAL, settings, keys=cold)

    clock.now += MISMATCH_REFRESH_SECONDS
    assert verify_token(token, settings, keys=warm) == PRINCIPAL
    # and from now on the warm process signs with the new key too
    assert warm.keys().current == NEW.encode()


def test_a_warm_signer_picks_up_the_new_key_after_the_refresh_interval(secret):
    client, arn = secret
    clock = Clock(time.time())
    read_at = clock.now
    _, warm = ring(arn, clock)
    warm.keys()
    rotate(client, arn)
    clock.now = read_at + REFRESH - 1
    assert warm.keys().current == OLD.encode()  # within the interval its copy stands
    clock.now = read_at + REFRESH
    assert warm.keys().current == NEW.encode()
    assert warm.keys().previous == OLD.encode()


def test_the_previous_key_verifies_only_inside_its_window():
    """Keys given as values (as a local run would), so that the rotation can lie in the past."""
    rotated_at = int(time.time()) - REFRESH - 10
    settings = Settings(
        jwt_secret=NEW,
        jwt_previous_secret=OLD,
        jwt_secret_rotated_at=rotated_at,
        jwt_ttl_seconds=TTL,
        jwt_secret_refresh_seconds=REFRESH,
    )
    old = Settings(jwt_secret=OLD, jwt_ttl_seconds=10 * TTL)  # a holder of the old key mints long tokens

    issued_in_window = issue_token(PRINCIPAL, old, now=rotated_at + REFRESH)
    assert verify_token(issued_in_window, settings) == PRINCIPAL
    assert verify_token(issued_in_window, settings, now=rotated_at + REFRESH + TTL) == PRINCIPAL
    with pytest.raises(Unauthenticated, match="invalid token"):
        verify_token(issued_in_window, settings, now=rotated_at + REFRESH + TTL + 1)
    issued_after_every_process_had_the_new_key = issue_token(PRINCIPAL, old, now=rotated_at + REFRESH + 1)
    with pytest.raises(Unauthenticated, match="invalid token"):
        verify_token(issued_after_every_process_had_the_new_key, settings)


def test_forged_tokens_cannot_flood_secrets_manager(secret):
    _, arn = secret
    clock = Clock(time.time())
    store = CountingStore()
    settings, keys = ring(arn, clock, store)
    forged = issue_token(PRINCIPAL, Settings(jwt_secret="f" * 64), now=int(clock.now))
    keys.keys()
    reads = store.reads
    for _ in range(50):
        with pytest.raises(Unauthenticated):
            verify_token(forged, settings, now=clock.now, keys=keys)
    assert store.reads == reads  # the keys were read less than MISMATCH_REFRESH_SECONDS ago
    clock.now += MISMATCH_REFRESH_SECONDS
    for _ in range(50):
        with pytest.raises(Unauthenticated):
            verify_token(forged, settings, now=clock.now, keys=keys)
    assert store.reads == reads + 2  # one re-read (current + previous) for the whole burst
