"""What the run-time safeguards of ragcore.db cost per request, on the embedded PostgreSQL.

Each request-serving function checks out a connection, sets the tenant and runs a few short queries. Three
pools run the same work, interleaved round by round so that machine noise hits them alike:

* ``platform``: ragcore.db.create_pool (liveness check on checkout, no server-side prepared statements);
* ``no check``: the same without the liveness check (the baseline for the check's cost);
* ``prepared``: no check, psycopg's default server-side preparation after 5 executions (the baseline for
  what turning preparation off costs).

Usage: python bench/db_runtime.py [--rounds 40] [--per-round 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

import pgserver
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool
from ragcore import db
from ragcore.config import Settings
from ragcore.migrations import apply_migrations

# What principal_from_authorization and auth.me run for GET /me: the caller's role, then user and org.
WORK = (
    "SELECT role FROM users WHERE org_id = %s AND id = %s",
    "SELECT id, org_id, email, role, created_at FROM users WHERE org_id = %s AND id = %s",
)


def one_request(pool: ConnectionPool, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT set_config('app.org_id', %s, true)", (str(org_id),))
        for statement in WORK:
            conn.execute(statement, (org_id, user_id)).fetchone()
        conn.execute("SELECT id, name, created_at FROM organizations WHERE id = %s", (org_id,)).fetchone()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as pgdata:
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE rag")
        owner_url = server.get_uri("rag")
        apply_migrations(owner_url, app_role="rag_app")
        app_url = make_conninfo(**{**conninfo_to_dict(owner_url), "user": "rag_app"})
        org_id, user_id = uuid.uuid4(), uuid.uuid4()
        with psycopg.connect(app_url) as conn, conn.transaction():
            conn.execute("SELECT set_config('app.org_id', %s, true)", (str(org_id),))
            conn.execute("INSERT INTO organizations (id, name) VALUES (%s, 'bench')", (org_id,))
            conn.execute(
                """INSERT INTO users (id, org_id, email, password_hash, role)
                   VALUES (%s, %s, %s, 'x', 'admin')""",
                (user_id, org_id, "bench@example.com"),
            )

        settings = Settings(database_url=app_url, db_pool_min_size=1, db_pool_max_size=1)
        pools = {
            "platform": db.create_pool(settings),
            "no check": ConnectionPool(app_url, min_size=1, max_size=1, kwargs={"prepare_threshold": None}),
            "prepared": ConnectionPool(app_url, min_size=1, max_size=1),
        }
        timings: dict[str, list[float]] = {name: [] for name in pools}
        for pool in pools.values():
            pool.wait()
            for _ in range(20):  # warm up (and let the default pool prepare its statements)
                one_request(pool, org_id, user_id)
        names = list(pools)
        for round_ in range(args.rounds):
            # a different pool goes first each round, so no pool always follows the same one
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                pool = pools[name]
                for _ in range(args.per_round):
                    started = time.perf_counter()
                    one_request(pool, org_id, user_id)
                    timings[name].append((time.perf_counter() - started) * 1e6)
        for pool in pools.values():
            pool.close()

    print(f"{args.rounds * args.per_round} requests per pool (checkout, tenant, 3 queries, commit)")
    print("| pool | p50 us | p95 us | mean us |")
    print("|---|---|---|---|")
    for name, values in timings.items():
        p50, p95, mean = percentile(values, 0.5), percentile(values, 0.95), statistics.fmean(values)
        print(f"| {name} | {p50:.0f} | {p95:.0f} | {mean:.0f} |")
    p50 = {name: statistics.median(values) for name, values in timings.items()}
    print(f"liveness check: platform / no check at p50 = {p50['platform'] / p50['no check']:.2f}x")
    print(f"no preparation: no check / prepared at p50 = {p50['no check'] / p50['prepared']:.2f}x")


if __name__ == "__main__":
    main()
