"""nDCG@10 and recall@10 of the local embedder on BEIR SciFact (exact cosine search, numpy).

Evaluates the shipped (onnxruntime int8) embedder and the numpy float32 reference side by side; the
published figure for all-MiniLM-L6-v2 is nDCG@10 = 0.645.

    .venv/bin/python bench/scifact_eval.py --data <scifact dir>   (or SCIFACT_DIR=<scifact dir>)

Document text follows the BEIR convention (title + " " + text). Embeddings are cached under --cache
(default .bench/, git-ignored) keyed by implementation, so a second run only re-scores.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_scifact, scifact_dir  # noqa: E402


def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    positives = {doc for doc, grade in relevant.items() if grade > 0}
    return len(positives & set(ranked[:k])) / len(positives) if positives else 0.0


def evaluate(doc_ids, doc_vectors, query_ids, query_vectors, qrels, k: int = 10) -> tuple[float, float]:
    scores = query_vectors @ doc_vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ndcgs, recalls = [], []
    for row, qid in enumerate(query_ids):
        ranked = [doc_ids[j] for j in top[row]]
        ndcgs.append(ndcg_at_k(ranked, qrels[qid], k))
        recalls.append(recall_at_k(ranked, qrels[qid], k))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


def embed_cached(name: str, embedder, texts: list[str], cache: Path | None) -> np.ndarray:
    if cache is not None:
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        path = cache / f"scifact-{name}-{digest}.npy"
        if path.is_file():
            return np.load(path)
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    print(f"  {name}: {len(texts)} texts in {time.perf_counter() - started:.1f} s", flush=True)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="SciFact directory in BEIR format (default: $SCIFACT_DIR)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--cache", default=".bench", help="embedding cache directory ('' to disable)")
    parser.add_argument("--variant", action="append", help="local build variant(s) (default: shipped)")
    parser.add_argument("--no-reference", action="store_true", help="skip the float32 reference")
    args = parser.parse_args()

    from ragcore.embeddings.local import LocalEmbedder
    from ragcore.embeddings.reference import ReferenceEmbedder

    doc_ids, doc_texts, query_ids, query_texts, qrels = load_scifact(scifact_dir(args.data), args.split)
    cache = Path(args.cache) if args.cache else None
    print(f"SciFact {args.split}: {len(doc_texts)} documents, {len(query_texts)} queries")
    embedders = [(f"local-{v}", lambda v=v: LocalEmbedder(variant=v)) for v in (args.variant or [None])]
    if not args.no_reference:
        embedders.append(("reference-fp32", ReferenceEmbedder))
    results = {}
    for name, factory in embedders:
        embedder = factory()
        if name == "local-None":
            name = f"local-{embedder.variant}"
        docs = embed_cached(name, embedder, doc_texts, cache)
        queries = embed_cached(name, embedder, query_texts, cache)
        results[name] = evaluate(doc_ids, docs, query_ids, queries, qrels)
        print(f"{name:24s} nDCG@10 {results[name][0]:.4f}  recall@10 {results[name][1]:.4f}", flush=True)
    if "reference-fp32" in results:
        for name, (ndcg, _) in results.items():
            if name != "reference-fp32":
                print(
                    f"{name}: nDCG@10 {ndcg - results['reference-fp32'][0]:+.4f} vs reference "
                    "(published 0.645)"
                )


if __name__ == "__main__":
    main()
