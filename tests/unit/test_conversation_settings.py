"""The conversation settings: defaults, environment names and bounds."""

import pytest
from pydantic import ValidationError
from ragcore.config import Settings


def test_defaults():
    settings = Settings()
    assert settings.conversation_history_max_turns == 6
    assert settings.conversation_history_max_tokens == 2000
    assert settings.conversation_condense_max_tokens == 200
    assert settings.conversation_context_questions == 2
    assert settings.conversation_max_turns == 500


def test_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONVERSATION_HISTORY_MAX_TURNS", "3")
    monkeypatch.setenv("CONVERSATION_HISTORY_MAX_TOKENS", "500")
    settings = Settings()
    assert (settings.conversation_history_max_turns, settings.conversation_history_max_tokens) == (3, 500)


@pytest.mark.parametrize(
    "field, value",
    [
        ("conversation_history_max_turns", 0),
        ("conversation_history_max_tokens", 10),
        ("conversation_condense_max_tokens", 0),
        ("conversation_context_questions", 0),
        ("conversation_max_turns", 0),
    ],
)
def test_bounds_are_enforced(field, value):
    with pytest.raises(ValidationError):
        Settings(**{field: value})
