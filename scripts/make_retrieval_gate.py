"""Writes the fixed SciFact subset of the retrieval gate (tests/integration/data/scifact_gate/).

    .venv/bin/python scripts/make_retrieval_gate.py DATASET_DIR [--queries 60] [--documents 300]

From a BEIR SciFact directory: the first ``--queries`` test queries (in qrels order) that have relevant
documents, every one of their relevant documents, and, up to ``--documents`` in all, hard negatives (the
documents sharing the most rare words with each query, by a plain BM25 over lower-cased words, which is
not the platform's) then documents drawn at random with a fixed seed. Deterministic: the same input
gives the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "integration" / "data" / "scifact_gate"
WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# A few function words, so that negatives are chosen by content words.
STOP = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "with",
    )
)


def words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if w not in STOP]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--negatives-per-query", type=int, default=3)
    args = parser.parse_args()

    corpus = read_jsonl(args.dataset / "corpus.jsonl")
    by_id = {str(d["_id"]): d for d in corpus}
    queries = {str(q["_id"]): q for q in read_jsonl(args.dataset / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    for line in (args.dataset / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] != "query-id" and parts[1] in by_id:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    chosen = [qid for qid in qrels if qid in queries][: args.queries]

    tokens = {
        doc_id: Counter(words((d.get("title") or "") + " " + (d.get("text") or "")))
        for doc_id, d in by_id.items()
    }
    df = Counter(term for counts in tokens.values() for term in counts)
    avg = sum(sum(c.values()) for c in tokens.values()) / len(tokens)

    def bm25(query: str, doc_id: str) -> float:
        counts, length = tokens[doc_id], sum(tokens[doc_id].values())
        score = 0.0
        for term in set(words(query)):
            tf = counts.get(term, 0)
            if tf:
                idf = math.log(1 + (len(tokens) - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg))
        return score

    keep: dict[str, None] = {}
    for qid in chosen:
        keep.update(dict.fromkeys(sorted(qrels[qid])))
    for qid in chosen:
        ranked = sorted(by_id, key=lambda d, q=queries[qid]["text"]: (-bm25(q, d), d))
        negatives = [d for d in ranked if d not in qrels[qid]][: args.negatives_per_query]
        keep.update(dict.fromkeys(negatives))
    rest = sorted(d for d in by_id if d not in keep)
    random.Random(7).shuffle(rest)
    keep.update(dict.fromkeys(rest[: max(0, args.documents - len(keep))]))

    (OUT / "qrels").mkdir(parents=True, exist_ok=True)
    with open(OUT / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id in sorted(keep, key=int):
            record = by_id[doc_id]
            handle.write(
                json.dumps({"_id": doc_id, "title": record.get("title", ""), "text": record["text"]}) + "\n"
            )
    with open(OUT / "queries.jsonl", "w", encoding="utf-8") as handle:
        for qid in chosen:
            handle.write(json.dumps({"_id": qid, "text": queries[qid]["text"]}) + "\n")
    with open(OUT / "qrels" / "test.tsv", "w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid in chosen:
            for doc_id, grade in sorted(qrels[qid].items()):
                handle.write(f"{qid}\t{doc_id}\t{grade}\n")
    print(f"{len(chosen)} queries, {len(keep)} documents -> {OUT}")


if __name__ == "__main__":
    main()
