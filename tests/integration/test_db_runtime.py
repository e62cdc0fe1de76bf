"""What a warm function meets at run time in AWS, reproduced on the embedded PostgreSQL through the real
handlers: connections closed under it (RDS Proxy drops clients idle for 30 minutes), a database password
rotated by Secrets Manager (moto's), and RDS Proxy's session pinning by server-side prepared statements."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from ragcore import db
from ragcore.config import reset_settings

ROTATING_ROLE = "rag_rotation_probe"


@contextmanager
def settings_env(**values: str | None):
    """The process's settings read from these environment values, with a fresh pool; restored after."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in values.items():
            if value is None:
                env.delenv(key, raising=False)
            else:
                env.setenv(key, value)
        db.close_pool()
        reset_settings()
        try:
            yield
        finally:
            db.close_pool()
    reset_settings()


def owner_execute(platform, statement: str) -> None:
    with psycopg.connect(platform.owner_url, autocommit=True) as conn:
        conn.execute(statement)


def app_backends(platform, role: str = "rag_app") -> list[int]:
    rows = platform.owner_query(
        "SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = current_database()", (role,)
    )
    return [pid for (pid,) in rows]


def terminate(platform, role: str = "rag_app") -> int:
    rows = platform.owner_query(
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE usename = %s AND datname = current_database()""",
        (role,),
    )
    return len(rows)


def test_a_request_after_the_server_closed_the_pools_connections_succeeds(platform):
    token = platform.register()["token"]
    assert platform.request("GET", "/api/v1/me", token=token).status == 200
    before = app_backends(platform)
    assert terminate(platform) >= 1  # what RDS Proxy does to a client idle for 30 minutes

    me = platform.request("GET", "/api/v1/me", token=token)

    assert me.status == 200, me.body
    assert set(app_backends(platform)).isdisjoint(before)


@pytest.mark.parametrize(("prepared", "expect_prepared"), [("false", False), ("true", True)])
def test_server_side_prepared_statements_follow_the_setting(platform, prepared, expect_prepared):
    token = platform.register()["token"]
    with settings_env(DB_PREPARED_STATEMENTS=prepared, DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1"):
        for _ in range(8):  # psycopg prepares a statement on its 5th execution by default
            assert platform.request("GET", "/api/v1/me", token=token).status == 200
        with db.get_pool().connection() as conn:  # the only connection: the one the requests used
            statements = conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    # With statements prepared on the server, RDS Proxy pins the session to one database connection.
    assert bool(statements) == expect_prepared, statements


@pytest.fixture
def rotating_role(platform):
    """A login role with the application role's rights that must give its password (SCRAM)."""
    hba_file = Path(platform.owner_query("SHOW hba_file")[0][0])
    original = hba_file.read_text()
    owner_execute(platform, f"CREATE ROLE {ROTATING_ROLE} LOGIN PASSWORD 'first-password' IN ROLE rag_app")
    hba_file.write_text(
        f"local all {ROTATING_ROLE} scram-sha-256\nhost all {ROTATING_ROLE} all scram-sha-256\n" + original
    )
    platform.owner_query("SELECT pg_reload_conf()")
    try:
        yield ROTATING_ROLE
    finally:
        hba_file.write_text(original)
        platform.owner_query("SELECT pg_reload_conf()")
        terminate(platform, ROTATING_ROLE)
        owner_execute(platform, f"DROP ROLE {ROTATING_ROLE}")


def test_a_warm_pool_follows_a_password_rotation(platform, rotating_role):
    token = platform.register()["token"]
    server = conninfo_to_dict(platform.owner_url)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(
        Name=f"rag-app-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": rotating_role, "password": "first-password"}),
    )["ARN"]
    with settings_env(
        DATABASE_URL=None,
        DB_SECRET_ARN=arn,
        DB_HOST=server["host"],
        DB_PORT=str(server.get("port") or 5432),
        DB_NAME=server["dbname"],
        DB_SSLMODE="disable",
    ):
        assert platform.request("GET", "/api/v1/me", token=token).status == 200
        assert app_backends(platform, rotating_role)  # the pool is warm, logged in as the probe role

        # Rotation: the password changes in the database and the secret's current version follows.
        owner_execute(platform, f"ALTER ROLE {rotating_role} PASSWORD 'second-password'")
        secrets.put_secret_value(
            SecretId=arn, SecretString=json.dumps({"username": rotating_role, "password": "second-password"})
        )
        terminate(platform, rotating_role)  # the warm connections go; new ones need the new password
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(db.get_pool().conninfo).close()  # what the pool was built with is stale

        me = platform.request("GET", "/api/v1/me", token=token)

        assert me.status == 200, me.body
        assert app_backends(platform, rotating_role)


def test_rotation_in_progress_uses_the_pending_password(platform, rotating_role):
    """Single-user rotation sets the new password before it promotes the new version: in between, only
    AWSPENDING works."""
    token = platform.register()["token"]
    server = conninfo_to_dict(platform.owner_url)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(
        Name=f"rag-app-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": rotating_role, "password": "first-password"}),
    )["ARN"]
    with settings_env(
        DATABASE_URL=None,
        DB_SECRET_ARN=arn,
        DB_HOST=server["host"],
        DB_PORT=str(server.get("port") or 5432),
        DB_NAME=server["dbname"],
        DB_SSLMODE="disable",
    ):
        assert platform.request("GET", "/api/v1/me", token=token).status == 200
        secrets.put_secret_value(
            SecretId=arn,
            SecretString=json.dumps({"username": rotating_role, "password": "pending-password"}),
            VersionStages=["AWSPENDING"],
        )
        owner_execute(platform, f"ALTER ROLE {rotating_role} PASSWORD 'pending-password'")
        terminate(platform, rotating_role)

        assert platform.request("GET", "/api/v1/me", token=token).status == 200
