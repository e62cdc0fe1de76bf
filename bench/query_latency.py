"""Sync query latency over HTTP on the local stack with 10,000 chunks in the tenant.

Usage: .venv/bin/python bench/query_latency.py --data <scifact dir> [--chunks 10000] [--queries 200]

The tenant's chunks are SciFact passages of about 50 words, embedded once with the local model and
written through the ingest pipeline's store (so rows, indexes and RLS are the real ones). The questions are
SciFact test queries. Printed: p50/p95 of POST /query/sync end to end, and of its parts measured alone in
the same run (question embedding, tenant-scoped dense retrieval).
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
        from ragcore.retrieval import dense_search

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

        end_to_end, in_process, embedding, retrieval = [], [], [], []
        for question in questions:
            started = time.perf_counter()
            response = requests.post(
                f"{api}/query/sync", json={"question": question}, headers=headers, timeout=60
            )
            end_to_end.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            assert len(response.json()["sources"]) == 5
            in_process.append(timed(answer, principal, question, 5))
            embedding.append(timed(embedder.embed, [question]))
            vector = embedder.embed([question])[0]
            retrieval.append(timed(dense_search, principal.org_id, vector, 5))

    today = datetime.date.today().isoformat()
    for label, values in (
        ("POST /query/sync (HTTP)", end_to_end),
        ("answer() in-process", in_process),
        ("question embedding alone", embedding),
        ("dense retrieval alone", retrieval),
    ):
        print(f"{label:26s} p50 {percentile(values, 50):7.1f} ms   p95 {percentile(values, 95):7.1f} ms")
    print(
        f"| {today} | {machine_line()} | {args.chunks} chunks, {len(questions)} queries | sync query p50 "
        f"{percentile(end_to_end, 50):.0f} ms, p95 {percentile(end_to_end, 95):.0f} ms | in-process p50 "
        f"{percentile(in_process, 50):.0f} ms, p95 {percentile(in_process, 95):.0f} ms | retrieval alone p50 "
        f"{percentile(retrieval, 50):.1f} ms, p95 {percentile(retrieval, 95):.1f} ms |"
    )


if __name__ == "__main__":
    main()
