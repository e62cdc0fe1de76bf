"""Load on the local stack: N concurrent clients, each its own organisation, for a bounded time.

Each client registers, signs in, then loops: upload a document, list documents, ask a question
synchronously, ask it streamed (reading the whole event stream). Afterwards every uploaded document must
end ready or failed within a bound (none lost, none stuck). Prints, per endpoint: requests, p50 and p95
latency, and the statuses seen; the throughput; and the same figures for a single client in the same run
(the baseline: what the platform does with no contention).

Pass criteria (exit status 1 otherwise): no 5xx, no request without an answer (connection error or a
client timeout: a hang), every 429/503 with the error body, no document lost or stuck.

    .venv/bin/python bench/load.py --clients 8 --duration 60
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import percentile, running_stack  # noqa: E402

CLIENT_TIMEOUT = 90  # seconds: longer than API Gateway's 29 s, so a hang shows as a timeout here
SETTLE_TIMEOUT = 300  # seconds for the uploaded documents to end ready or failed
QUESTION = "How many vacation days does an employee accrue?"


def _document(client: int, n: int) -> str:
    return (
        f"Handbook revision {n} of team {client}. Every employee accrues twenty-five days of paid vacation "
        "per calendar year. Remote work is allowed up to three days per week with the approval of the team "
        f"lead. The office of team {client} is closed on public holidays."
    )


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    statuses: dict[str, collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    problems: list[str] = field(default_factory=list)
    uploaded: list[tuple[str, str]] = field(default_factory=list)  # (token, document id)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, endpoint: str, response: requests.Response | None, seconds: float, error: str = ""
    ) -> None:
        with self.lock:
            if response is None:
                self.statuses[endpoint]["no answer"] += 1
                self.problems.append(f"{endpoint}: no answer ({error})")
                return
            status = response.status_code
            self.statuses[endpoint][status] += 1
            if status < 400:
                self.latencies[endpoint].append(seconds)
            if status >= 500 and status != 503:
                self.problems.append(f"{endpoint}: {status} {response.text[:200]}")
            if status in (429, 503):
                try:
                    error = response.json()["error"]
                    assert set(error) == {"code", "message"}
                except (ValueError, KeyError, TypeError, AssertionError):
                    self.problems.append(
                        f"{endpoint}: {status} without the error body: {response.text[:200]}"
                    )


def _call(results: Results, endpoint: str, method: str, url: str, **kwargs) -> requests.Response | None:
    started = time.monotonic()
    try:
        response = requests.request(method, url, timeout=CLIENT_TIMEOUT, **kwargs)
        if kwargs.get("stream"):
            body = b"".join(response.iter_content(None))
            if response.status_code == 200 and b"event: done" not in body and b"event: error" not in body:
                results.problems.append(f"{endpoint}: stream ended without done or error")
    except requests.RequestException as exc:
        results.record(endpoint, None, time.monotonic() - started, type(exc).__name__)
        return None
    results.record(endpoint, response, time.monotonic() - started)
    return response


def _client(api: str, number: int, deadline: float, results: Results) -> None:
    email = f"load-{uuid.uuid4().hex[:10]}@example.com"
    password = "load-password-1"
    body = {"org_name": f"Load {number}", "email": email, "password": password}
    if (
        r := _call(results, "register", "POST", f"{api}/auth/register", json=body)
    ) is None or r.status_code != 201:
        return
    login = _call(results, "login", "POST", f"{api}/auth/login", json={"email": email, "password": password})
    if login is None or login.status_code != 200:
        return
    token = login.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    while time.monotonic() < deadline:
        n += 1
        doc = {"name": f"handbook-{n}.txt", "content": _document(number, n)}
        uploaded = _call(results, "upload", "POST", f"{api}/documents", json=doc, headers=headers)
        if uploaded is not None and uploaded.status_code == 202:
            with results.lock:
                results.uploaded.append((token, uploaded.json()["document"]["id"]))
        _call(results, "list", "GET", f"{api}/documents", params={"limit": 20}, headers=headers)
        question = {"question": QUESTION, "top_k": 5}
        _call(results, "query sync", "POST", f"{api}/query/sync", json=question, headers=headers)
        _call(results, "query stream", "POST", f"{api}/query", json=question, headers=headers, stream=True)


def _settle(api: str, results: Results) -> dict[str, int]:
    """Waits until every uploaded document is ready or failed; counts each final state (lost: 404)."""
    final: dict[str, str] = {}
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        for token, doc_id in results.uploaded:
            if final.get(doc_id) in ("ready", "failed", "lost"):
                continue
            response = requests.get(
                f"{api}/documents/{doc_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            final[doc_id] = "lost" if response.status_code == 404 else response.json()["document"]["status"]
        if (
            all(state in ("ready", "failed", "lost") for state in final.values())
            or time.monotonic() > deadline
        ):
            break
        time.sleep(1)
    counts = collections.Counter(final.values())
    stuck = counts["pending"] + counts["processing"]
    if stuck or counts["lost"]:
        results.problems.append(f"documents: {stuck} stuck, {counts['lost']} lost after {SETTLE_TIMEOUT}s")
    return dict(counts)


def run(api: str, clients: int, duration: float) -> tuple[Results, float, dict[str, int], float]:
    results = Results()
    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(_client, api, i, started + duration, results) for i in range(clients)]:
            future.result()
    elapsed = time.monotonic() - started
    settle_started = time.monotonic()
    documents = _settle(api, results)
    return results, elapsed, documents, time.monotonic() - settle_started


def report(title: str, results: Results, elapsed: float, documents: dict[str, int], settle: float) -> None:
    total = sum(sum(c.values()) for c in results.statuses.values())
    print(f"\n{title}: {total} requests in {elapsed:.1f} s = {total / elapsed:.1f} requests/s")
    print("| endpoint | requests | p50 | p95 | statuses |")
    print("|---|---|---|---|---|")
    for endpoint in ("register", "login", "upload", "list", "query sync", "query stream"):
        latencies = results.latencies.get(endpoint, [])
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(results.statuses[endpoint].items(), key=str))
        p50 = f"{percentile(latencies, 50) * 1000:.0f} ms" if latencies else "-"
        p95 = f"{percentile(latencies, 95) * 1000:.0f} ms" if latencies else "-"
        print(f"| {endpoint} | {sum(results.statuses[endpoint].values())} | {p50} | {p95} | {statuses} |")
    print(
        f"documents uploaded: {len(results.uploaded)}, final states {documents} (settled in {settle:.1f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--baseline-duration", type=float, default=20, help="seconds of the one-client run")
    parser.add_argument("--url", help="an API base URL (…/api/v1) of a running stack instead of a new one")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.clients} clients for {args.duration:.0f} s")

    def measure(api: str) -> int:
        baseline = run(api, 1, args.baseline_duration)
        report("baseline, 1 client", *baseline)
        loaded = run(api, args.clients, args.duration)
        report(f"{args.clients} clients", *loaded)
        print("\np50 under load / p50 of one client:")
        for endpoint in ("upload", "list", "query sync", "query stream"):
            one, many = baseline[0].latencies.get(endpoint), loaded[0].latencies.get(endpoint)
            if one and many:
                print(f"  {endpoint}: {percentile(many, 50) / percentile(one, 50):.2f}x")
        problems = baseline[0].problems + loaded[0].problems
        for problem in problems[:20]:
            print(f"PROBLEM {problem}")
        print(f"\n{'FAIL' if problems else 'PASS'}: {len(problems)} problems")
        return 1 if problems else 0

    if args.url:
        return measure(args.url.rstrip("/"))
    with running_stack() as api:
        return measure(api)


if __name__ == "__main__":
    sys.exit(main())
