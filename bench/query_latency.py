"""Sync query latency over HTTP on the local stack with 10,000 chunks in the tenant.

Usage: .venv/bin/python bench/query_latency.py --data <scifact dir> [--chunks 10000] [--queries 200]
       [--modes dense,hybrid]

The tenant's chunks are SciFact passages of about 50 words, embedded once with the local model and
written through the ingest pipeline's store (so rows, indexes and RLS are the real ones). The questions are
SciFact test queries. Printed: p50/p95 of POST /query/sync end to end for each retrieval mode (the modes
take turns on each question, so they share the machine's noise), and of its parts measured alone in the
same run (question embedding, tenant-scoped dense retrieval, hybrid retrieval).
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

from bench._common import load_scifact, machine_line, scifact_dir  # noqa: E402
from bench._stack import percentile, register, running_stack  # noqa: E402


def passages(doc_texts: list[str], count: int, words: int = 50) -> list[list[str]]:
    """Passages grouped by source document, ``count`` in all."""
    grouped, total = [], 0
    for text in doc_texts:
        tokens = text.split()
        pieces = [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
        pieces = pieces[: count - total]
        if pieces:
            grouped.append(pieces)
            total += len(pieces)
        if total == count:
            return grouped
    raise SystemExit("not enough text in the corpus")


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="SciFact directory (BEIR format); else $SCIFACT_DIR")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--modes", default="dense,hybrid", help="retrieval modes to time, comma-separated")
    args = parser.parse_args()
    _, corpus, _, questions, _ = load_scifact(scifact_dir(args.data))
    grouped = passages(corpus, args.chunks)
    questions = questions[: args.queries]

    with running_stack() as api:
        from ragcore.auth import Principal
        from ragcore.chunking import Chunk
        from ragcore.config import get_settings
        from ragcore.db import tenant_transaction
        from ragcore.embeddings import get_embedder
        from ragcore.ingest import ClaimedDocument, PgDocumentStore
        from ragcore.query import answer
        from ragcore.retrieval import dense_search, hybrid_search

        embedder = get_embedder(get_settings())
        registered = register(api)
        org_id = uuid.UUID(registered["org"]["id"])
        store = PgDocumentStore()

        started = time.monotonic()
        for number, texts in enumerate(grouped):
            document_id = uuid.uuid4()
            content = "\n\n".join(texts)
            with tenant_transaction(org_id) as conn:
                conn.execute(
                    "INSERT INTO documents (id, org_id, name, content, content_hash, status) "
                    "VALUES (%s, %s, %s, %s, %s, 'processing')",
                    (document_id, org_id, f"scifact-{number}.txt", content, str(number)),
                )
            vectors = embedder.embed(texts)
            chunks = [Chunk(i, t, sum(embedder.count_word_pieces(t.split()))) for i, t in enumerate(texts)]
            store.save_chunks(
                ClaimedDocument(org_id, document_id, content, str(number), 1),
                chunks,
                vectors,
                embedder.model_name,
            )
        load_seconds = time.monotonic() - started
        print(f"loaded {args.chunks} chunks in {len(grouped)} documents in {load_seconds:.0f} s")

        headers = {"Authorization": f"Bearer {registered['token']}"}
        principal = Principal(uuid.UUID(registered["user"]["id"]), org_id, "admin")
        for question in questions[:5]:  # warm the connection pool, the model and the index pages
            requests.post(f"{api}/query/sync", json={"question": question}, headers=headers, timeout=60)

        modes = args.modes.split(",")
        end_to_end: dict[str, list[float]] = {mode: [] for mode in modes}
        in_process, embedding, retrieval, hybrid_retrieval = [], [], [], []
        for number, question in enumerate(questions):
            turn = number % len(modes)
            for mode in (*modes[turn:], *modes[:turn]):
                started = time.perf_counter()
                response = requests.post(
                    f"{api}/query/sync",
                    json={"question": question, "mode": mode},
                    headers=headers,
                    timeout=60,
                )
                end_to_end[mode].append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                assert len(response.json()["sources"]) == 5
            in_process.append(timed(answer, principal, question, 5, None, modes[0]))
            embedding.append(timed(embedder.embed, [question]))
            vector = embedder.embed([question])[0]
            retrieval.append(timed(dense_search, principal.org_id, vector, 5))
            hybrid_retrieval.append(timed(hybrid_search, principal.org_id, question, vector, 5))

    today = datetime.date.today().isoformat()
    for label, values in (
        *((f"POST /query/sync {mode} (HTTP)", end_to_end[mode]) for mode in modes),
        (f"answer() {modes[0]} in-process", in_process),
        ("question embedding alone", embedding),
        ("dense retrieval alone", retrieval),
        ("hybrid retrieval alone", hybrid_retrieval),
    ):
        print(f"{label:34s} p50 {percentile(values, 50):7.1f} ms   p95 {percentile(values, 95):7.1f} ms")
    for mode in modes[1:]:
        ratio = percentile(end_to_end[mode], 95) / percentile(end_to_end[modes[0]], 95)
        print(f"{mode} / {modes[0]} at p95 (HTTP): {ratio:.2f}x")
    print(f"{today}, {machine_line()}, {args.chunks} chunks, {len(questions)} queries")


if __name__ == "__main__":
    main()
