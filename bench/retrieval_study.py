"""Ways to improve hybrid retrieval, each tuned on a BEIR train split and then measured once on test.

    .venv/bin/python bench/beir.py DATASET_DIR --state DIR          (ingests the corpus once)
    .venv/bin/python bench/retrieval_study.py DATASET_DIR --state DIR

The tenant's chunks are read back from PostgreSQL (their stored embeddings and ``content_tsv``; queries
get the same ``bm25_query_terms`` and ``to_tsvector('english', ...)``), and every retriever is then
re-scored in memory over all of them, so that dozens of settings can be compared on the same data:

- ``baseline``: what the platform does (z-scored dense and BM25 lists of 100, weight ``w``);
- ``windows``: each chunk's dense score mixed with the best of its sub-windows of at most 128 word
  pieces, embedded separately (small-to-big retrieval);
- ``title``: chunks after a document's first embedded with the document name in front of them;
- ``proximity``: BM25 plus a BM25-weighted count of adjacent query-term pairs found within a window
  (a sequential dependence model);
- ``dense-prf``: Rocchio feedback on the query vector from the first fused results;
- ``rm3``: BM25 expanded with the strongest terms of the first fused results;
- ``signals``: a weight grid over five z-scored lists (chunk dense, window dense, title dense, chunk
  BM25, document BM25).

Each variant's settings are chosen on the train split alone; only the chosen one is scored on test,
beside the baseline, with a paired bootstrap interval of the difference (test queries resampled).
Embeddings this study needs beyond the stored ones (windows, titled chunks) are cached in the state
directory.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line  # noqa: E402
from bench.beir import judged_subset, load_split, prepared, stack  # noqa: E402
from bench.scifact_eval import embed_cached, ndcg_at_k  # noqa: E402

DEPTH = 100  # candidates per list, as HYBRID_CANDIDATES
WINDOW_PIECES = 128
LEXEME = re.compile(r"'((?:[^']|'')*)'(?::([0-9A-D,]+))?")


def parse_tsvector(text: str) -> dict[str, list[int]]:
    """{lexeme: positions} of a tsvector's text form."""
    out: dict[str, list[int]] = {}
    for match in LEXEME.finditer(text):
        positions = [int(p.rstrip("ABCD")) for p in (match.group(2) or "").split(",") if p]
        out[match.group(1).replace("''", "'")] = positions or [0]
    return out


@dataclass
class Postings:
    """BM25 over one set of units (chunks or documents), as ``ragcore.retrieval.lexical`` scores it."""

    lengths: np.ndarray
    tf: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))

    def idf(self, term: str) -> float:
        n = len(self.tf.get(term, ()))
        return math.log(1 + (len(self.lengths) - n + 0.5) / (n + 0.5))

    def score(self, counts: dict[str, dict[int, int]], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
        """Sum over ``counts`` ({term: {unit: frequency}}) of idf * saturated frequency."""
        scores = np.zeros(len(self.lengths))
        average = max(float(self.lengths.mean()), 1.0)
        for found in counts.values():
            if not found:
                continue
            n = len(found)
            idf = math.log(1 + (len(self.lengths) - n + 0.5) / (n + 0.5))
            ids = np.fromiter(found.keys(), int)
            tf = np.fromiter(found.values(), float)
            scores[ids] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * self.lengths[ids] / average))
        return scores

    def bm25(self, terms) -> np.ndarray:
        return self.score({t: self.tf.get(t, {}) for t in set(terms)})


@dataclass
class Tenant:
    documents: list[str]  # BEIR id of each chunk's document
    names: list[str]
    indexes: list[int]
    contents: list[str]
    vectors: np.ndarray
    lexemes: list[dict[str, list[int]]]
    chunk_postings: Postings
    document_postings: Postings
    document_of: np.ndarray  # chunk -> position of its document in ``document_ids``
    document_ids: list[str]


def load_tenant(org_id: uuid.UUID, beir_ids: dict[str, str]) -> Tenant:
    from ragcore.db import tenant_transaction

    with tenant_transaction(org_id) as conn:
        rows = conn.execute(
            """SELECT c.document_id::text AS document_id, d.name, c.chunk_index, c.content,
                      c.embedding::text AS embedding, c.content_tsv::text AS tsv, c.lexical_length
               FROM document_chunks c JOIN documents d ON d.org_id = c.org_id AND d.id = c.document_id
               WHERE c.org_id = %s ORDER BY c.document_id, c.chunk_index""",
            (org_id,),
        ).fetchall()
    documents = [beir_ids[r["document_id"]] for r in rows]
    document_ids = sorted(set(documents))
    position = {d: i for i, d in enumerate(document_ids)}
    document_of = np.array([position[d] for d in documents])
    lexemes = [parse_tsvector(r["tsv"]) for r in rows]
    chunk_postings = Postings(np.array([r["lexical_length"] for r in rows], dtype=float))
    # A document's counts are its chunks' summed: words in the chunks' overlaps count twice.
    document_postings = Postings(np.bincount(document_of, weights=chunk_postings.lengths))
    for i, found in enumerate(lexemes):
        for term, positions in found.items():
            chunk_postings.tf[term][i] = len(positions)
            by_document = document_postings.tf[term]
            by_document[document_of[i]] = by_document.get(document_of[i], 0) + len(positions)
    return Tenant(
        documents=documents,
        names=[r["name"] for r in rows],
        indexes=[r["chunk_index"] for r in rows],
        contents=[r["content"] for r in rows],
        vectors=np.array([json.loads(r["embedding"]) for r in rows], dtype=np.float32),
        lexemes=lexemes,
        chunk_postings=chunk_postings,
        document_postings=document_postings,
        document_of=document_of,
        document_ids=document_ids,
    )


def top(scores: np.ndarray, k: int = DEPTH, positive: bool = False) -> np.ndarray:
    k = min(k, len(scores) - 1)
    ids = np.argpartition(-scores, k)[:k]
    ids = ids[np.argsort(-scores[ids], kind="stable")]
    return ids[scores[ids] > 0] if positive else ids


def fuse(lists: list[tuple[np.ndarray, float, bool]]) -> list[int]:
    """Chunk ids by weighted z-score over each list's top ``DEPTH`` (a missing chunk gets the list's lowest
    z-score), as ``ragcore.retrieval.hybrid.fuse`` does; ``(scores, weight, lexical)`` per list."""
    fused: dict[int, float] = {}
    parts = []
    for scores, weight, lexical in lists:
        if weight == 0:
            continue
        ids = top(scores, positive=lexical)
        values = scores[ids]
        spread = float(values.std()) or 1.0
        z = {int(i): (float(scores[i]) - float(values.mean())) / spread for i in ids}
        parts.append((z, weight, min(z.values(), default=0.0)))
        for i in ids:
            fused.setdefault(int(i), 0.0)
    for key in fused:
        fused[key] = sum(w * z.get(key, floor) for z, w, floor in parts)
    return sorted(fused, key=lambda key: -fused[key])


class Study:
    """Signals per query over one tenant, and nDCG@10 of rankings built from them."""

    def __init__(self, tenant: Tenant, queries: dict[str, str], qrels: dict[str, dict], cache: Path):
        from ragcore.chunking import chunk_text
        from ragcore.config import get_settings
        from ragcore.db import tenant_transaction
        from ragcore.embeddings import get_embedder

        self.tenant, self.queries, self.qrels = tenant, queries, qrels
        embedder = get_embedder(get_settings())
        # One question at a time, as the query path embeds it: the int8 model's activation ranges are
        # dynamic, so a batch of questions embeds each slightly differently (0.005 nDCG@10 on SciFact).
        self.query_vectors = {q: embedder.embed([text])[0] for q, text in queries.items()}
        with tenant_transaction(uuid.uuid4()) as conn:
            self.terms = {
                q: conn.execute("SELECT bm25_query_terms(%s) AS t", (text,)).fetchone()["t"] or []
                for q, text in queries.items()
            }
            self.ordered_terms = {}
            for q, text in queries.items():
                tsv = conn.execute("SELECT to_tsvector('english', %s)::text AS v", (text,)).fetchone()["v"]
                by_position = sorted((p, t) for t, ps in parse_tsvector(tsv).items() for p in ps)
                self.ordered_terms[q] = [t for _, t in by_position]
        windows, self.window_parent = [], []
        for i, content in enumerate(tenant.contents):
            for window in chunk_text(
                content,
                size_words=96,
                overlap_words=32,
                max_tokens=WINDOW_PIECES,
                count_word_pieces=embedder.count_word_pieces,
            ):
                windows.append(window.content)
                self.window_parent.append(i)
        self.window_parent = np.array(self.window_parent)
        self.window_vectors = embed_cached("windows", embedder, windows, cache)
        titled = [i for i, index in enumerate(tenant.indexes) if index > 0]
        self.titled_vectors = tenant.vectors.copy()
        self.titled_vectors[titled] = embed_cached(
            "titled", embedder, [f"{tenant.names[i]}\n\n{tenant.contents[i]}" for i in titled], cache
        )
        print(
            f"  {len(tenant.contents)} chunks, {len(windows)} windows, {len(titled)} titled chunks",
            flush=True,
        )
        self._signals: dict[str, dict[str, np.ndarray]] = {}

    def signals(self, q: str) -> dict[str, np.ndarray]:
        if q not in self._signals:
            t, v = self.tenant, self.query_vectors[q]
            windows = np.full(len(t.contents), -1.0)
            np.maximum.at(windows, self.window_parent, self.window_vectors @ v)
            self._signals[q] = {
                "dense": t.vectors @ v,
                "windows": windows,
                "titled": self.titled_vectors @ v,
                "bm25": t.chunk_postings.bm25(self.terms[q]),
                "document_bm25": t.document_postings.bm25(self.terms[q])[t.document_of],
            }
        return self._signals[q]

    def ranked(self, chunk_ids) -> list[str]:
        return list(dict.fromkeys(self.tenant.documents[i] for i in chunk_ids))

    def per_query(self, rank: Callable[[str], list[int]], split_queries) -> np.ndarray:
        return np.array([ndcg_at_k(self.ranked(rank(q)), self.qrels[q], 10) for q in split_queries])

    @functools.cache  # noqa: B019 (one Study per run)
    def proximity(self, q: str, window: int) -> np.ndarray:
        """BM25-weighted counts of ordered query-term pairs at most ``window`` positions apart."""
        pairs = {}
        terms = self.ordered_terms[q]
        postings = self.tenant.chunk_postings.tf
        for a, b in itertools.pairwise(terms):
            if a == b or (a, b) in pairs:
                continue
            found = {}
            for i in set(postings.get(a, ())) & set(postings.get(b, ())):
                after = set(self.tenant.lexemes[i][b])
                n = sum(1 for p in self.tenant.lexemes[i][a] for d in range(1, window + 1) if p + d in after)
                if n:
                    found[i] = n
            pairs[(a, b)] = found
        return self.tenant.chunk_postings.score({f"{a} {b}": f for (a, b), f in pairs.items()})

    def dense_prf(self, q: str, w: float, k: int, beta: float) -> list[int]:
        s = self.signals(q)
        first = fuse([(s["dense"], w, False), (s["bm25"], 1 - w, True)])[:k]
        vector = self.query_vectors[q] + beta * self.tenant.vectors[first].mean(axis=0)
        return fuse(
            [(self.tenant.vectors @ (vector / np.linalg.norm(vector)), w, False), (s["bm25"], 1 - w, True)]
        )

    def rm3(self, q: str, w: float, k: int, count: int, weight: float) -> list[int]:
        s, postings = self.signals(q), self.tenant.chunk_postings
        first = fuse([(s["dense"], w, False), (s["bm25"], 1 - w, True)])[:k]
        strength: dict[str, float] = defaultdict(float)
        for i in first:
            total = sum(len(p) for p in self.tenant.lexemes[i].values())
            for term, positions in self.tenant.lexemes[i].items():
                strength[term] += len(positions) / total * postings.idf(term)
        own = set(self.terms[q])
        added = [t for t, _ in sorted(strength.items(), key=lambda x: -x[1]) if t not in own][:count]
        lexical = s["bm25"] + weight * postings.bm25(added) if added else s["bm25"]
        return fuse([(s["dense"], w, False), (lexical, 1 - w, True)])


def bootstrap(values: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    """95% interval of the mean of per-query ``values`` (queries resampled with replacement)."""
    rng = np.random.default_rng(7)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(rounds)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def variants(study: Study) -> dict[str, tuple[list[dict], Callable[..., Callable[[str], list[int]]]]]:
    """{name: (settings to try, settings -> ranking function)}."""

    def weighted(**weights):
        lexical = ("bm25", "document_bm25")
        return lambda q: fuse([(study.signals(q)[n], w, n in lexical) for n, w in weights.items()])

    def windows(w, mix):
        def rank(q):
            s = study.signals(q)
            return fuse([((1 - mix) * s["dense"] + mix * s["windows"], w, False), (s["bm25"], 1 - w, True)])

        return rank

    def proximity(w, strength, window):
        def rank(q):
            s = study.signals(q)
            lexical = s["bm25"] + strength * study.proximity(q, window) if strength else s["bm25"]
            return fuse([(s["dense"], w, False), (lexical, 1 - w, True)])

        return rank

    weights = [0.4, 0.5, 0.6]
    signal_grid = [
        dict(dense=d, windows=wi, titled=t, bm25=b, document_bm25=db)
        for d, wi, t, b, db in itertools.product(
            (0, 0.25, 0.5), (0, 0.25, 0.5), (0, 0.25), (0.25, 0.5), (0, 0.25)
        )
        if d + wi + t > 0
    ]
    return {
        "baseline": ([dict(dense=w, bm25=1 - w) for w in weights], weighted),
        "windows": ([dict(w=w, mix=m) for w in weights for m in (0.25, 0.5, 0.75, 1.0)], windows),
        "title": ([dict(titled=w, bm25=1 - w) for w in weights], weighted),
        "proximity": (
            [dict(w=w, strength=s, window=n) for w in weights for s in (0.1, 0.2, 0.4) for n in (1, 2, 4)],
            proximity,
        ),
        "dense-prf": (
            [dict(w=0.5, k=k, beta=b) for k in (1, 3, 5, 10) for b in (0.3, 0.6, 1.0)],
            lambda **p: lambda q: study.dense_prf(q, **p),
        ),
        "rm3": (
            [
                dict(w=0.5, k=k, count=c, weight=x)
                for k in (3, 5, 10)
                for c in (5, 10, 20)
                for x in (0.1, 0.2, 0.4)
            ],
            lambda **p: lambda q: study.rm3(q, **p),
        ),
        "signals": (signal_grid, weighted),
    }


def main() -> None:
    from ragcore.config import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--state", type=Path, required=True, help="the --state directory of bench/beir.py")
    parser.add_argument("--max-documents", type=int, help="as given to bench/beir.py")
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    args = parser.parse_args()
    corpus, train_queries, train_qrels = load_split(args.dataset, "train")
    _, test_queries, test_qrels = load_split(args.dataset, "test")
    corpus = judged_subset(args.dataset, corpus, args.max_documents)
    print(machine_line(), flush=True)
    with stack(args.state) as (api, data_dir):
        if not (data_dir / "beir-state.json").is_file():
            raise SystemExit(f"{data_dir} holds no corpus ingested by bench/beir.py")
        session, beir_ids, _ = prepared(api, data_dir, corpus, reuse=True)
        tenant = load_tenant(uuid.UUID(session["org"]["id"]), beir_ids)
        study = Study(tenant, {**train_queries, **test_queries}, {**train_qrels, **test_qrels}, data_dir)
    print(
        f"{args.dataset.name}: train {len(train_queries)} queries, test {len(test_queries)} (test read last)"
    )
    built = variants(study)
    chosen = {}
    for name, (grid, build) in built.items():
        if args.only and name not in args.only:
            continue
        scored = [(float(study.per_query(build(**p), train_queries).mean()), p) for p in grid]
        best = max(scored, key=lambda item: item[0])
        chosen[name] = (best, build)
        print(f"train {name:10s} best {best[0]:.4f} of {len(grid)} settings: {best[1]}", flush=True)
    weighted, windows = built["baseline"][1], built["windows"][1]
    weight = get_settings().hybrid_dense_weight  # the platform's default fusion (z-scores)
    base_test = study.per_query(weighted(dense=weight, bm25=1 - weight), test_queries)
    for name, rank in (
        ("dense", weighted(dense=1.0)),
        ("lexical", weighted(bm25=1.0)),
        ("dense with windows (mix 0.75)", windows(w=1.0, mix=0.75)),
    ):
        print(f"test  {name} alone nDCG@10 {study.per_query(rank, test_queries).mean():.4f}")
    low, high = bootstrap(base_test)
    print(
        f"test  baseline (platform defaults) nDCG@10 {base_test.mean():.4f}"
        f" (95% interval {low:.4f} to {high:.4f})"
    )
    for name, ((train_score, params), build) in chosen.items():
        test = study.per_query(build(**params), test_queries)
        low, high = bootstrap(test - base_test)
        print(
            f"test  {name:10s} nDCG@10 {test.mean():.4f} ({test.mean() - base_test.mean():+.4f} vs defaults,"
            f" 95% interval {low:+.4f} to {high:+.4f}); train {train_score:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
