"""BM25 inside PostgreSQL: exact scores from the tenant's own statistics, kept exact through re-ingests,
deletes and concurrent writers."""

from __future__ import annotations

import math
import threading
import uuid
from collections import Counter

import numpy as np
import pytest
from psycopg.types.json import Jsonb
from ragcore.chunking import Chunk
from ragcore.db import tenant_transaction
from ragcore.ingest import ClaimedDocument, PgDocumentStore
from ragcore.retrieval import lexical_search

TEXTS = [
    "Vitamin D deficiency is associated with an increased risk of fractures in elderly women.",
    "Fractures of the hip are common; vitamin supplements reduce falls. Vitamin intake matters.",
    "The mitochondria is the powerhouse of the cell and produces ATP through oxidative phosphorylation.",
    "Statins lower LDL cholesterol and reduce cardiovascular events in patients with diabetes.",
    "Cholesterol synthesis in the liver is regulated by HMG-CoA reductase, the target of statins.",
    "Elderly patients with osteoporosis have a higher risk of hip fractures after a fall.",
]


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _new_org() -> uuid.UUID:
    org_id = uuid.uuid4()
    with tenant_transaction(org_id) as conn:
        conn.execute("INSERT INTO organizations (id, name) VALUES (%s, 'bm25')", (org_id,))
    return org_id


def _save(org_id: uuid.UUID, texts: list[str], document_id: uuid.UUID | None = None, metadata=None):
    """Write ``texts`` as the chunks of a document (created, or replaced as a re-ingest would)."""
    document_id = document_id or uuid.uuid4()
    content_hash = uuid.uuid4().hex
    with tenant_transaction(org_id) as conn:
        conn.execute(
            """INSERT INTO documents (id, org_id, name, content, content_hash, metadata)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE
               SET content = EXCLUDED.content, content_hash = EXCLUDED.content_hash""",
            (
                document_id,
                org_id,
                f"doc-{document_id.hex[:6]}",
                " ".join(texts),
                content_hash,
                Jsonb(metadata or {}),
            ),
        )
    chunks = [Chunk(i, text, len(text.split())) for i, text in enumerate(texts)]
    vectors = np.stack([_vector(hash(t) % 2**32) for t in texts])
    saved = PgDocumentStore().save_chunks(
        ClaimedDocument(org_id, document_id, " ".join(texts), content_hash, 1), chunks, vectors, "test"
    )
    assert saved
    return document_id


def _chunk_terms(org_id: uuid.UUID) -> dict[tuple[str, int], Counter]:
    """Each chunk's term frequencies as PostgreSQL's text search sees them."""
    with tenant_transaction(org_id) as conn:
        rows = conn.execute(
            """SELECT c.document_id, c.chunk_index, u.lexeme, array_length(u.positions, 1) AS tf
               FROM document_chunks c CROSS JOIN LATERAL unnest(c.content_tsv) u WHERE c.org_id = %s""",
            (org_id,),
        ).fetchall()
    terms: dict[tuple[str, int], Counter] = {}
    for r in rows:
        terms.setdefault((str(r["document_id"]), r["chunk_index"]), Counter())[r["lexeme"]] = r["tf"]
    return terms


def _reference_bm25(org_id: uuid.UUID, question: str, k1=1.2, b=0.75) -> dict[tuple[str, int], float]:
    """Okapi BM25 recomputed in Python from the chunks alone (no stored statistics)."""
    with tenant_transaction(org_id) as conn:
        query_terms = conn.execute("SELECT bm25_query_terms(%s) AS t", (question,)).fetchone()["t"]
    chunks = _chunk_terms(org_id)
    n = len(chunks)
    avg = sum(sum(c.values()) for c in chunks.values()) / n
    df = Counter(term for c in chunks.values() for term in c)
    scores = {}
    for key, tf in chunks.items():
        length = sum(tf.values())
        score = sum(
            math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            * tf[t]
            * (k1 + 1)
            / (tf[t] + k1 * (1 - b + b * length / avg))
            for t in query_terms
            if tf[t]
        )
        if score:
            scores[key] = score
    return scores


def _stored_statistics(org_id: uuid.UUID) -> tuple[tuple[int, int], dict[str, int]]:
    with tenant_transaction(org_id) as conn:
        corpus = conn.execute(
            "SELECT chunk_count, total_length FROM bm25_corpus_stats WHERE org_id = %s", (org_id,)
        ).fetchone()
        terms = conn.execute(
            "SELECT term, chunk_freq FROM bm25_term_stats WHERE org_id = %s", (org_id,)
        ).fetchall()
    return (corpus["chunk_count"], corpus["total_length"]) if corpus else (0, 0), {
        r["term"]: r["chunk_freq"] for r in terms
    }


def _recounted_statistics(org_id: uuid.UUID) -> tuple[tuple[int, int], dict[str, int]]:
    chunks = _chunk_terms(org_id)
    df = Counter(term for c in chunks.values() for term in c)
    return (len(chunks), sum(sum(c.values()) for c in chunks.values())), dict(df)


@pytest.fixture(scope="module")
def corpus(platform):
    org_id = _new_org()
    ids = [_save(org_id, [text], metadata={"n": i}) for i, text in enumerate(TEXTS)]
    return org_id, ids


@pytest.mark.parametrize(
    "question",
    ["vitamin D and hip fractures in elderly women", "statins cholesterol", "HMG-CoA reductase", "ATP"],
)
def test_scores_are_okapi_bm25_of_the_tenant(corpus, question):
    org_id, _ = corpus
    expected = _reference_bm25(org_id, question)
    found = lexical_search(org_id, question, top_k=10)
    assert {(s.document_id, s.chunk_index): s.score for s in found} == pytest.approx(expected, rel=1e-5)
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    assert all(s.retrievers == ("lexical",) for s in found)


def test_k1_and_b_change_the_scores_as_bm25_says(corpus):
    org_id, _ = corpus
    question = "vitamin fractures"
    expected = _reference_bm25(org_id, question, k1=2.0, b=0.2)
    found = lexical_search(org_id, question, top_k=10, k1=2.0, b=0.2)
    assert {(s.document_id, s.chunk_index): s.score for s in found} == pytest.approx(expected, rel=1e-5)


def test_a_question_of_stop_words_or_unknown_terms_finds_nothing(corpus):
    org_id, _ = corpus
    assert lexical_search(org_id, "the of and", top_k=5) == []
    assert lexical_search(org_id, "zygomorphic", top_k=5) == []
    assert lexical_search(org_id, "'quoted' \\ back\\slash", top_k=5) == []


def test_another_tenants_text_changes_no_score(corpus):
    org_id, _ = corpus
    question = "vitamin D fractures elderly"
    before = [(s.document_id, s.score) for s in lexical_search(org_id, question, top_k=10)]
    other = _new_org()
    _save(other, ["vitamin fractures elderly vitamin"] * 3 + ["unrelated words entirely"])
    after = [(s.document_id, s.score) for s in lexical_search(org_id, question, top_k=10)]
    assert after == before
    assert {s.document_id for s in lexical_search(other, question, top_k=10)}.isdisjoint(
        {d for d, _ in before}
    )


def test_statistics_stay_exact_through_reingest_and_delete(platform):
    org_id = _new_org()
    first = _save(org_id, ["alpha beta beta", "gamma delta"])
    second = _save(org_id, ["beta epsilon"])
    assert _stored_statistics(org_id) == _recounted_statistics(org_id)
    _save(org_id, ["zeta eta theta", "beta iota", "kappa"], document_id=first)  # re-ingest, new text
    assert _stored_statistics(org_id) == _recounted_statistics(org_id)
    with tenant_transaction(org_id) as conn:
        conn.execute("DELETE FROM documents WHERE org_id = %s AND id = %s", (org_id, second))
    stored = _stored_statistics(org_id)
    assert stored == _recounted_statistics(org_id)
    assert "epsilon" not in stored[1]  # a term no chunk holds any more is gone
    with tenant_transaction(org_id) as conn:
        conn.execute("UPDATE document_chunks SET content = 'lambda mu' WHERE org_id = %s", (org_id,))
    assert _stored_statistics(org_id) == _recounted_statistics(org_id) == ((3, 6), {"lambda": 3, "mu": 3})


def test_a_rolled_back_write_leaves_the_statistics_alone(platform):
    org_id = _new_org()
    _save(org_id, ["omega psi"])
    before = _stored_statistics(org_id)
    with pytest.raises(RuntimeError), tenant_transaction(org_id) as conn:
        conn.execute("DELETE FROM document_chunks WHERE org_id = %s", (org_id,))
        raise RuntimeError("abort")
    assert _stored_statistics(org_id) == before


def test_concurrent_ingests_of_one_tenant_keep_exact_statistics(platform):
    org_id = _new_org()
    ids = [_save(org_id, [f"shared common words {i}"]) for i in range(8)]
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for round_ in range(3):
                for i, document_id in enumerate(ids):
                    if i % 4 == offset:
                        texts = [f"shared common words round{round_} doc{i}", "another common chunk"]
                        _save(org_id, texts, document_id=document_id)
                _save(org_id, [f"fresh common words writer{offset} round{round_}"])
        except BaseException as exc:  # reported below: a deadlock would surface here
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _stored_statistics(org_id) == _recounted_statistics(org_id)
    assert _stored_statistics(org_id)[0][0] == 8 * 2 + 4 * 3


def test_filters_apply_inside_the_search_not_to_a_short_list(corpus):
    org_id, ids = corpus
    question = "vitamin fractures hip elderly risk"
    ranked = [s.document_id for s in lexical_search(org_id, question, top_k=10)]
    last = ranked[-1]
    position = [str(i) for i in ids].index(last)
    # The weakest match is outside a top-1, yet a filter naming it still returns it.
    assert lexical_search(org_id, question, top_k=1)[0].document_id != last
    only = lexical_search(org_id, question, top_k=1, metadata_filter={"n": position})
    assert [s.document_id for s in only] == [last]
    by_id = lexical_search(org_id, question, top_k=1, document_ids=[uuid.UUID(last)])
    assert [s.document_id for s in by_id] == [last]
