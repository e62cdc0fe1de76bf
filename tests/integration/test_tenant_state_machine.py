"""Two tenants acting in random order through the real handlers and the real database (Hypothesis
rule-based state machine): registering users, uploading, deleting, re-ingesting, ingesting and querying,
synchronously and streamed, and trying each other's ids. Invariant: no response to one tenant ever
contains the other tenant's ids or text; what the other tenant tries on its ids is 404.

Both tenants also hold the very same sentence, so that identical text is no way across either.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from starlette.testclient import TestClient

from tests.integration.test_stream import _load_stream_app

SHARED = "The quarterly report is due on the first Monday of the month."
TENANTS = ("a", "b")
# Bounded for make test: a run of this size takes well under a minute on two cores.
EXAMPLES = 8
STEPS = 15


def _word() -> str:
    """A word found nowhere else: the tenant's secret text, so that a leak is unambiguous."""
    return "zq" + uuid.uuid4().hex[:12]


def _address() -> str:
    """A client address of its own (TEST-NET-2). Not from `random`, which Hypothesis seeds the same way
    in every run: every registration would then come from one address and meet its rate limit."""
    octets = uuid.uuid4().bytes
    return f"198.51.{octets[0]}.{octets[1] % 254 + 1}"


class Tenant:
    def __init__(self, platform, name: str):
        body = {
            "org_name": f"Tenant {name} {uuid.uuid4().hex[:6]}",
            "email": f"{uuid.uuid4().hex[:10]}@example.com",
            "password": "correct-horse-1",
        }
        result = platform.request("POST", "/api/v1/auth/register", body, source_ip=_address())
        assert result.status == 201, result.body
        registered = result.body
        self.name = name
        self.admin = registered["token"]
        self.tokens = [registered["token"]]
        self.org_id = registered["org"]["id"]
        self.user_ids = [registered["user"]["id"]]
        self.documents: list[str] = []  # ids of its live documents
        self.secrets: set[str] = {self.org_id, *self.user_ids}  # ids and words of everything it ever had

    def new_content(self) -> tuple[str, str]:
        word = _word()
        self.secrets.add(word)
        return word, f"{SHARED} The {word} project belongs to tenant {self.name}; its code word is {word}."


class TwoTenants(RuleBasedStateMachine):
    platform = None  # set by the test
    stream_client: TestClient | None = None

    def __init__(self):
        super().__init__()
        self.tenants = {name: Tenant(self.platform, name) for name in TENANTS}
        self.responses = 0

    # -- helpers -------------------------------------------------------------------------------------

    def other(self, name: str) -> Tenant:
        return self.tenants["b" if name == "a" else "a"]

    def check(self, name: str, payload, asked: str = "") -> None:
        """The invariant, on one response to tenant ``name``. ``asked`` is what the caller itself sent:
        an answer may quote the question (an abstention saying what it could not find), so words of the
        other tenant that the caller typed do not count in the answer; anywhere else they do."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        leaked = [secret for secret in self.other(name).secrets if secret in text and secret not in asked]
        assert not leaked, f"tenant {name} was shown {leaked} of the other tenant: {text[:500]}"
        self.responses += 1

    def check_answer(self, name: str, sources: list, answer: str, asked: str) -> None:
        """Sources hold nothing of the other tenant at all; the answer nothing the caller did not type."""
        self.check(name, sources)
        self.check(name, answer, asked)

    def call(self, name: str, method: str, path: str, body=None, token: str | None = None, query: str = ""):
        tenant = self.tenants[name]
        token = token or tenant.admin
        result = self.platform.request(method, path, body, token=token, query=query, source_ip=_address())
        assert result.status < 500, (method, path, result.status, result.body)
        self.check(name, result.body if result.body is not None else "")
        return result

    # -- rules ---------------------------------------------------------------------------------------

    @rule(name=st.sampled_from(TENANTS), role=st.sampled_from(["admin", "member"]))
    def add_user(self, name, role):
        tenant = self.tenants[name]
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        body = {"email": email, "password": "correct-horse-2", "role": role}
        created = self.call(name, "POST", "/api/v1/users", body)
        assert created.status == 201, created.body
        tenant.user_ids.append(created.body["user"]["id"])
        tenant.secrets.update({created.body["user"]["id"], email})
        login = self.call(name, "POST", "/api/v1/auth/login", {"email": email, "password": "correct-horse-2"})
        assert login.status == 200, login.body
        tenant.tokens.append(login.body["token"])

    @rule(name=st.sampled_from(TENANTS), who=st.integers(0, 10))
    def upload(self, name, who):
        tenant = self.tenants[name]
        word, content = tenant.new_content()
        token = tenant.tokens[who % len(tenant.tokens)]
        body = {"name": f"{word}.txt", "content": content, "metadata": {"owner": word}}
        created = self.call(name, "POST", "/api/v1/documents", body, token=token)
        assert created.status == 202, created.body
        tenant.documents.append(created.body["document"]["id"])
        tenant.secrets.add(created.body["document"]["id"])

    @rule()
    def ingest(self):
        self.platform.ingest_all()

    @rule(name=st.sampled_from(TENANTS), pick=st.integers(0, 100))
    def delete(self, name, pick):
        tenant = self.tenants[name]
        if not tenant.documents:
            return
        doc_id = tenant.documents.pop(pick % len(tenant.documents))
        # The other tenant's admin cannot delete it (404), then its own admin can.
        assert self.call(self.other(name).name, "DELETE", f"/api/v1/documents/{doc_id}").status == 404
        assert self.call(name, "DELETE", f"/api/v1/documents/{doc_id}").status == 204

    @rule(name=st.sampled_from(TENANTS), pick=st.integers(0, 100))
    def reingest(self, name, pick):
        tenant = self.tenants[name]
        if not tenant.documents:
            return
        doc_id = tenant.documents[pick % len(tenant.documents)]
        assert self.call(self.other(name).name, "POST", f"/api/v1/documents/{doc_id}/reingest").status == 404
        result = self.call(name, "POST", f"/api/v1/documents/{doc_id}/reingest")
        assert result.status in (202, 409), result.body

    @rule(name=st.sampled_from(TENANTS), pick=st.integers(0, 100))
    def read_the_others_document(self, name, pick):
        other = self.other(name)
        targets = other.documents + other.user_ids[1:]
        if not targets:
            return
        target = targets[pick % len(targets)]
        for path in (f"/api/v1/documents/{target}", f"/api/v1/documents/{target}/reingest"):
            method = "GET" if path.endswith(target) else "POST"
            assert self.call(name, method, path).status == 404
        assert self.call(name, "DELETE", f"/api/v1/users/{target}").status == 404

    @rule(name=st.sampled_from(TENANTS))
    def list_everything(self, name):
        for path, query in (("/api/v1/documents", "limit=100"), ("/api/v1/users", ""), ("/api/v1/me", "")):
            assert self.call(name, "GET", path, query=query).status == 200

    @rule(
        name=st.sampled_from(TENANTS),
        about_the_other=st.booleans(),
        mode=st.sampled_from(["hybrid", "dense", "lexical"]),
        streamed=st.booleans(),
        who=st.integers(0, 10),
        restrict=st.booleans(),
    )
    def query(self, name, about_the_other, mode, streamed, who, restrict):
        tenant, other = self.tenants[name], self.other(name)
        # Asking with the other tenant's secret words (and its document ids as a filter) is the attack.
        words = sorted(other.secrets if about_the_other else tenant.secrets)[:3]
        body = {
            "question": f"What is the code word of the {' '.join(words)} project?",
            "mode": mode,
            "top_k": 10,
        }
        restricted_to = (other.documents if about_the_other else tenant.documents)[:5]
        if restrict and restricted_to:
            body["document_ids"] = restricted_to
        if about_the_other:
            body["filters"] = {"owner": words[0]}
        token = tenant.tokens[who % len(tenant.tokens)]
        if streamed:
            response = self.stream_client.post(
                "/api/v1/query", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            events = [
                (frame.split("\n")[0].removeprefix("event: "), json.loads(frame.split("\ndata: ", 1)[1]))
                for frame in response.text.split("\n\n")
                if frame.startswith("event: ")
            ]
            sources = [data for kind, data in events if kind == "sources"]
            answer = "".join(data["text"] for kind, data in events if kind == "token")
            rest = [data for kind, data in events if kind not in ("sources", "token")]
            self.check_answer(name, sources, answer, json.dumps(body))
            self.check(name, rest)
        else:
            result = self.platform.request(
                "POST", "/api/v1/query/sync", body, token=token, source_ip=_address()
            )
            assert result.status == 200, result.body
            answer = result.body.pop("answer")
            self.check_answer(name, result.body.pop("sources"), answer, json.dumps(body))
            self.check(name, result.body)

    def teardown(self):
        # Leave no message behind for the tests that come after (they count their own deliveries).
        self.platform.ingest_all()

    @invariant()
    def documents_are_where_they_belong(self):
        """The database agrees: each tenant's live documents carry its org id, none the other's."""
        for tenant in self.tenants.values():
            if tenant.documents:
                rows = self.platform.owner_query(
                    "SELECT DISTINCT org_id::text FROM documents WHERE id = ANY(%s::uuid[])",
                    (tenant.documents,),
                )
                assert rows == [(tenant.org_id,)], rows


def test_two_tenants_never_see_each_other(platform):
    started = time.monotonic()
    with TestClient(_load_stream_app()) as client:
        TwoTenants.platform, TwoTenants.stream_client = platform, client
        run_state_machine_as_test(
            TwoTenants,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                # No shrinking: each step is real work, and a failure prints its steps anyway.
                phases=(Phase.explicit, Phase.generate),
            ),
        )
    elapsed = time.monotonic() - started
    print(f"two-tenant state machine: {EXAMPLES} runs of up to {STEPS} steps in {elapsed:.1f}s")


@pytest.mark.parametrize("leak", ["id", "word"])
def test_the_invariant_notices_a_leak(platform, leak):
    """Not vacuous: a response carrying the other tenant's id or secret word fails the check."""
    TwoTenants.platform = platform
    machine = TwoTenants()
    a, b = machine.tenants["a"], machine.tenants["b"]
    word, _ = b.new_content()
    payload = {"sources": [{"document_id": b.org_id if leak == "id" else str(uuid.uuid4()), "content": word}]}
    if leak == "id":
        payload["sources"][0]["content"] = "nothing secret"
    with pytest.raises(AssertionError, match="of the other tenant"):
        machine.check(a.name, payload)
    # In sources, a word of the other tenant counts even when the caller typed it in the question.
    with pytest.raises(AssertionError, match="of the other tenant"):
        machine.check_answer(a.name, payload["sources"], "nothing", asked=json.dumps(payload))
