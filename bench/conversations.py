"""What a conversation adds to a query, and what reading a long conversation costs, on the local stack.

Usage: .venv/bin/python bench/conversations.py [--data <BEIR dir>] [--queries 60]

The tenant holds the SciFact passages of the committed gate subset (tests/integration/data/scifact_gate,
300 abstracts) or of --data, uploaded through POST /documents and ingested by the stack. For each query,
in rotating order so the three share the machine's noise, POST /query/sync (extractive generator,
hybrid retrieval) is timed:

* plain: no conversation (the baseline);
* first turn: in a new conversation (loads its empty history, stores the turn);
* follow-up: in one conversation that grows by a turn per query (loads the bounded history, embeds the
  previous questions, blends, stores the turn).

Then GET /conversations/{id}?limit=100 of that conversation (one message page of 100) is timed and
its size printed, and GET /conversations (a page of 20).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import load_scifact, machine_line  # noqa: E402
from bench._stack import percentile, register, running_stack, wait_until_ready  # noqa: E402

GATE = ROOT / "tests" / "integration" / "data" / "scifact_gate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="BEIR directory (default: the committed SciFact gate subset)")
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()
    _, corpus, _, questions, _ = load_scifact(Path(args.data) if args.data else GATE)
    questions = (questions * (1 + args.queries // max(1, len(questions))))[: args.queries]

    with running_stack() as api:
        registered = register(api)
        headers = {"Authorization": f"Bearer {registered['token']}"}
        session = requests.Session()
        session.headers.update(headers)
        for number, text in enumerate(corpus):
            response = session.post(
                f"{api}/documents", json={"name": f"scifact-{number}.txt", "content": text}, timeout=60
            )
            response.raise_for_status()
        wait_until_ready(api, registered["token"], len(corpus))

        def conversation() -> str:
            response = session.post(f"{api}/conversations", json={}, timeout=30)
            response.raise_for_status()
            return response.json()["conversation"]["id"]

        def ask(question: str, conversation_id: str | None) -> float:
            body = {"question": question, **({"conversation_id": conversation_id} if conversation_id else {})}
            started = time.perf_counter()
            response = session.post(f"{api}/query/sync", json=body, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return elapsed

        for question in questions[:5]:  # warm the pool, the model and the index pages
            ask(question, None)

        long_conversation = conversation()
        timings: dict[str, list[float]] = {"plain": [], "first turn": [], "follow-up": []}
        kinds = list(timings)
        for number, question in enumerate(questions):
            turn = number % len(kinds)
            for kind in (*kinds[turn:], *kinds[:turn]):
                if kind == "plain":
                    timings[kind].append(ask(question, None))
                elif kind == "first turn":
                    fresh = conversation()  # created outside the timed request
                    timings[kind].append(ask(question, fresh))
                else:
                    timings[kind].append(ask(question, long_conversation))

        reads, size = [], 0
        for _ in range(20):
            started = time.perf_counter()
            response = session.get(
                f"{api}/conversations/{long_conversation}", params={"limit": 100}, timeout=60
            )
            reads.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            size = len(response.content)
            messages = len(response.json()["messages"])
        lists = []
        for _ in range(20):
            started = time.perf_counter()
            session.get(f"{api}/conversations", timeout=60).raise_for_status()
            lists.append((time.perf_counter() - started) * 1000)

    for label, values in timings.items():
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"POST /query/sync {label:11s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    for label in kinds[1:]:
        ratio = percentile(timings[label], 50) / percentile(timings["plain"], 50)
        print(f"{label} / plain at p50: {ratio:.2f}x")
    print(
        f"GET /conversations/{{id}} ({messages} messages, {size} bytes) "
        f"p50 {percentile(reads, 50):.1f} ms   p95 {percentile(reads, 95):.1f} ms"
    )
    print(f"GET /conversations p50 {percentile(lists, 50):.1f} ms   p95 {percentile(lists, 95):.1f} ms")
    today = datetime.date.today().isoformat()
    print(f"{today}, {machine_line()}, {len(corpus)} documents, {len(questions)} queries")


if __name__ == "__main__":
    main()
