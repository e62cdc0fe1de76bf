"""Which relevance floor is in force (ragcore.config.Settings.relevance_floor)."""

import pytest
from pydantic import ValidationError
from ragcore.config import LOCAL_ABSTAIN_MIN_SCORE, Settings


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
