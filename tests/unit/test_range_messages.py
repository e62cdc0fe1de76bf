"""Chunk-range messages of large documents: how they are read from the queue."""

from __future__ import annotations

import json
import uuid

import pytest
from ragcore.queue import parse_ingest_message

ORG, DOC, RUN = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def _body(**extra) -> str:
    return json.dumps({"org_id": str(ORG), "document_id": str(DOC), **extra})


def test_a_range_message_names_its_run_and_range():
    (request,) = parse_ingest_message(_body(run_id=str(RUN), start=200, stop=400)).requests
    assert (request.org_id, request.document_id, request.run_id) == (ORG, DOC, RUN)
    assert (request.start, request.stop) == (200, 400)


def test_a_document_message_has_no_run():
    (request,) = parse_ingest_message(_body()).requests
    assert request.run_id is None


@pytest.mark.parametrize(
    "extra",
    [
        {"run_id": "not-a-uuid", "start": 0, "stop": 10},
        {"run_id": str(RUN)},
        {"run_id": str(RUN), "start": 10, "stop": 10},
        {"run_id": str(RUN), "start": -1, "stop": 10},
        {"run_id": str(RUN), "start": "0", "stop": 10},
        {"run_id": str(RUN), "start": 0, "stop": 10.0},
        {"run_id": str(RUN), "start": True, "stop": 10},
    ],
)
def test_a_malformed_range_message_is_refused(extra):
    with pytest.raises(ValueError):
        parse_ingest_message(_body(**extra))
