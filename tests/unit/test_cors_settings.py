"""CORS configuration as the functions read it, and the headers it yields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from ragcore.config import Settings
from ragcore.cors import add_cors_headers, cors_headers

APP, ADMIN = "https://app.example.com", "http://localhost:5173"


@pytest.mark.parametrize(
    "raw",
    [f"{APP},{ADMIN}", f" {APP}/ , {ADMIN} ,", f'["{APP}", "{ADMIN}"]'],
)
def test_origins_are_read_from_a_comma_list_or_json(monkeypatch, raw):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", raw)
    assert Settings().cors_allowed_origins == (APP, ADMIN)


def test_no_origins_by_default():
    assert Settings().cors_allowed_origins == ()


@pytest.mark.parametrize("bad", ["*", "app.example.com", "https://app.example.com/path"])
def test_values_that_can_never_match_an_origin_are_refused(bad):
    with pytest.raises(ValidationError, match="CORS origin"):
        Settings(cors_allowed_origins=bad)


def test_headers_echo_only_an_allowed_origin():
    assert cors_headers(APP, (APP, ADMIN))["Access-Control-Allow-Origin"] == APP
    assert cors_headers(ADMIN, (APP, ADMIN))["Access-Control-Allow-Origin"] == ADMIN
    for other in ("https://evil.example.net", "null", APP + ".evil.net", None, ""):
        assert cors_headers(other, (APP,)) == {"Vary": "Origin"}
    assert cors_headers(APP, ()) == {}  # CORS off: nothing at all


def test_proxy_responses_get_the_headers_in_the_shape_they_use():
    event = {"headers": {"origin": APP}}
    single = add_cors_headers(event, {"statusCode": 200, "headers": {"Vary": "Accept-Encoding"}}, (APP,))
    assert single["headers"]["Access-Control-Allow-Origin"] == APP
    assert single["headers"]["Vary"] == "Accept-Encoding, Origin"
    multi = add_cors_headers(
        {"multiValueHeaders": {"Origin": [APP]}}, {"statusCode": 401, "multiValueHeaders": {}}, (APP,)
    )
    assert multi["multiValueHeaders"]["Access-Control-Allow-Origin"] == [APP]
    assert multi["multiValueHeaders"]["Vary"] == ["Origin"]
