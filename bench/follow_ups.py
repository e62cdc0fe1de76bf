"""Retrieval for follow-up questions with the extractive generator's ``with_history`` method, on
conversations built from the SciFact gate subset (no conversational data set is available offline).

Usage: .venv/bin/python bench/follow_ups.py [--data <BEIR dir>] [--weights 0.4,0.5,0.6,0.7,0.8,1.0]

Each test query A with relevance judgements starts a conversation; two kinds of follow-up come next:

* elliptic: a follow-up that names nothing ("What is the evidence for that?", from a fixed list); the
  relevant documents are A's. Searched alone it can only find noise: the history has to bring the topic.
* topic shift: the next query B, a standalone question on another topic; the relevant documents are
  B's. Here the history can only hurt: it pulls retrieval back to A.

Both are searched in hybrid mode through ragcore's retrieval (the tenant's real tables and indexes,
loaded through POST /documents on the local stack) alone (baseline, same run) and with the previous
question as context, for each follow-up weight of the dense blend (1.0: the dense query is the
follow-up alone, only BM25 sees the history). Printed: nDCG@10 of each.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import load_scifact, machine_line  # noqa: E402
from bench._stack import register, running_stack, wait_until_ready  # noqa: E402

GATE = ROOT / "tests" / "integration" / "data" / "scifact_gate"
ELLIPTIC = (
    "What is the evidence for that?",
    "Is that right?",
    "Tell me more about it.",
    "Why is that so?",
    "And what did the studies find?",
)


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="BEIR directory (default: the committed SciFact gate subset)")
    parser.add_argument("--weights", default="0.4,0.5,0.6,0.7,0.8,1.0")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    doc_ids, corpus, query_ids, questions, qrels = load_scifact(Path(args.data) if args.data else GATE)

    with running_stack() as api:
        from ragcore.condense import blend, with_history_text
        from ragcore.config import get_settings
        from ragcore.embeddings import get_embedder
        from ragcore.query import retrieve

        registered = register(api)
        headers = {"Authorization": f"Bearer {registered['token']}"}
        for doc_id, text in zip(doc_ids, corpus, strict=True):
            requests.post(
                f"{api}/documents", json={"name": doc_id, "content": text}, headers=headers, timeout=60
            ).raise_for_status()
        wait_until_ready(api, registered["token"], len(corpus))
        org_id = uuid.UUID(registered["org"]["id"])
        embedder = get_embedder(get_settings())

        def ranked(text: str, vector) -> list[str]:
            # Documents in the order of their best chunk (an abstract may make several chunks).
            found = retrieve(org_id, text, 30, "hybrid", embedder=embedder, query_vector=vector)
            return list(dict.fromkeys(s.document_name for s in found))[:10]

        scores: dict[tuple[str, str], list[float]] = {}
        for number, (qid, question) in enumerate(zip(query_ids, questions, strict=True)):
            following = (number + 1) % len(questions)
            cases = (
                ("elliptic", ELLIPTIC[number % len(ELLIPTIC)], qrels[qid]),
                ("topic shift", questions[following], qrels[query_ids[following]]),
            )
            for kind, follow_up, relevant in cases:
                vectors = embedder.embed([follow_up, question])
                scores.setdefault((kind, "alone"), []).append(
                    ndcg_at_10(ranked(follow_up, vectors[0]), relevant)
                )
                text = with_history_text([question], follow_up)
                for weight in weights:
                    vector = blend(vectors[0], vectors[1:], weight)
                    scores.setdefault((kind, f"with history, w={weight:.1f}"), []).append(
                        ndcg_at_10(ranked(text, vector), relevant)
                    )

    for (kind, method), values in scores.items():
        print(f"{kind:12s} {method:26s} nDCG@10 {sum(values) / len(values):.3f}")
    today = datetime.date.today().isoformat()
    print(f"{today}, {machine_line()}, {len(corpus)} documents, {len(questions)} conversations")


if __name__ == "__main__":
    main()
