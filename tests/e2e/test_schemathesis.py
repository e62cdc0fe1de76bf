"""Schemathesis against docs/openapi.json on the running local stack, authenticated: every operation, the
stream included, with generated valid and invalid requests. No answer may be a 5xx or disagree with the
schema (status, content type, body, headers, each event of the stream). The number of generated requests
is printed at the end of the run."""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from scripts.openapi import OUTPUT
from tests.e2e.conftest import register

pytestmark = pytest.mark.e2e

# Bounded so that the module stays near a minute and a half on two cores; every operation gets the same.
MAX_EXAMPLES = 20

schema = schemathesis.openapi.from_path(OUTPUT)
# Unknown query parameters are ignored, as API Gateway and most HTTP APIs do (only bodies are closed).
schema.config.generation.update(max_examples=MAX_EXAMPLES, allow_extra_parameters=False)

REQUESTS: collections.Counter[tuple[str, str]] = collections.Counter()
TOKEN: dict[str, str] = {}
PLACEHOLDER = "token-of-the-fuzzing-admin"


@schema.auth()
class FuzzAdmin:
    """The token of the module's admin, given to schemathesis as the bearer scheme's credentials (so that
    it still sends requests without them, or with broken ones, where it tests authentication)."""

    def get(self, case, context):
        # Cases of the coverage phase are built at collection, before the stack runs: they carry a
        # placeholder that the test swaps for the token.
        return TOKEN.get("value", PLACEHOLDER)

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _inexpressible(case) -> str | None:
    """The rule of the API that JSON Schema cannot state and this schema-valid case breaks, if any.

    Only these may refuse a schema-valid request (with 400/422 and the error body): the request is then
    still checked for everything else.
    """
    body = case.body if isinstance(case.body, dict) else {}
    top_k = body.get("top_k")
    if isinstance(top_k, float):
        return "top_k written with a decimal point"  # 5.0 is an integer to JSON Schema, not to the API
    password = body.get("password")
    if isinstance(password, str) and len(password.encode()) > 72:
        return "password over 72 bytes of UTF-8"  # maxLength counts characters, bcrypt bytes
    expires_at = body.get("expires_at")
    if isinstance(expires_at, str):
        try:
            expiry = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            expiry = None
        if expiry is not None and (
            expiry.tzinfo is None or expiry <= datetime.now(UTC) + timedelta(minutes=1)
        ):
            return "API key expiry not in the future, or without a time zone"  # relative to the clock
    if case.query and case.query.get("cursor") is not None:
        return "cursor that is not one the API issued"  # opaque: its format is the API's to change
    return None


@pytest.fixture(scope="module")
def fuzz_client(base_url, request):
    """The base URL, with an admin of an organisation of its own; prints the request count at the end."""
    TOKEN["value"] = register(base_url, "Fuzz").headers["Authorization"].removeprefix("Bearer ")
    yield base_url
    documented = {k: v for k, v in REQUESTS.items() if k[0] != "undocumented"}
    line = (
        f"schemathesis: {sum(REQUESTS.values())} generated requests: "
        + ", ".join(f"{method} {path} {count}" for (method, path), count in sorted(documented.items()))
        + f"; {REQUESTS.get(('undocumented', 'method'), 0)} with undocumented methods"
    )
    # Printed past pytest's capture, so that every run shows it.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


@schema.parametrize()
# No example database: nothing written into the work tree, and every run explores afresh.
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=MAX_EXAMPLES, database=None)
def test_api_conforms_to_its_schema(case, fuzz_client):
    base_url = fuzz_client
    documented = case.method.lower() in schema.raw_schema["paths"].get(case.operation.path, {})
    REQUESTS[(case.method, case.operation.path) if documented else ("undocumented", "method")] += 1
    if (case.headers or {}).get("Authorization") == f"Bearer {PLACEHOLDER}":
        case.headers["Authorization"] = f"Bearer {TOKEN['value']}"
    reason = _inexpressible(case)
    excluded = [positive_data_acceptance] if reason else []
    response = case.call_and_validate(base_url=base_url, excluded_checks=excluded, timeout=30)
    if reason and response.status_code in (400, 422):
        assert set(json.loads(response.text)["error"]) == {"code", "message"}, (reason, response.text)
