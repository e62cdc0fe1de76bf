"""Rules of ragcore.quotas that need no database: token counts from usage reports, operator input."""

import uuid
from dataclasses import fields

import pytest
from ragcore.quotas import OVERRIDE_COLUMNS, Limits, generation_tokens, set_overrides


@pytest.mark.parametrize(
    ("report", "tokens"),
    [
        ({"provider": "extractive", "input_tokens": 34, "output_tokens": 18}, (34, 18)),
        ({"provider": "openai", "input_tokens": None, "output_tokens": None}, (0, 0)),  # not reported
        ({"input_tokens": 5}, (5, 0)),
        ({"input_tokens": -3, "output_tokens": True}, (0, 0)),
        ({"input_tokens": "12", "output_tokens": 1.5}, (0, 0)),
        ({}, (0, 0)),
        (None, (0, 0)),
    ],
)
def test_generation_tokens_of_a_usage_report(report, tokens):
    assert generation_tokens(report) == tokens


@pytest.mark.parametrize(
    ("org_id", "limits", "says"),
    [
        (uuid.uuid4(), {}, "at least one"),
        (uuid.uuid4(), None, "at least one"),
        (uuid.uuid4(), {"document": 5}, "unknown limits"),
        (uuid.uuid4(), {"documents": -1}, "non-negative integer"),
        (uuid.uuid4(), {"documents": "5"}, "non-negative integer"),
        (uuid.uuid4(), {"documents": 2.0}, "non-negative integer"),
        (uuid.uuid4(), {"documents": True}, "non-negative integer"),
        ("not-a-uuid", {"documents": 5}, "badly formed"),
    ],
)
def test_operator_input_is_refused_before_any_connection(org_id, limits, says):
    # An empty connection string: reaching the database would fail differently (no server).
    with pytest.raises(ValueError, match=says):
        set_overrides("", org_id, limits)


def test_every_limit_that_applies_can_be_overridden():
    assert set(OVERRIDE_COLUMNS) == {f.name for f in fields(Limits)}
