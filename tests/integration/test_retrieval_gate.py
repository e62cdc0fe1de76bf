"""Retrieval gate: on a fixed SciFact subset, hybrid retrieval beats dense and lexical alone.

The subset (60 test queries, their relevant abstracts and hard negatives, 300 documents in all) is
written by scripts/make_retrieval_gate.py from the BEIR files. Documents go through the real upload and
ingest path; queries through ``ragcore.query.retrieve``, which the query handlers call. The floors are
a little under the figures recorded in docs/benchmarks.md, so that a change that loses retrieval
quality fails here (measured on 2026-11-26: hybrid 0.869, dense 0.844, lexical 0.815).
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import pytest
from ragcore.query import retrieve

DATA = Path(__file__).parent / "data" / "scifact_gate"
HYBRID_NDCG_FLOOR = 0.85
SINGLE_MODE_NDCG_FLOOR = 0.78


def _ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:10]))
    ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(relevant.values(), reverse=True)[:10]))
    return dcg / ideal


@pytest.fixture(scope="module")
def gate(platform):
    tenant = platform.register()
    beir_ids: dict[str, str] = {}
    for line in (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        body = {"name": record["title"], "content": f"{record['title']}\n\n{record['text']}"}
        created = platform.request("POST", "/api/v1/documents", body, token=tenant["token"])
        assert created.status == 202, created.body
        beir_ids[created.body["document"]["id"]] = record["_id"]
    platform.ingest_all(max_rounds=len(beir_ids))
    queries = {
        (q := json.loads(line))["_id"]: q["text"]
        for line in (DATA / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    }
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATA / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, doc_id, grade = line.split("\t")
        qrels.setdefault(qid, {})[doc_id] = int(grade)
    org_id = uuid.UUID(tenant["org"]["id"])
    scores = {}
    for mode in ("hybrid", "dense", "lexical"):
        per_query = []
        for qid, text in queries.items():
            ranked = list(dict.fromkeys(beir_ids[s.document_id] for s in retrieve(org_id, text, 10, mode)))
            per_query.append(_ndcg_at_10(ranked, qrels[qid]))
        scores[mode] = sum(per_query) / len(per_query)
    print(f"retrieval gate nDCG@10: {scores}")
    return {"org_id": org_id, "documents": len(beir_ids), **scores}


def test_the_subset_is_fully_ingested(gate, platform):
    # Every document ready: a failed ingestion would make the comparison below meaningless.
    rows = platform.owner_query(
        "SELECT status, count(*) FROM documents WHERE org_id = %s GROUP BY status", (gate["org_id"],)
    )
    assert dict(rows) == {"ready": gate["documents"]}


def test_hybrid_beats_each_single_retriever(gate):
    assert gate["hybrid"] > gate["dense"], gate
    assert gate["hybrid"] > gate["lexical"], gate


def test_quality_stays_above_the_recorded_floors(gate):
    assert gate["hybrid"] >= HYBRID_NDCG_FLOOR, gate
    assert min(gate["dense"], gate["lexical"]) >= SINGLE_MODE_NDCG_FLOOR, gate
