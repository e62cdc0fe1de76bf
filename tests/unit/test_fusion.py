"""Fusion of the dense and lexical lists: the fused order, scores in [0, 1], and who found what."""

import math

import pytest
from ragcore.retrieval import Source, fuse


def _s(doc: str, score: float, chunk: int = 0) -> Source:
    return Source(document_id=doc, document_name=f"{doc}.txt", chunk_index=chunk, content=doc, score=score)


DENSE = [_s("a", 0.80), _s("b", 0.60), _s("c", 0.40)]
LEXICAL = [_s("c", 12.0), _s("d", 6.0), _s("a", 3.0)]


def test_convex_fusion_weighs_max_normalised_scores():
    fused = fuse(DENSE, LEXICAL, 4, method="convex", dense_weight=0.5)
    expected = {
        "a": 0.5 * 1.0 + 0.5 * 0.25,
        "c": 0.5 * 0.5 + 0.5 * 1.0,
        "b": 0.5 * 0.75,
        "d": 0.5 * 0.5,
    }
    assert [s.document_id for s in fused] == ["c", "a", "b", "d"]
    assert {s.document_id: s.score for s in fused} == pytest.approx(expected)


def test_each_source_names_the_retrievers_that_found_it():
    fused = {s.document_id: s.retrievers for s in fuse(DENSE, LEXICAL, 4)}
    assert fused == {"a": ("dense", "lexical"), "b": ("dense",), "c": ("dense", "lexical"), "d": ("lexical",)}


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_a_weight_of_zero_or_one_reproduces_one_retriever(weight):
    fused = fuse(DENSE, LEXICAL, 2, method="convex", dense_weight=weight)
    source = DENSE if weight == 1.0 else LEXICAL
    assert [s.document_id for s in fused] == [s.document_id for s in source[:2]]
    assert fused[0].score == 1.0


def test_rrf_uses_ranks_only_and_stays_in_unit_range():
    fused = fuse(DENSE, LEXICAL, 4, method="rrf", dense_weight=0.5, rrf_k=60)
    by_doc = {s.document_id: s.score for s in fused}
    assert by_doc["a"] == pytest.approx(0.5 * 61 / 61 + 0.5 * 61 / 63)
    assert by_doc["c"] == pytest.approx(0.5 * 61 / 63 + 0.5 * 61 / 61)
    assert by_doc["d"] == pytest.approx(0.5 * 61 / 62)
    assert all(0.0 <= s.score <= 1.0 for s in fused)


def test_chunks_of_one_document_stay_distinct_and_top_k_is_respected():
    dense = [_s("a", 0.9, chunk=0), _s("a", 0.8, chunk=1)]
    fused = fuse(dense, [_s("a", 2.0, chunk=1)], 1, method="convex", dense_weight=0.5)
    assert [(s.document_id, s.chunk_index) for s in fused] == [("a", 1)]
    assert fuse([], [], 5) == []


def test_negative_or_zero_scores_do_not_invert_the_order():
    fused = fuse([_s("a", -0.1), _s("b", -0.3)], [], 2, method="convex", dense_weight=1.0)
    assert [s.score for s in fused] == [0.0, 0.0]
    assert [s.document_id for s in fused] == ["a", "b"]


def test_zscore_fusion_is_the_default_and_weighs_standardised_scores():
    fused = fuse(DENSE, LEXICAL, 4)
    dense_z = {"a": 1.224745, "b": 0.0, "c": -1.224745}  # (x - mean) / population std of 0.8, 0.6, 0.4
    lexical_z = {"c": 1.336306, "d": -0.267261, "a": -1.069045}  # of 12, 6, 3
    raw = {doc: 0.5 * dense_z.get(doc, -1.224745) + 0.5 * lexical_z.get(doc, -1.069045) for doc in "abcd"}
    expected = {doc: 1 / (1 + math.exp(-value)) for doc, value in raw.items()}
    assert {s.document_id: s.score for s in fused} == pytest.approx(expected, abs=1e-6)
    assert [s.document_id for s in fused] == sorted(expected, key=lambda d: -expected[d])
    assert all(0.0 < s.score < 1.0 for s in fused)


def test_zscore_fusion_copes_with_single_and_empty_lists():
    fused = fuse([_s("a", 0.5)], [], 3)
    assert [(s.document_id, s.score, s.retrievers) for s in fused] == [("a", 0.5, ("dense",))]
