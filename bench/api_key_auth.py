"""What authenticating with an API key costs, against a JWT (the baseline) in the same run.

Usage: .venv/bin/python bench/api_key_auth.py [--keys 10000] [--checks 2000] [--requests 300]

On a fresh local stack: one organisation holding ``--keys`` API keys (created through ragcore, so the
rows and the unique index on the hash are the real ones). Printed, with p50/p95 in milliseconds:
- ``principal_from_authorization`` in-process, for a JWT (signature check and the user's role read in
  its tenant: the baseline) and for an API key (SHA-256 and the SECURITY DEFINER lookup), alternating;
- ``GET /api/v1/me`` over HTTP through the gateway and the auth function, with each credential;
- one bcrypt check at the platform's cost, what a per-request password-style hash would add.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line  # noqa: E402
from bench._stack import percentile, register, running_stack  # noqa: E402


def _ms(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def _summary(name: str, values: list[float], baseline: list[float] | None = None) -> str:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    ratio = f"{p50 / percentile(baseline, 50):.2f}x" if baseline else "1.00x"
    return f"| {name} | {p50:.3f} | {p95:.3f} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000, help="keys in the table")
    parser.add_argument("--checks", type=int, default=2000, help="in-process checks per credential")
    parser.add_argument("--requests", type=int, default=300, help="HTTP requests per credential")
    args = parser.parse_args()

    with running_stack() as api:
        from ragcore.api_keys import create_api_key
        from ragcore.auth import Principal, hash_password, principal_from_authorization, verify_password
        from ragcore.config import get_settings

        registered = register(api)
        admin = Principal(uuid.UUID(registered["user"]["id"]), uuid.UUID(registered["org"]["id"]), "admin")
        started = time.monotonic()
        for number in range(args.keys - 1):
            create_api_key(admin, f"bench {number}", "query")
        secret = create_api_key(admin, "measured", "query")["secret"]
        created_seconds = time.monotonic() - started
        jwt_header, key_header = f"Bearer {registered['token']}", f"Bearer {secret}"

        for header in (jwt_header, key_header):  # warm the pool and the function's cache
            for _ in range(50):
                principal_from_authorization(header)
        jwt_ms, key_ms = [], []
        for _ in range(args.checks):
            jwt_ms.append(_ms(principal_from_authorization, jwt_header))
            key_ms.append(_ms(principal_from_authorization, key_header))

        http_jwt, http_key = [], []
        with requests.Session() as session:
            for header in (jwt_header, key_header):
                session.get(f"{api}/me", headers={"Authorization": header}, timeout=30).raise_for_status()
            for _ in range(args.requests):
                for header, out in ((jwt_header, http_jwt), (key_header, http_key)):
                    started = time.perf_counter()
                    response = session.get(f"{api}/me", headers={"Authorization": header}, timeout=30)
                    out.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text

        rounds = get_settings().password_bcrypt_rounds
        hashed = hash_password("a password of some length")
        bcrypt_ms = [_ms(verify_password, "a password of some length", hashed) for _ in range(10)]

    print(f"## API key authentication ({datetime.date.today().isoformat()}, {machine_line()})")
    print(f"{args.keys} keys in the table (created in {created_seconds:.1f} s); p50/p95 in ms")
    print("| measure | p50 | p95 | p50 vs JWT |")
    print("|---|---|---|---|")
    print(_summary(f"principal_from_authorization, JWT (baseline), {args.checks}x", jwt_ms))
    print(_summary(f"principal_from_authorization, API key, {args.checks}x", key_ms, jwt_ms))
    print(_summary(f"GET /me over HTTP, JWT (baseline), {args.requests}x", http_jwt))
    print(_summary(f"GET /me over HTTP, API key, {args.requests}x", http_key, http_jwt))
    print(_summary(f"one bcrypt check (cost {rounds}), 10x", bcrypt_ms, jwt_ms))


if __name__ == "__main__":
    main()
