"""Applies ``migrations/*.sql`` in order, each exactly once, recorded in ``schema_migrations``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from .config import get_settings

# A single advisory lock key shared by every migrator, so concurrent deploys apply migrations serially.
_LOCK_KEY = 0x52414731
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(RuntimeError):
    """A migration failed or an applied migration file changed after it was applied."""


def default_migrations_dir() -> Path:
    """``migrations/`` at the repository root, or next to the package when shipped in a Lambda asset."""
    here = Path(__file__).resolve()
    candidates = [
        here.parent / "migrations",
        *(p / "migrations" for p in here.parents),
        Path.cwd() / "migrations",
    ]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.sql")):
            return candidate
    raise MigrationError("no migrations directory found")


def discover(migrations_dir: Path) -> list[Migration]:
    """The migration files, ordered by their numeric prefix."""
    files = sorted(migrations_dir.glob("*.sql"), key=lambda p: p.name)
    return [Migration(version=p.stem, path=p) for p in files]


def render(text: str, app_role: str) -> str:
    """Fill the role placeholder; the name is validated because it is spliced into DDL."""
    if not _ROLE_NAME.match(app_role):
        raise MigrationError(f"invalid application role name: {app_role!r}")
    return text.replace("{{app_role}}", app_role)


def apply_migrations(
    owner_url: str | None = None,
    migrations_dir: Path | None = None,
    app_role: str | None = None,
    app_role_password: str | None = None,
) -> list[str]:
    """Apply pending migrations as the schema owner; returns the versions applied by this call."""
    settings = get_settings()
    owner_url = owner_url or settings.migration_database_url
    if not owner_url:
        raise MigrationError("MIGRATION_DATABASE_URL is not configured")
    app_role = app_role or settings.db_app_role
    app_role_password = app_role_password or settings.app_role_password.get_secret_value() or None
    if migrations_dir is None:
        migrations_dir = (
            Path(settings.migrations_dir) if settings.migrations_dir else default_migrations_dir()
        )
    migrations = discover(migrations_dir)
    applied_now: list[str] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                statement = render(migration.path.read_text(), app_role)
                try:
                    with conn.transaction():
                        conn.execute(statement)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                            (migration.version, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {migration.version} failed: {exc}") from exc
                applied_now.append(migration.version)
            if app_role_password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                        sql.Identifier(app_role), sql.Literal(app_role_password)
                    )
                )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
