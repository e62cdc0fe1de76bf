"""Tunes BM25 (k1, b) and the hybrid fusion on a BEIR train split, over a corpus ingested by bench/beir.py.

    .venv/bin/python bench/beir.py DATASET_DIR --state DIR          (ingests once and keeps the data)
    .venv/bin/python bench/tune_hybrid.py DATASET_DIR --state DIR [--split train]

Only the split given (train by default) is read: the test split stays for reporting. Dense and lexical
lists come from the platform's retrievers on the ingested tenant (``--depth`` deep); BM25 is re-run for
each (k1, b) of a coordinate search; the fusions are then scored offline on those lists. Printed: nDCG@10
of each setting, and the best of each fusion.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.beir import judged_subset, load_split, prepared, stack  # noqa: E402
from bench.scifact_eval import ndcg_at_k  # noqa: E402

Ranked = list[tuple[str, float]]  # (BEIR document id, score), best first, one entry per document


def documents(sources, beir_ids: dict[str, str]) -> Ranked:
    best: dict[str, float] = {}
    for source in sources:
        best.setdefault(beir_ids[source.document_id], source.score)
    return list(best.items())


def mean_ndcg(runs: dict[str, list[str]], qrels) -> float:
    return sum(ndcg_at_k(ranked, qrels[qid], 10) for qid, ranked in runs.items()) / len(runs)


def normaliser(kind: str) -> Callable[[Ranked], dict[str, float]]:
    def apply(ranked: Ranked) -> dict[str, float]:
        if not ranked:
            return {}
        values = [s for _, s in ranked]
        top, bottom = max(values), min(values)
        if kind == "max":
            return {d: s / top if top > 0 else 0.0 for d, s in ranked}
        if kind == "minmax":
            span = top - bottom or 1.0
            return {d: (s - bottom) / span for d, s in ranked}
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        return {d: (s - mean) / std for d, s in ranked}

    return apply


def convex(dense: Ranked, lexical: Ranked, weight: float, norm: str, depth: int) -> list[str]:
    scale = normaliser(norm)
    d, lx = scale(dense[:depth]), scale(lexical[:depth])
    floor_d = min(d.values(), default=0.0) if norm == "zscore" else 0.0
    floor_l = min(lx.values(), default=0.0) if norm == "zscore" else 0.0
    union = dict.fromkeys([*d, *lx])
    fused = {k: weight * d.get(k, floor_d) + (1 - weight) * lx.get(k, floor_l) for k in union}
    return sorted(fused, key=lambda k: -fused[k])


def rrf(dense: Ranked, lexical: Ranked, weight: float, k: int, depth: int) -> list[str]:
    fused: dict[str, float] = {}
    for w, ranked in ((weight, dense[:depth]), (1 - weight, lexical[:depth])):
        for rank, (doc, _) in enumerate(ranked, start=1):
            fused[doc] = fused.get(doc, 0.0) + w / (k + rank)
    return sorted(fused, key=lambda key: -fused[key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--state", type=Path, required=True, help="the --state directory of bench/beir.py")
    parser.add_argument("--split", default="train")
    parser.add_argument("--depth", type=int, default=100, help="candidates per retriever")
    parser.add_argument("--max-documents", type=int, help="as given to bench/beir.py")
    parser.add_argument(
        "--bm25-grid", action=argparse.BooleanOptionalAction, default=True, help="search k1 and b too"
    )
    args = parser.parse_args()
    corpus, queries, qrels = load_split(args.dataset, args.split)
    corpus = judged_subset(args.dataset, corpus, args.max_documents)
    print(f"{args.dataset.name} {args.split}: {len(queries)} queries", flush=True)

    with stack(args.state) as (api, data_dir):
        from ragcore.config import get_settings
        from ragcore.embeddings import get_embedder
        from ragcore.retrieval import dense_search, lexical_search

        if not (data_dir / "beir-state.json").is_file():
            raise SystemExit(f"{data_dir} holds no corpus ingested by bench/beir.py")
        session, beir_ids, _ = prepared(api, data_dir, corpus, reuse=True)
        org_id = uuid.UUID(session["org"]["id"])
        embedder = get_embedder(get_settings())
        vectors = dict(zip(queries, embedder.embed(list(queries.values())), strict=True))
        dense = {qid: documents(dense_search(org_id, vectors[qid], args.depth), beir_ids) for qid in queries}
        dense_ndcg = mean_ndcg({q: [d for d, _ in r] for q, r in dense.items()}, qrels)
        print(f"dense                      nDCG@10 {dense_ndcg:.4f}", flush=True)

        def bm25(k1: float, b: float) -> dict[str, Ranked]:
            return {
                qid: documents(lexical_search(org_id, text, args.depth, k1=k1, b=b), beir_ids)
                for qid, text in queries.items()
            }

        def lexical_ndcg(runs: dict[str, Ranked]) -> float:
            return mean_ndcg({q: [d for d, _ in r] for q, r in runs.items()}, qrels)

        runs: dict[tuple[float, float], dict[str, Ranked]] = {}
        best = (1.2, 0.75)
        grid_b = (0.3, 0.5, 0.75, 0.9, 1.0) if args.bm25_grid else (0.75,)
        for k1, b in [(1.2, b_) for b_ in grid_b]:
            runs[(k1, b)] = bm25(k1, b)
            print(
                f"lexical k1 {k1:.2f} b {b:.2f}       nDCG@10 {lexical_ndcg(runs[(k1, b)]):.4f}", flush=True
            )
        best = max(runs, key=lambda key: lexical_ndcg(runs[key]))
        for k1 in (0.6, 0.9, 1.5, 2.0) if args.bm25_grid else ():
            key = (k1, best[1])
            runs[key] = bm25(*key)
            print(
                f"lexical k1 {k1:.2f} b {key[1]:.2f}       nDCG@10 {lexical_ndcg(runs[key]):.4f}", flush=True
            )
        best = max(runs, key=lambda key: lexical_ndcg(runs[key]))
        print(f"best BM25 on {args.split}: k1 {best[0]} b {best[1]}: nDCG@10 {lexical_ndcg(runs[best]):.4f}")

        results = []
        for key in dict.fromkeys([best, (1.2, 0.75)]):
            lexical = runs[key]
            for weight in [w / 20 for w in range(21)]:
                for norm in ("max", "minmax", "zscore"):
                    fused = {q: convex(dense[q], lexical[q], weight, norm, args.depth) for q in queries}
                    results.append((mean_ndcg(fused, qrels), f"convex-{norm}", key, weight, None))
                for k in (5, 10, 20, 40, 60):
                    fused = {q: rrf(dense[q], lexical[q], weight, k, args.depth) for q in queries}
                    results.append((mean_ndcg(fused, qrels), "rrf", key, weight, k))
    results.sort(key=lambda r: -r[0])
    print(f"top fusions on {args.split} (nDCG@10, fusion, (k1, b), dense weight, rrf k):")
    for row in results[:15]:
        print(f"  {row[0]:.4f} {row[1]:14s} {row[2]} {row[3]:.2f} {row[4]}")
    for name in ("convex-max", "convex-minmax", "convex-zscore", "rrf"):
        row = next(r for r in results if r[1] == name)
        print(f"best {name:14s} {row[0]:.4f} (k1, b) {row[2]} weight {row[3]:.2f} rrf k {row[4]}")


if __name__ == "__main__":
    main()
