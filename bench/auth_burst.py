"""A burst of clients registering and signing in at once on the local stack, and what throttling costs.

Prints the status of every request (no 504 may appear for work that completed: the gateway counts its
timeout from the handler's start and throttles with 429 after a short wait for an environment), latency
percentiles, and the database round trip a throttle check adds to a sign-in against the bcrypt check
every sign-in pays anyway (the baseline).

    .venv/bin/python bench/auth_burst.py --clients 20
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import running_stack  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _code(response: requests.Response) -> str:
    """The error code of an error answer (too_many_requests: the gateway; rate_limited: the throttle)."""
    if response.status_code < 400:
        return "ok"
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "no error body"


def _client(api: str) -> list[tuple[str, int, float, bool]]:
    """Register then sign in; (step, status, seconds, saved) for each request."""
    email = f"burst-{uuid.uuid4().hex[:10]}@example.com"
    password = "burst-password-1"
    steps = []
    started = time.monotonic()
    response = requests.post(
        f"{api}/auth/register",
        json={"org_name": "Burst", "email": email, "password": password},
        timeout=60,
    )
    steps.append((f"register {_code(response)}", response.status_code, time.monotonic() - started))
    started = time.monotonic()
    login = requests.post(f"{api}/auth/login", json={"email": email, "password": password}, timeout=60)
    steps.append((f"login {_code(login)}", login.status_code, time.monotonic() - started))
    # Was the registration saved, whatever its answer? (A 504 for a saved registration is the bug.)
    saved = login.status_code == 200
    return [(step, status, seconds, saved) for step, status, seconds in steps]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--throttle-calls", type=int, default=200)
    parser.add_argument("--timing-logins", type=int, default=20)
    args = parser.parse_args()
    # Every client comes from 127.0.0.1: lift the per-address registration limit so the burst measures
    # the gateway, not the throttle (which has its own tests).
    os.environ.setdefault("REGISTER_MAX_PER_ADDRESS", str(10 * args.clients))
    os.environ.setdefault("LOGIN_MAX_FAILURES_PER_ADDRESS", str(10 * args.timing_logins + 100))

    with running_stack() as api:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            results = [row for rows in pool.map(lambda _: _client(api), range(args.clients)) for row in rows]
        wall = time.monotonic() - started

        # Unknown e-mail against wrong password, sequentially, interleaved: same status and body, and
        # the same work (a bcrypt check against a dummy hash), so similar time. One account per 4 wrong
        # passwords keeps each under its own limit.
        timing = {"unknown": [], "wrong": []}
        bodies = {"unknown": set(), "wrong": set()}
        accounts = []
        for n in range(args.timing_logins):
            if n % 4 == 0:
                email = f"timing-{uuid.uuid4().hex[:10]}@example.com"
                requests.post(
                    f"{api}/auth/register",
                    json={"org_name": "Timing", "email": email, "password": "right-password-1"},
                    timeout=60,
                ).raise_for_status()
                accounts.append(email)
            for kind, email in (
                ("unknown", f"nobody-{uuid.uuid4().hex[:10]}@example.com"),
                ("wrong", accounts[-1]),
            ):
                begin = time.perf_counter()
                answer = requests.post(
                    f"{api}/auth/login", json={"email": email, "password": "wrong-password-1"}, timeout=60
                )
                timing[kind].append((time.perf_counter() - begin) * 1000)
                bodies[kind].add((answer.status_code, answer.text))

        from ragcore.auth import hash_password, verify_password
        from ragcore.throttle import Limit, PgThrottleStore, throttle_key

        store = PgThrottleStore()
        throttle_ms = []
        for _ in range(args.throttle_calls):
            key = throttle_key("bench", uuid.uuid4().hex)
            begin = time.perf_counter()
            store.hit([Limit(key, 5), Limit(throttle_key("bench-address", "127.0.0.1"), 10**9)], 900)
            throttle_ms.append((time.perf_counter() - begin) * 1000)
        hashed = hash_password("burst-password-1")
        bcrypt_ms = []
        for _ in range(20):
            begin = time.perf_counter()
            verify_password("burst-password-1", hashed)
            bcrypt_ms.append((time.perf_counter() - begin) * 1000)

    print(f"{args.clients} clients, register then login, all at once: {wall:.1f} s wall")
    counts = collections.Counter((step, status) for step, status, _, _ in results)
    for (step, status), count in sorted(counts.items()):
        print(f"  {step} {status}: {count}")
    wrong = [r for r in results if r[1] == 504 and r[3]]
    print(f"  504 for a request whose work was saved: {len(wrong)}")
    for step in ("register", "login"):
        seconds = [s for st, _, s, _ in results if st.startswith(step)]
        print(
            f"  {step} latency p50 {statistics.median(seconds):.2f} s, p95 {_percentile(seconds, 0.95):.2f} s"
        )
    print(
        f"failed sign-ins, {args.timing_logins} of each kind "
        f"(status and body identical: {bodies['unknown'] == bodies['wrong']}):"
    )
    for kind, label in (("unknown", "unknown e-mail"), ("wrong", "wrong password (baseline)")):
        print(
            f"  {label}: p50 {statistics.median(timing[kind]):.1f} ms, "
            f"p95 {_percentile(timing[kind], 0.95):.1f} ms"
        )
    ratio = statistics.median(timing["unknown"]) / statistics.median(timing["wrong"])
    print(f"  unknown / wrong at p50: {ratio:.3f}x")
    p50, p95 = statistics.median(throttle_ms), _percentile(throttle_ms, 0.95)
    b50 = statistics.median(bcrypt_ms)
    print(f"throttle check (2 keys, one round trip): p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    print(f"bcrypt verify (baseline, cost 12): p50 {b50:.1f} ms; throttle / bcrypt at p50: {p50 / b50:.3f}x")


if __name__ == "__main__":
    main()
