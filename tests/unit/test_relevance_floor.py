"""Which relevance floor is in force (ragcore.config.Settings.relevance_floor)."""

import pytest
from pydantic import ValidationError
from ragcore.config import LOCAL_ABSTAIN_MIN_SCORE, Settings
from ragcore.query import RELEVANCE_SOURCES, relevance
from ragcore.retrieval import Source

from tests.fakes import BagOfWordsEmbedder


def test_the_local_model_gets_its_calibrated_floor_by_default():
    assert Settings(embedding_provider="local").relevance_floor() == LOCAL_ABSTAIN_MIN_SCORE
    assert 0 < LOCAL_ABSTAIN_MIN_SCORE < 1


@pytest.mark.parametrize("provider", ["openai", "bedrock"])
def test_other_embedding_models_have_no_floor_until_one_is_set(provider):
    # A cosine floor measured for one model means nothing for another's similarity scale.
    assert Settings(embedding_provider=provider).relevance_floor() == 0.0
    assert Settings(embedding_provider=provider, abstain_min_score=0.4).relevance_floor() == 0.4


def test_an_explicit_floor_wins_and_zero_disables():
    assert Settings(abstain_min_score=0.55).relevance_floor() == 0.55
    assert Settings(abstain_min_score=0).relevance_floor() == 0.0


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_a_floor_outside_the_cosine_range_is_refused(value):
    with pytest.raises(ValidationError):
        Settings(abstain_min_score=value)


def _source(content: str) -> Source:
    return Source("d", "n.txt", 0, content, 0.5)


def test_relevance_is_the_best_sentence_not_the_whole_chunk():
    embedder = BagOfWordsEmbedder()
    question = embedder.embed(["vacation days per year"])[0]
    chunk = _source(
        "Parking spaces are assigned by lottery every spring. Employees accrue vacation days per year. "
        "The cafeteria serves lunch from noon until two. Laptops are replaced every three years."
    )
    whole = float(embedder.embed([chunk.content])[0] @ question)
    best = float(embedder.embed(["Employees accrue vacation days per year."])[0] @ question)
    assert relevance(question, [chunk], embedder) == pytest.approx(best) and best > 0.8
    assert whole < best - 0.25  # the chunk as a whole is diluted by its other topics


def test_relevance_reads_only_the_best_sources_and_a_bounded_number_of_sentences():
    embedder = BagOfWordsEmbedder()
    question = embedder.embed(["vacation days per year"])[0]
    filler = [_source("Parking spaces are assigned by lottery.") for _ in range(RELEVANCE_SOURCES)]
    answer = _source("Employees accrue vacation days per year.")
    assert relevance(question, [*filler, answer], embedder) < 0.5  # sixth source: not read
    assert relevance(question, [answer, *filler], embedder) > 0.8
    many = _source(" ".join(f"Parking rule number {n} applies." for n in range(200)) + " " + answer.content)
    assert relevance(question, [many], embedder) < 0.5  # past RELEVANCE_MAX_SENTENCES
    assert relevance(question, [], embedder) == 0.0
