import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from ragcore.migrations import MigrationError, apply_migrations, default_migrations_dir


@pytest.fixture
def empty_database(platform):
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = make_conninfo(**{**conninfo_to_dict(platform.owner_url), "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(**{**conninfo_to_dict(platform.owner_url), "dbname": name})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_migrations_apply_once_in_order(empty_database):
    versions = [p.stem for p in sorted(default_migrations_dir().glob("*.sql"))]
    assert apply_migrations(empty_database) == versions
    assert apply_migrations(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == versions


def test_an_edited_migration_is_refused(empty_database, tmp_path):
    for source in default_migrations_dir().glob("*.sql"):
        (tmp_path / source.name).write_text(source.read_text())
    apply_migrations(empty_database, migrations_dir=tmp_path)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(empty_database, migrations_dir=tmp_path)


def test_a_failing_migration_leaves_no_trace(empty_database, tmp_path):
    for source in default_migrations_dir().glob("*.sql"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "9999_broken.sql").write_text("CREATE TABLE half_done (id int); SELECT no_such_function();")
    with pytest.raises(MigrationError, match="9999_broken"):
        apply_migrations(empty_database, migrations_dir=tmp_path)
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert (
            conn.execute("SELECT count(*) FROM schema_migrations WHERE version = '9999_broken'").fetchone()[0]
            == 0
        )


def test_the_quota_migration_counts_what_organisations_already_hold(empty_database, tmp_path):
    earlier = [p for p in default_migrations_dir().glob("*.sql") if p.name < "0009"]
    for path in earlier:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    apply_migrations(empty_database, migrations_dir=tmp_path)
    org, empty = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(empty_database) as conn:
        conn.execute("INSERT INTO organizations (id, name) VALUES (%s, 'a'), (%s, 'b')", (org, empty))
        for content, chunks in (("héllo", 3), ("world!", 2)):
            conn.execute(
                """INSERT INTO documents (id, org_id, name, content, content_hash, chunk_count)
                   VALUES (%s, %s, 'd', %s, 'h', %s)""",
                (uuid.uuid4(), org, content, chunks),
            )
    assert "0009_quotas_and_usage" in apply_migrations(empty_database)
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute("SELECT org_id, documents, chunks, stored_bytes FROM org_usage").fetchall()
        sizes = conn.execute("SELECT quota_bytes FROM documents ORDER BY quota_bytes").fetchall()
    # The organisation without documents gets its row on first use.
    assert rows == [(org, 2, 5, len("héllo".encode()) + len(b"world!"))]
    assert sizes == [(6,), (6,)]
