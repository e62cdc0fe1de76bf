"""Tenant isolation is enforced by the database itself, not only by the queries."""

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.integration.test_documents import upload

TENANT_TABLES = [
    "organizations",
    "users",
    "documents",
    "document_chunks",
    "api_keys",
    "org_usage",
    "org_usage_days",
    "org_quotas",
]
# Tables that hold no tenant's data and that the application role cannot read at all.
NON_TENANT_TABLES = {
    "schema_migrations": "the migration ledger",
    "auth_throttle": "sign-in/registration counts, keyed before any tenant is known; SECURITY DEFINER only",
}


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


def _tables(conn) -> dict[str, dict]:
    """Every table of the public schema, with its RLS flags, whether it has an org_id column, whether a
    policy compares with the current tenant, and whether the application role may read it."""
    rows = conn.execute(
        """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  EXISTS (SELECT FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped),
                  EXISTS (SELECT FROM pg_policy p
                          WHERE p.polrelid = c.oid
                            AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app_current_org()%'
                            AND (0 = ANY (p.polroles)
                                 OR (SELECT oid FROM pg_roles WHERE rolname = 'rag_app') = ANY (p.polroles))),
                  has_table_privilege('rag_app', c.oid, 'SELECT'),
                  -- a policy open to the application role that does not restrict to the current tenant
                  -- (policies are OR-ed: one such policy undoes the tenant policy)
                  EXISTS (SELECT FROM pg_policy p
                          WHERE p.polrelid = c.oid
                            AND (0 = ANY (p.polroles)
                                 OR (SELECT oid FROM pg_roles WHERE rolname = 'rag_app') = ANY (p.polroles))
                            AND p.polpermissive
                            AND (coalesce(pg_get_expr(p.polqual, p.polrelid), '')
                                    NOT LIKE '%app_current_org()%'
                                 OR coalesce(pg_get_expr(p.polwithcheck, p.polrelid), 'app_current_org()')
                                    NOT LIKE '%app_current_org()%'))
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"""
    ).fetchall()
    return {
        name: {
            "rls": rls,
            "forced": forced,
            "org_id": org_id,
            "tenant_policy": policy,
            "app_reads": reads,
            "open_policy": open_policy,
        }
        for name, rls, forced, org_id, policy, reads, open_policy in rows
    }


def isolation_violations(conn) -> dict[str, str]:
    """Tables breaking the rule: a tenant table (one with an org_id column, or the organisations) must
    have RLS enabled and forced and a policy on the current tenant; any other table must be a known
    non-tenant table the application role cannot read."""
    problems = {}
    for name, t in _tables(conn).items():
        if t["org_id"] or name == "organizations":
            if not (t["rls"] and t["forced"] and t["tenant_policy"]):
                problems[name] = "tenant table without forced row-level security on the current tenant"
            elif t["open_policy"]:
                problems[name] = "a policy lets the application role past the tenant predicate"
        elif name not in NON_TENANT_TABLES:
            problems[name] = "unknown table: tenant data needs an org_id column and RLS"
        elif t["app_reads"]:
            problems[name] = "the application role can read this non-tenant table"
    return problems


def test_catalog_every_table_with_tenant_data_is_under_forced_rls(platform):
    """Today's tables and any later migration's: the whole catalog is checked, not a list."""
    with psycopg.connect(platform.owner_url) as conn:
        tables = _tables(conn)
        assert {t for t in TENANT_TABLES if tables[t]["org_id"] or t == "organizations"} == set(TENANT_TABLES)
        assert isolation_violations(conn) == {}


def test_catalog_test_notices_a_new_tenant_table_without_rls(platform):
    """The check is not vacuous: a new table with org_id and no RLS, or a forgotten FORCE, is reported."""
    with psycopg.connect(platform.owner_url) as conn:
        try:
            conn.execute("CREATE TABLE rls_probe (org_id uuid, note text)")
            assert "rls_probe" in isolation_violations(conn)
            conn.execute("ALTER TABLE rls_probe ENABLE ROW LEVEL SECURITY")
            conn.execute("CREATE POLICY tenant_isolation ON rls_probe USING (org_id = app_current_org())")
            assert "rls_probe" in isolation_violations(conn)  # enabled but not forced
            conn.execute("ALTER TABLE rls_probe FORCE ROW LEVEL SECURITY")
            assert "rls_probe" not in isolation_violations(conn)
            conn.execute("CREATE POLICY everything ON rls_probe FOR SELECT USING (true)")
            assert "rls_probe" in isolation_violations(conn)  # OR-ed with the tenant policy: no isolation
        finally:
            conn.rollback()


def test_app_role_is_no_superuser_cannot_bypass_rls_and_owns_no_object(platform):
    role = platform.owner_query(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'rag_app'"
    )
    assert role == [(False, False, False, False)]
    owned = platform.owner_query(
        """SELECT (SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                   WHERE r.rolname = 'rag_app')
                + (SELECT count(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
                   WHERE r.rolname = 'rag_app')"""
    )
    assert owned == [(0,)]


@pytest.fixture
def one_connection_pool(platform, monkeypatch):
    """ragcore's pool with a single connection, so consecutive transactions reuse the same one."""
    from psycopg_pool import ConnectionPool
    from ragcore import db
    from ragcore.config import get_settings

    pool = ConnectionPool(
        get_settings().database_url, min_size=1, max_size=1, configure=db._configure, open=True
    )
    monkeypatch.setattr(db, "_pool", pool)
    yield pool
    pool.close()


def test_a_pooled_connection_that_served_a_tenant_shows_nothing_without_one(platform, one_connection_pool):
    from ragcore.db import anonymous_transaction, tenant_transaction

    org = platform.register()
    upload(platform, org["token"])
    platform.ingest_all()
    with tenant_transaction(org["org"]["id"]) as conn:
        backend = conn.info.backend_pid
        assert conn.execute("SELECT count(*) AS n FROM documents").fetchone()["n"] == 1
    with anonymous_transaction() as conn:
        assert conn.info.backend_pid == backend  # the very connection that just served the tenant
        assert conn.execute("SELECT current_setting('app.org_id', true) AS v").fetchone()["v"] in ("", None)
        for table in _catalog_tenant_tables(platform):
            assert conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0, table


def _catalog_tenant_tables(platform) -> list[str]:
    """Every tenant table the catalog knows (the organisations, and each table with an org_id column),
    so that a later migration's tables are covered without editing this list."""
    with psycopg.connect(platform.owner_url) as conn:
        tables = [name for name, t in _tables(conn).items() if t["org_id"] or name == "organizations"]
    assert set(TENANT_TABLES) <= set(tables), tables
    return sorted(tables)


def test_a_tenant_that_cannot_be_set_aborts_the_request_before_any_query(platform, one_connection_pool):
    from ragcore.db import anonymous_transaction, tenant_transaction

    org = platform.register()
    upload(platform, org["token"])
    ran = []
    # The driver refuses the value (NUL): set_config never runs, nor does the body.
    with pytest.raises(psycopg.DataError), tenant_transaction("\x00" + org["org"]["id"]):
        ran.append("body")
    assert ran == []
    # A value that is set but is no tenant id: the first query fails instead of seeing any rows.
    with pytest.raises(psycopg.errors.InvalidTextRepresentation), tenant_transaction("not-a-tenant") as conn:
        conn.execute("SELECT count(*) FROM documents").fetchone()
    with anonymous_transaction() as conn:
        assert conn.execute("SELECT count(*) AS n FROM documents").fetchone()["n"] == 0
