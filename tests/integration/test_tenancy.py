"""Tenant isolation is enforced by the database itself, not only by the queries."""

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.integration.test_documents import upload

TENANT_TABLES = ["organizations", "users", "documents", "document_chunks"]


@pytest.fixture
def app_conn(platform):
    url = make_conninfo(**{**conninfo_to_dict(platform.owner_url), "user": "rag_app"})
    with psycopg.connect(url) as conn:
        yield conn


def test_every_tenant_table_has_forced_rls(platform):
    rows = dict(
        (r[0], r[1:])
        for r in platform.owner_query(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
            (TENANT_TABLES,),
        )
    )
    assert rows == {t: (True, True) for t in TENANT_TABLES}


def test_app_role_owns_nothing_and_cannot_bypass_rls(platform):
    role = platform.owner_query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'rag_app'")
    assert role == [(False, False)]
    owned = platform.owner_query(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'rag_app'"
    )
    assert owned == [(0,)]


def test_without_a_tenant_nothing_is_visible(platform, app_conn):
    org = platform.register()
    upload(platform, org["token"])
    platform.ingest_all()
    for table in TENANT_TABLES:
        assert app_conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_a_tenant_sees_only_its_rows_even_without_where(platform, app_conn):
    first, second = platform.register(), platform.register()
    upload(platform, first["token"])
    platform.ingest_all()
    app_conn.execute("SELECT set_config('app.org_id', %s, true)", (second["org"]["id"],))
    assert app_conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    assert app_conn.execute("SELECT count(*) FROM document_chunks").fetchone()[0] == 0
    assert [r[0] for r in app_conn.execute("SELECT id::text FROM organizations")] == [second["org"]["id"]]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute(
            "INSERT INTO documents (id, org_id, name, content, content_hash) "
            "VALUES (gen_random_uuid(), %s, 'x', 'y', 'z')",
            (first["org"]["id"],),
        )


def test_tenant_setting_does_not_outlive_its_transaction(platform, app_conn):
    org = platform.register()
    upload(platform, org["token"])
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('app.org_id', %s, true)", (org["org"]["id"],))
        assert app_conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 1
    assert app_conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
