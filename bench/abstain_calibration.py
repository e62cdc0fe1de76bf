"""Calibration of the relevance floor: relevant questions still answered, unrelated ones abstained.

    .venv/bin/python bench/abstain_calibration.py DATASET_DIR [--state DIR] [--floor F]

DATASET_DIR is SciFact in BEIR format; only its TRAIN qrels are read (the test split stays unseen). A
local stack starts (embedded PostgreSQL, migrations, the real handlers) and two organisations are filled
through the ingest pipeline's own chunker and store (rows, indexes, BM25 statistics and RLS are the real
ones; the queue is skipped, and chunk embeddings are cached under .bench/ so a second run only scores):

* "scifact": the whole SciFact corpus (title and abstract per document);
* "handbook": the HR handbook of tests/integration/data/abstain/.

Then every question runs through ``ragcore.query.retrieve`` (hybrid, top_k 5, what the query endpoints
do) and each candidate signal of relevance is recorded:

* answerable: SciFact train queries against the SciFact tenant, handbook questions against the handbook;
* unanswerable: the unrelated questions (tests/integration/data/abstain/unrelated_questions.txt:
  general knowledge, cooking, sports...) against both tenants, and SciFact train queries against the
  handbook (the reverse direction).

Printed: how well each signal separates the two groups (ROC AUC), a sweep of the floor over the best
sentence's cosine similarity (``ragcore.query.relevance``), and at the chosen floor (``--floor``,
default ``ABSTAIN_MIN_SCORE``) the two rates per set: answerable questions still answered, unanswerable
ones abstained. ``--quick`` skips the two sets of SciFact train queries (the slow part).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import machine_line  # noqa: E402
from bench.beir import document_body, load_split, login, stack  # noqa: E402

DATA = ROOT / "tests" / "integration" / "data" / "abstain"
STATE_FILE = "abstain-state.json"
TOP_K = 5


def question_lines(path: Path) -> list[str]:
    """The questions of a data file: one per line, ``#`` comments and blank lines skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def register(api: str, name: str) -> dict:
    import requests

    email, password = f"abstain-{uuid.uuid4().hex[:8]}@example.com", "abstain-benchmark-password"
    response = requests.post(
        f"{api}/auth/register",
        json={"org_name": name, "email": email, "password": password},
        timeout=60,
    )
    response.raise_for_status()
    return {**response.json(), "email": email, "password": password}


def load_tenant(org_id: uuid.UUID, documents: list[dict], cache: Path) -> int:
    """Store ``documents`` ({name, content, metadata}) in the tenant through the ingest pipeline's chunker
    and store; returns the number of chunks."""
    from ragcore.config import get_settings
    from ragcore.db import tenant_transaction
    from ragcore.embeddings import get_embedder
    from ragcore.ingest import ClaimedDocument, PgDocumentStore, chunk_for

    settings = get_settings()
    embedder = get_embedder(settings)
    chunked = [chunk_for(embedder, d["content"], settings) for d in documents]
    texts = [c.content for chunks in chunked for c in chunks]
    digest = hashlib.sha256(("\x00".join([embedder.model_name, *texts])).encode()).hexdigest()[:16]
    path = cache / f"abstain-chunks-{digest}.npy"
    if path.is_file():
        vectors = np.load(path)
    else:
        started = time.monotonic()
        parts = []
        for i in range(0, len(texts), 256):
            parts.append(embedder.embed(texts[i : i + 256]))
            print(f"  embedded {min(i + 256, len(texts))}/{len(texts)} chunks", flush=True)
        vectors = np.concatenate(parts)
        print(f"  {len(texts)} chunks embedded in {time.monotonic() - started:.0f} s", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    store = PgDocumentStore()
    offset = 0
    for document, chunks in zip(documents, chunked, strict=True):
        document_id = uuid.uuid4()
        content_hash = hashlib.sha256(document["content"].encode()).hexdigest()
        with tenant_transaction(org_id) as conn:
            conn.execute(
                "INSERT INTO documents (id, org_id, name, content, metadata, content_hash, status)"
                " VALUES (%s, %s, %s, %s, %s, %s, 'processing')",
                (
                    document_id,
                    org_id,
                    document["name"],
                    document["content"],
                    json.dumps(document.get("metadata") or {}),
                    content_hash,
                ),
            )
        claimed = ClaimedDocument(org_id, document_id, document["content"], content_hash, 1)
        store.save_chunks(claimed, chunks, vectors[offset : offset + len(chunks)], embedder.model_name)
        offset += len(chunks)
    return len(texts)


def prepared(api: str, data_dir: Path, corpus: list[dict], handbook: str, cache: Path) -> dict[str, dict]:
    """The two tenants' sessions, loaded once per data directory."""
    state_path = data_dir / STATE_FILE
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        return {name: {**s, **login(api, s["email"], s["password"])} for name, s in state.items()}
    sessions = {"scifact": register(api, "SciFact"), "handbook": register(api, "Handbook")}
    started = time.monotonic()
    chunks = load_tenant(
        uuid.UUID(sessions["scifact"]["org"]["id"]), [document_body(r) for r in corpus], cache
    )
    print(f"scifact tenant: {len(corpus)} documents, {chunks} chunks in {time.monotonic() - started:.0f} s")
    chunks = load_tenant(
        uuid.UUID(sessions["handbook"]["org"]["id"]),
        [{"name": "handbook.md", "content": handbook}],
        cache,
    )
    print(f"handbook tenant: 1 document, {chunks} chunks")
    state_path.write_text(json.dumps(sessions))
    return sessions


SIGNALS = {
    "best sentence's cosine (the floor's signal, ragcore.query.relevance)": "sentence",
    "best chunk's cosine (dense top-1 over the tenant)": "chunk",
    "fused hybrid score of the best source (z-score)": "fused",
    "BM25 score of the lexical top-1": "bm25",
    "share of the question's terms in the sources": "overlap",
}


def signals(org_id: uuid.UUID, question: str, embedder) -> dict[str, float]:
    """Every candidate signal for one question against one tenant (hybrid, top_k 5, as the API does)."""
    from ragcore.generation import content_terms
    from ragcore.query import relevance, retrieve
    from ragcore.retrieval import dense_search, lexical_search

    vector = embedder.embed([question])[0]
    sources = retrieve(org_id, question, TOP_K, "hybrid", embedder=embedder, query_vector=vector)
    dense = dense_search(org_id, vector, 1)
    lexical = lexical_search(org_id, question, 1)
    terms = content_terms(question)
    found = set().union(*(content_terms(s.content) for s in sources)) if sources else set()
    return {
        "sentence": relevance(vector, sources, embedder) if sources else 0.0,
        "chunk": dense[0].score if dense else 0.0,
        "fused": sources[0].score if sources else 0.0,
        "bm25": lexical[0].score if lexical else 0.0,
        "overlap": len(terms & found) / len(terms) if terms else 0.0,
    }


def auc(positives: list[float], negatives: list[float]) -> float:
    """ROC AUC: the chance that an answerable question scores above an unanswerable one (ties half)."""
    pos, neg = np.asarray(positives), np.asarray(negatives)
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def rates(results: dict[str, tuple[bool, list[dict]]], floor: float) -> dict[str, float]:
    """Per set: the share answered (answerable sets) or abstained (the others) at ``floor``."""
    out = {}
    for name, (answerable, rows) in results.items():
        answered = sum(r["sentence"] >= floor for r in rows) / len(rows)
        out[name] = answered if answerable else 1.0 - answered
    return out


def balanced(results: dict[str, tuple[bool, list[dict]]], floor: float) -> float:
    """Youden's J over sets: mean answered rate of the answerable sets + mean abstained rate of the
    others - 1 (each set counts once, whatever its size)."""
    by_set = rates(results, floor)
    good = [by_set[n] for n, (a, _) in results.items() if a]
    bad = [by_set[n] for n, (a, _) in results.items() if not a]
    return float(np.mean(good) + np.mean(bad) - 1.0)


def evaluate(
    sessions: dict[str, dict], train_queries: list[str], floor: float | None, dump: Path | None = None
) -> None:
    from ragcore.config import get_settings
    from ragcore.embeddings import get_embedder

    settings = get_settings()
    embedder = get_embedder(settings)
    scifact = uuid.UUID(sessions["scifact"]["org"]["id"])
    handbook = uuid.UUID(sessions["handbook"]["org"]["id"])
    unrelated = question_lines(DATA / "unrelated_questions.txt")
    hr_questions = question_lines(DATA / "hr_questions.txt")
    plan = {
        "SciFact train -> SciFact (answerable)": (True, scifact, train_queries),
        "HR questions -> handbook (answerable)": (True, handbook, hr_questions),
        "unrelated -> SciFact (unanswerable)": (False, scifact, unrelated),
        "unrelated -> handbook (unanswerable)": (False, handbook, unrelated),
        "SciFact train -> handbook (unanswerable)": (False, handbook, train_queries),
    }
    if not train_queries:  # --quick
        plan = {name: entry for name, entry in plan.items() if entry[2]}
    results: dict[str, tuple[bool, list[dict]]] = {}
    started = time.monotonic()
    for name, (answerable, org_id, questions) in plan.items():
        results[name] = (answerable, [signals(org_id, q, embedder) for q in questions])
        print(f"  {name}: {len(questions)} questions ({time.monotonic() - started:.0f} s)", flush=True)
    if dump is not None:
        dump.write_text(json.dumps({n: {"answerable": a, "rows": r} for n, (a, r) in results.items()}))

    print("\nSeparation of answerable from unanswerable questions (ROC AUC, all sets pooled):")
    for label, key in SIGNALS.items():
        pos = [r[key] for a, rows in results.values() if a for r in rows]
        neg = [r[key] for a, rows in results.values() if not a for r in rows]
        print(f"  {label:54s} {auc(pos, neg):.4f}")
    print("Per set (p5 / p50 / p95):")
    for name, (_, rows) in results.items():
        for key in ("sentence", "chunk"):
            values = [r[key] for r in rows]
            print(
                f"  {name:42s} {key:8s} {np.percentile(values, 5):.3f} / {np.median(values):.3f}"
                f" / {np.percentile(values, 95):.3f}"
            )

    grid = [round(x, 3) for x in np.arange(0.20, 0.60, 0.025)]
    names = list(results)
    print("\nFloor sweep over the best sentence's cosine: answered (answerable sets) / abstained (others)")
    print("  floor  " + "  ".join(f"[{i + 1}]" for i in range(len(names))) + "  Youden J")
    for value in grid:
        by_set = rates(results, value)
        cells = "  ".join(f"{by_set[n]:.3f}" for n in names)
        print(f"  {value:.3f}  {cells}  {balanced(results, value):.3f}")
    for i, name in enumerate(names):
        print(f"  [{i + 1}] {name}")
    best = max(grid, key=lambda v: (round(balanced(results, v), 3), -v))
    print(f"\nbest Youden J on the grid at floor {best:.3f}")

    chosen = floor if floor is not None else settings.relevance_floor()
    print(f"\nAt the floor {chosen:.3f} ({'--floor' if floor is not None else 'ABSTAIN_MIN_SCORE'}):")
    for name, value in rates(results, chosen).items():
        verb = "answered" if results[name][0] else "abstained"
        print(f"  {name:42s} {verb} {value:.1%} of {len(results[name][1])}")
    print(f"{datetime.date.today().isoformat()}, {machine_line()}, model {embedder.model_name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="SciFact directory (BEIR format)")
    parser.add_argument("--state", type=Path, help="keep the stack's data here and reuse the tenants")
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench", help="embedding cache directory")
    parser.add_argument("--floor", type=float, help="the floor to report (default: ABSTAIN_MIN_SCORE)")
    parser.add_argument("--load-only", action="store_true", help="load the tenants and stop")
    parser.add_argument("--dump", type=Path, help="write every question's signals to this JSON file")
    parser.add_argument("--quick", action="store_true", help="skip the two sets of SciFact train queries")
    args = parser.parse_args()
    corpus, train_queries, _ = load_split(args.dataset, "train")
    handbook = (DATA / "hr_handbook.md").read_text(encoding="utf-8")
    print(f"SciFact: {len(corpus)} documents, {len(train_queries)} train queries", flush=True)
    with stack(args.state) as (api, data_dir):
        sessions = prepared(api, data_dir, corpus, handbook, args.cache)
        if args.load_only:
            return
        questions = [] if args.quick else list(train_queries.values())
        evaluate(sessions, questions, args.floor, args.dump)


if __name__ == "__main__":
    main()
