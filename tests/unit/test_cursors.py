"""Page cursors: what one listing hands out, the next request reads back; anything else is a 400."""

import uuid
from datetime import UTC, datetime

import pytest
from ragcore.cursors import decode_cursor, decode_position, encode_cursor, encode_position
from ragcore.errors import BadRequest


def test_a_position_comes_back_as_it_was_handed_out():
    at, row_id = datetime(2026, 11, 27, 8, 30, 1, 123456, tzinfo=UTC), uuid.uuid4()
    cursor = encode_position(at, row_id)
    assert "=" not in cursor
    assert decode_position(cursor) == (at, row_id)


def test_a_cursor_of_another_size_or_kind_is_refused():
    with pytest.raises(BadRequest):
        decode_cursor(encode_cursor(["1", "2"]), 1)
    with pytest.raises(BadRequest):
        decode_position(encode_cursor(["yesterday", str(uuid.uuid4())]))
    for garbage in ("", "%%%", "bnVsbA", encode_cursor(["only one"])):
        with pytest.raises(BadRequest):
            decode_position(garbage)
