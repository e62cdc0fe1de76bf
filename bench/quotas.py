"""What the quota checks cost a request, and how they behave when one organisation's requests contend.

Usage: .venv/bin/python bench/quotas.py [--calls 2000] [--threads 8] [--per-thread 300]

On a fresh local stack, in-process through ragcore (the rows, locks and RLS are the real ones). Printed,
p50/p95 in milliseconds, each against the baseline of the same run: a tenant transaction running
``SELECT 1`` (the least any database step of a request costs), and beside it one that updates the
organisation's row without any condition (what a commit that writes costs):
- ``quotas.count_query``: the conditional UPDATE every question makes before retrieval;
- ``quotas.reserve_document``: the conditional UPDATE of a document's creation (on its own transaction);
and the throughput of ``count_query`` from ``--threads`` threads, all for one organisation (one row:
its lock serialises them) against each thread for its own organisation.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line  # noqa: E402
from bench._stack import percentile, register, running_stack  # noqa: E402


def _ms(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def _row(name: str, values: list[float], baseline: list[float]) -> str:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    return f"| {name} | {p50:.3f} | {p95:.3f} | {p50 / percentile(baseline, 50):.2f}x |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="in-process calls per operation")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--per-thread", type=int, default=300, help="count_query calls per thread")
    args = parser.parse_args()

    with running_stack() as api:
        from ragcore import quotas
        from ragcore.config import reset_settings
        from ragcore.db import tenant_transaction
        from ragcore.principal import Principal

        reset_settings()

        def principal_of(registered: dict) -> Principal:
            return Principal(uuid.UUID(registered["user"]["id"]), uuid.UUID(registered["org"]["id"]), "admin")

        me = principal_of(register(api))

        def baseline() -> None:
            with tenant_transaction(me.org_id) as conn:
                conn.execute("SELECT 1")

        def plain_write() -> None:
            with tenant_transaction(me.org_id) as conn:
                conn.execute("UPDATE org_usage SET updated_at = now() WHERE org_id = %s", (me.org_id,))

        for _ in range(100):  # warm the pool
            baseline()
            quotas.count_query(me)
        base, written, counted, reserved = [], [], [], []
        for _ in range(args.calls):  # taking turns, so they share the machine's noise
            base.append(_ms(baseline))
            written.append(_ms(plain_write))
            counted.append(_ms(quotas.count_query, me, 12))
            reserved.append(_ms(quotas.reserve_document, me, 1000))

        others = [principal_of(register(api)) for _ in range(args.threads)]

        def hammer(principals: list[Principal]) -> float:
            def run(principal: Principal) -> None:
                for _ in range(args.per_thread):
                    quotas.count_query(principal)

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(principals)) as pool:
                list(pool.map(run, principals))
            return len(principals) * args.per_thread / (time.perf_counter() - started)

        one_org = hammer([me] * args.threads)
        own_orgs = hammer(others)
        one_org_again = hammer([me] * args.threads)

    print(f"## Quota checks ({datetime.date.today().isoformat()}, {machine_line()})\n")
    print("| operation | p50 ms | p95 ms | p50 vs baseline |")
    print("|---|---|---|---|")
    print(_row("tenant transaction with SELECT 1 (baseline)", base, base))
    print(_row("tenant transaction updating one row, no condition (a commit that writes)", written, base))
    print(_row("quotas.count_query (before every question)", counted, base))
    print(_row("quotas.reserve_document (own transaction)", reserved, base))
    print()
    print(f"count_query throughput, {args.threads} threads x {args.per_thread} calls:")
    print(f"- every thread its own organisation (baseline): {own_orgs:.0f}/s")
    print(
        f"- all threads one organisation: {one_org:.0f}/s and {one_org_again:.0f}/s "
        f"({min(one_org, one_org_again) / own_orgs:.2f}x-{max(one_org, one_org_again) / own_orgs:.2f}x)"
    )


if __name__ == "__main__":
    main()
