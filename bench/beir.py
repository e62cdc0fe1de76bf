"""Retrieval quality and speed of the platform on a BEIR dataset, through the real ingestion and query paths.

    .venv/bin/python bench/beir.py DATASET_DIR [--split test] [--state DIR]

DATASET_DIR holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv (BEIR format). A local stack starts
(embedded PostgreSQL, moto's SQS, the real handlers); one organisation registers and uploads every corpus
document with POST /documents (name: the title, content: title and text, metadata: the BEIR id), and
the ingest function embeds and stores them from the queue. Then every query of the split runs through
``ragcore.query.retrieve`` (what the query handlers call, generation aside) in each mode with top_k 100,
and once more per mode over HTTP (POST /query/sync, top_k 10, the extractive answer included) for
latency; the modes take turns on each query so that they share the machine's noise.

Printed: nDCG@10 and recall@100 per mode, ingest throughput (upload of the first document to the last
one ready), and p50/p95 of the HTTP queries per mode. ``--state DIR`` keeps the stack's data there and
reuses an ingested corpus on the next run (see bench/tune_hybrid.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line, read_jsonl  # noqa: E402
from bench._stack import lift_quotas, percentile  # noqa: E402
from bench.scifact_eval import ndcg_at_k, recall_at_k  # noqa: E402

MODES = ("hybrid", "dense", "lexical")
STATE_FILE = "beir-state.json"


def load_split(path: Path, split: str) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """(corpus records, {query id: text} of the split's queries, qrels {query id: {doc id: grade}})."""
    corpus = read_jsonl(path / "corpus.jsonl")
    qrels: dict[str, dict[str, int]] = {}
    with open(path / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(path / "queries.jsonl") if str(q["_id"]) in qrels}
    return corpus, queries, qrels


def judged_subset(path: Path, corpus: list[dict], size: int | None) -> list[dict]:
    """``corpus`` cut down to ``size`` documents: every document any split's qrels judge, then the
    others in file order. Every split can still be evaluated on it, but it is easier than the whole."""
    if size is None or size >= len(corpus):
        return corpus
    judged: set[str] = set()
    for qrels in sorted((path / "qrels").glob("*.tsv")):
        for line in qrels.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0] != "query-id":
                judged.add(parts[1])
    keep = {str(d["_id"]) for d in corpus if str(d["_id"]) in judged}
    for record in corpus:
        if len(keep) >= size:
            break
        keep.add(str(record["_id"]))
    return [d for d in corpus if str(d["_id"]) in keep]


def replicate(org_id: uuid.UUID, chunks: int) -> int:
    """Copy the tenant's documents and chunks (embeddings included) until it holds at least ``chunks``
    chunks: a larger tenant for timing queries without embedding the corpus again. Returns the count."""
    from ragcore.db import tenant_transaction

    while True:
        with tenant_transaction(org_id) as conn:
            have = conn.execute("SELECT count(*) AS n FROM document_chunks WHERE org_id = %s", (org_id,))
            count = have.fetchone()["n"]
            if count >= chunks:
                return count
            conn.execute(
                """CREATE TEMP TABLE copies ON COMMIT DROP AS
                   SELECT id AS original, gen_random_uuid() AS copy FROM documents WHERE org_id = %s""",
                (org_id,),
            )
            conn.execute(
                """INSERT INTO documents (id, org_id, name, content, metadata, status, chunk_count,
                                          content_hash, ingested_hash)
                   SELECT c.copy, d.org_id, d.name, d.content, d.metadata || '{"copy": true}', d.status,
                          d.chunk_count, d.content_hash, d.ingested_hash
                   FROM documents d JOIN copies c ON c.original = d.id WHERE d.org_id = %s""",
                (org_id,),
            )
            conn.execute(
                """INSERT INTO document_chunks (org_id, document_id, chunk_index, content, token_count,
                                                embedding, embedding_model)
                   SELECT k.org_id, c.copy, k.chunk_index, k.content, k.token_count, k.embedding,
                          k.embedding_model
                   FROM document_chunks k JOIN copies c ON c.original = k.document_id WHERE k.org_id = %s""",
                (org_id,),
            )


def document_body(record: dict) -> dict:
    """The upload of one corpus record: title as the name, title and text as the content."""
    title = (record.get("title") or "").strip()
    text = (record.get("text") or "").strip()
    return {
        "name": (title or f"document {record['_id']}")[:512],
        "content": f"{title}\n\n{text}" if title else text,
        "metadata": {"beir_id": str(record["_id"])},
    }


def corpus_fingerprint(corpus: list[dict]) -> str:
    return hashlib.sha256(json.dumps(corpus, sort_keys=True).encode()).hexdigest()[:16]


@contextmanager
def stack(state_dir: Path | None) -> Iterator[tuple[str, Path]]:
    """(API base URL, data directory) of a local stack; a temporary directory unless ``state_dir``."""
    import tempfile

    from infra.local.stack import LocalStack, StackConfig

    with tempfile.TemporaryDirectory(prefix="rag-beir-") as scratch:
        data_dir = state_dir or Path(scratch)
        lift_quotas()  # a whole corpus in one organisation
        local = LocalStack(StackConfig(data_dir=data_dir, port=0, poll_wait_seconds=1))
        url = local.start()
        try:
            yield url.rstrip("/") + "/api/v1", data_dir
        finally:
            local.stop()


def login(api: str, email: str, password: str) -> dict:
    response = requests.post(f"{api}/auth/login", json={"email": email, "password": password}, timeout=30)
    response.raise_for_status()
    return response.json()


def wait_for_ingestion(org_id: str, count: int, timeout: float = 4 * 3600) -> float:
    """The monotonic time at which ``count`` documents were ready (checked each second in the database,
    which costs the ingest workers far less than paging through the document list)."""
    from ragcore.db import tenant_transaction

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with tenant_transaction(org_id) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'ready') AS ready,"
                " min(error) FILTER (WHERE status = 'failed') AS error FROM documents WHERE org_id = %s",
                (org_id,),
            ).fetchone()
        if row["error"]:
            raise SystemExit(f"ingestion failed: {row['error']}")
        if row["ready"] >= count:
            return time.monotonic()
        time.sleep(1.0)
    raise SystemExit("documents did not become ready in time")


def ingest(api: str, corpus: list[dict]) -> tuple[dict, dict[str, str], dict[str, float]]:
    """Register an organisation and ingest the corpus; (session, {document id: BEIR id}, throughput)."""
    email, password = f"beir-{uuid.uuid4().hex[:8]}@example.com", "beir-benchmark-password"
    response = requests.post(
        f"{api}/auth/register",
        json={"org_name": "BEIR", "email": email, "password": password},
        timeout=30,
    )
    response.raise_for_status()
    session = {**response.json(), "email": email, "password": password}
    headers = {"Authorization": f"Bearer {session['token']}"}
    beir_ids: dict[str, str] = {}
    started = time.monotonic()
    with requests.Session() as http:
        for record in corpus:
            reply = http.post(f"{api}/documents", json=document_body(record), headers=headers, timeout=60)
            reply.raise_for_status()
            beir_ids[reply.json()["document"]["id"]] = str(record["_id"])
    uploaded = time.monotonic()
    done = wait_for_ingestion(session["org"]["id"], len(corpus))
    from ragcore.db import tenant_transaction

    with tenant_transaction(session["org"]["id"]) as conn:
        chunks = conn.execute("SELECT count(*) AS n FROM document_chunks").fetchone()["n"]
    seconds = done - started
    throughput = {
        "documents": len(corpus),
        "chunks": chunks,
        "seconds": round(seconds, 1),
        "upload_seconds": round(uploaded - started, 1),
        "documents_per_second": round(len(corpus) / seconds, 2),
        "chunks_per_second": round(chunks / seconds, 2),
    }
    return session, beir_ids, throughput


def prepared(api: str, data_dir: Path, corpus: list[dict], reuse: bool) -> tuple[dict, dict[str, str], dict]:
    """The session, the id map and the ingest figures: from ``data_dir`` when it holds this corpus."""
    state_path = data_dir / STATE_FILE
    fingerprint = corpus_fingerprint(corpus)
    if reuse and state_path.is_file():
        state = json.loads(state_path.read_text())
        if state["fingerprint"] == fingerprint:
            saved = state["session"]
            session = {**saved, **login(api, saved["email"], saved["password"])}
            return session, state["beir_ids"], state["throughput"]
    session, beir_ids, throughput = ingest(api, corpus)
    if reuse:
        keep = {"fingerprint": fingerprint, "session": session, "beir_ids": beir_ids}
        state_path.write_text(json.dumps({**keep, "throughput": throughput}))
    return session, beir_ids, throughput


def ranked_documents(sources: list, beir_ids: dict[str, str]) -> list[str]:
    """BEIR document ids in the order of their best chunk."""
    seen: dict[str, None] = {}
    for source in sources:
        seen.setdefault(beir_ids[source.document_id], None)
    return list(seen)


def evaluate(org_id: uuid.UUID, queries: dict[str, str], qrels, beir_ids, modes, depth: int = 100) -> dict:
    """Mean nDCG@10 and recall@100 per mode, every query through ``ragcore.query.retrieve``."""
    from ragcore.query import retrieve

    scores = {mode: {"ndcg@10": [], "recall@100": []} for mode in modes}
    for qid, text in queries.items():
        for mode in modes:
            ranked = ranked_documents(retrieve(org_id, text, depth, mode), beir_ids)
            scores[mode]["ndcg@10"].append(ndcg_at_k(ranked, qrels[qid], 10))
            scores[mode]["recall@100"].append(recall_at_k(ranked, qrels[qid], 100))
    return {mode: {k: sum(v) / len(v) for k, v in values.items()} for mode, values in scores.items()}


def latencies(api: str, token: str, questions: list[str], modes, top_k: int = 10) -> dict[str, list[float]]:
    """Milliseconds of POST /query/sync per mode; the modes rotate their turn from query to query."""
    headers = {"Authorization": f"Bearer {token}"}
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    with requests.Session() as http:
        for question in questions[:5]:  # warm the pool, the model and the index pages
            for mode in modes:
                http.post(f"{api}/query/sync", json={"question": question, "mode": mode}, headers=headers)
        for number, question in enumerate(questions):
            turn = number % len(modes)
            for mode in (*modes[turn:], *modes[:turn]):
                started = time.perf_counter()
                reply = http.post(
                    f"{api}/query/sync",
                    json={"question": question, "mode": mode, "top_k": top_k},
                    headers=headers,
                    timeout=60,
                )
                timings[mode].append((time.perf_counter() - started) * 1000)
                reply.raise_for_status()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="BEIR dataset directory")
    parser.add_argument("--split", default="test", help="qrels split to evaluate (default test)")
    parser.add_argument("--state", type=Path, help="keep the stack's data here and reuse an ingested corpus")
    parser.add_argument(
        "--max-documents", type=int, help="ingest only this many documents (all judged ones first)"
    )
    parser.add_argument(
        "--latency-chunks", type=int, default=0, help="copy the tenant's chunks up to this many before timing"
    )
    parser.add_argument(
        "--latency-queries", type=int, default=None, help="HTTP queries per mode (default: all)"
    )
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").is_file():
        raise SystemExit(f"{args.dataset} holds no corpus.jsonl")
    corpus, queries, qrels = load_split(args.dataset, args.split)
    corpus = judged_subset(args.dataset, corpus, args.max_documents)
    print(f"{args.dataset.name} {args.split}: {len(corpus)} documents, {len(queries)} queries", flush=True)

    with stack(args.state) as (api, data_dir):
        session, beir_ids, throughput = prepared(api, data_dir, corpus, reuse=args.state is not None)
        print(
            f"ingest: {throughput['documents']} documents, {throughput['chunks']} chunks in "
            f"{throughput['seconds']} s (uploads {throughput['upload_seconds']} s): "
            f"{throughput['documents_per_second']} documents/s, {throughput['chunks_per_second']} chunks/s",
            flush=True,
        )
        org_id = uuid.UUID(session["org"]["id"])
        quality = evaluate(org_id, queries, qrels, beir_ids, MODES)
        for mode in MODES:
            print(
                f"{mode:8s} nDCG@10 {quality[mode]['ndcg@10']:.4f}  "
                f"recall@100 {quality[mode]['recall@100']:.4f}",
                flush=True,
            )
        questions = list(queries.values())[: args.latency_queries]
        if not questions:
            return
        if args.latency_chunks:
            print(
                f"tenant copied up to {replicate(org_id, args.latency_chunks)} chunks for timing", flush=True
            )
        timings = latencies(api, session["token"], questions, MODES)
    print(f"POST /query/sync, top_k 10, {len(questions)} queries per mode ({machine_line()}):")
    for mode in MODES:
        p50, p95 = percentile(timings[mode], 50), percentile(timings[mode], 95)
        print(f"{mode:8s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
    dense95 = percentile(timings["dense"], 95)
    for mode in ("hybrid", "lexical"):
        print(f"{mode} / dense at p95: {percentile(timings[mode], 95) / dense95:.2f}x")


if __name__ == "__main__":
    main()
