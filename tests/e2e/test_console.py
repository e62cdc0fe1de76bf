"""The web console in a real headless browser (Debian's chromium driven by Playwright) against the local
stack over HTTP: sign up, add a document, watch it become ready, ask, read the streamed answer and open
the source a citation points to; a conversation with a follow-up that is still there after a reload; an
API key created, its secret shown once, used over HTTP and revoked; files uploaded from the picker and
by drag and drop to the presigned URLs, cited by page; plus the members screen and API errors shown as
the API words them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
import requests

from tests.e2e.conftest import DOCUMENT, QUESTION, REPO

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")
expect = sync_api.expect
# A sign-in runs bcrypt (cost 12) in the local stack; on a loaded 2-core machine an answer can take
# longer than Playwright's default 5 s: assertions wait up to 20 s (they return as soon as they hold).
expect.set_options(timeout=20_000)

PASSWORD = "a long passphrase 42"
FLOW_BUDGET_SECONDS = 60


def chromium_path() -> str | None:
    """Debian's chromium (`make test` installs it when missing); CHROMIUM names another build."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def console_url(base_url):
    # The stack serves web/dist as it is on disk: build it when a source changed (a no-op otherwise).
    if shutil.which("npm") is None:
        pytest.fail("npm is needed to build the web console (Node 20+)")
    built = subprocess.run(["make", "-s", "console"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    return f"{base_url}/"


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no chromium: `make test` installs Debian's (apt-get install chromium) when it runs as root; "
            "set CHROMIUM=/path/to/chromium otherwise"
        )
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    # Clipboard permissions: the API keys screen copies a secret with the asynchronous clipboard API.
    context = browser.new_context(
        viewport={"width": 1200, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    # Console errors include Content-Security-Policy violations and failed loads of the page's files.
    page.on(
        "console",
        lambda message: (
            message.type == "error" and not expected_error(message.text) and page_errors.append(message.text)
        ),
    )
    yield page
    context.close()
    assert page_errors == [], page_errors


def expected_error(text: str) -> bool:
    """The API's own refusals that the tests provoke on purpose (chromium logs every 4xx fetch)."""
    return any(f"status of {status}" in text for status in (401, 404, 409, 422))


UNLABELLED = """() => [...document.querySelectorAll("input, textarea, select, button, a[href]")]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)
        ? !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
        : !(el.textContent.trim() || el.getAttribute("aria-label")))
    .map((el) => el.outerHTML)"""


def assert_every_control_is_labelled(page) -> None:
    """Each visible field has a label tied to it, each button and link a name (what a screen reader says)."""
    assert page.evaluate(UNLABELLED) == []


def sign_up(page, console_url: str, org: str) -> str:
    email = f"admin-{uuid.uuid4().hex[:8]}@{org.lower()}.example"
    page.goto(console_url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Create an organisation").click()
    page.get_by_label("Organisation name").fill(org)
    page.get_by_label("Your e-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    assert_every_control_is_labelled(page)
    page.get_by_role("button", name="Create organisation").click()
    expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()
    return email


def session_token(page) -> str:
    return page.evaluate("JSON.parse(sessionStorage.getItem('rag-console-session')).token")


def add_ready_document(base_url: str, token: str, name: str, content: str) -> str:
    """Adds a document over the API (the documents screen has its own test) and waits until it is ready."""
    headers = {"Authorization": f"Bearer {token}"}
    created = requests.post(
        f"{base_url}/api/v1/documents", json={"name": name, "content": content}, headers=headers, timeout=30
    )
    assert created.status_code == 202, created.text
    document = created.json()["document"]
    deadline = time.monotonic() + 45
    while document["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"{name} still {document['status']}"
        time.sleep(0.3)
        document = requests.get(
            f"{base_url}/api/v1/documents/{document['id']}", headers=headers, timeout=30
        ).json()["document"]
    assert document["status"] == "ready", document
    return document["id"]


def test_sign_up_add_a_document_ask_and_open_the_cited_source(page, console_url, base_url):
    started = time.monotonic()
    sign_up(page, console_url, "Harbourview")
    # The new screen's heading has the focus (keyboard and screen-reader users land on it).
    expect(page.get_by_role("heading", name="Documents", level=1)).to_be_focused()

    page.get_by_label("Name", exact=True).fill("bakery.txt")
    page.get_by_label("Content").fill(DOCUMENT)
    page.get_by_role("button", name="Add document").click()
    row = page.locator("tr", has=page.get_by_role("rowheader", name="bakery.txt"))
    expect(row).to_be_visible()
    # Polling moves the status on without a reload, to ready.
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "ready", timeout=45_000)
    expect(row.get_by_role("cell").nth(1)).not_to_have_text("–")  # the chunk count is filled in
    assert_every_control_is_labelled(page)

    page.get_by_role("link", name="Ask").click()
    expect(page.get_by_role("heading", name="Ask", level=1)).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/query")) as streamed:
        page.get_by_role("textbox", name="Question").fill(QUESTION)
        page.get_by_role("textbox", name="Question").press("Enter")  # the keyboard sends
    assert streamed.value.headers["content-type"].startswith("text/event-stream")
    answer = page.locator("article.answer").last
    expect(answer).to_have_attribute("data-complete", "true", timeout=30_000)
    text = answer.locator(".answer-text")
    assert int(text.get_attribute("data-tokens")) > 3  # shown piece by piece as the events arrived
    shown = text.inner_text()
    assert "Vexley" in shown

    # The answer on the page is exactly the API's answer (the sync endpoint gives the same text).
    token = page.evaluate("JSON.parse(sessionStorage.getItem('rag-console-session')).token")
    sync = requests.post(
        f"{base_url}/api/v1/query/sync",
        json={"question": QUESTION, "top_k": 5},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ).json()
    assert shown == sync["answer"]

    # A citation [n] is a link that opens source n: its document name and snippet.
    citation = answer.locator("a.citation").first
    expect(citation).to_have_text(re.compile(r"\[\d+\]"))
    number = int(citation.get_attribute("data-source"))
    cited = sync["sources"][number - 1]
    source = answer.locator("details.source").nth(number - 1)
    expect(source).not_to_have_attribute("open", "")
    assert_every_control_is_labelled(page)
    citation.focus()
    page.keyboard.press("Enter")  # a link: the keyboard follows it as a click would
    expect(source).to_have_attribute("open", "")
    expect(source.locator("summary")).to_be_focused()
    expect(source.locator("summary")).to_contain_text("bakery.txt")
    expect(source.locator(".snippet")).to_be_visible()
    expect(source.locator(".snippet")).to_have_text(cited["content"])

    elapsed = time.monotonic() - started
    assert elapsed < FLOW_BUDGET_SECONDS, f"the flow took {elapsed:.1f} s"


def test_admin_adds_a_member_and_errors_show_the_api_message(page, console_url):
    sign_up(page, console_url, "Quayside")
    page.get_by_label("Name", exact=True).fill("notice.txt")
    page.get_by_label("Content").fill("The quay is closed for repairs in February.")
    page.get_by_role("button", name="Add document").click()
    expect(page.get_by_role("button", name="Delete notice.txt")).to_be_visible()  # an admin's row
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
    member = f"member-{uuid.uuid4().hex[:8]}@quayside.example"
    page.get_by_label("E-mail").fill(member)
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("rowheader", name=member)).to_be_visible()
    assert_every_control_is_labelled(page)

    # Adding the same address again: the API's 409 body, worded as it is, in an alert.
    page.get_by_label("E-mail").fill(member)
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_role("button", name="Add member").click()
    alert = page.get_by_role("alert").filter(has_text=re.compile(r"\S"))
    expect(alert).to_be_visible()
    token = page.evaluate("JSON.parse(sessionStorage.getItem('rag-console-session')).token")
    conflict = requests.post(
        f"{console_url}api/v1/users",
        json={"email": member, "password": PASSWORD, "role": "member"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert conflict.status_code == 409
    conflict = conflict.json()["error"]["message"]
    expect(alert).to_contain_text(conflict.rstrip("."))

    # A member sees no Members screen; a wrong password shows the API's 401 message.
    page.get_by_role("button", name="Sign out").click()
    # The Members screen has an "E-mail" field too: type only once the sign-in form has replaced it.
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    page.get_by_label("E-mail").fill(member)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Members")).to_have_count(0)
    expect(page.get_by_role("link", name="API keys")).to_have_count(0)  # keys are for administrators
    expect(page.get_by_role("rowheader", name="notice.txt")).to_be_visible()  # members read documents
    expect(page.get_by_role("button", name=re.compile("^(Delete|Re-ingest)"))).to_have_count(0)


def test_reingest_then_delete_a_document(page, console_url, base_url):
    sign_up(page, console_url, "Dockside")
    page.get_by_label("Name", exact=True).fill("tides.txt")
    page.get_by_label("Content").fill(
        "High tide at the Dockside pier comes twice a day, about every 12 hours."
    )
    page.get_by_label("Metadata (optional JSON object)").fill('["not", "an object"]')
    page.get_by_role("button", name="Add document").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Metadata must be a JSON object"
    )  # checked before sending
    page.get_by_label("Metadata (optional JSON object)").fill('{"team": "harbour"}')
    page.get_by_role("button", name="Add document").click()
    row = page.locator("tr", has=page.get_by_role("rowheader", name="tides.txt"))
    status = row.locator("[data-status]")
    expect(status).to_have_attribute("data-status", "ready", timeout=45_000)
    document_id = row.get_attribute("data-document-id")
    token = page.evaluate("JSON.parse(sessionStorage.getItem('rag-console-session')).token")
    headers = {"Authorization": f"Bearer {token}"}
    before = requests.get(f"{base_url}/api/v1/documents/{document_id}", headers=headers, timeout=30).json()
    assert before["document"]["metadata"] == {"team": "harbour"}

    row.get_by_role("button", name="Re-ingest tides.txt").click()
    # It goes back through ingestion (the API answered 202 pending; the row shows it until the next poll)
    # and polling brings it to ready again.
    expect(status).to_have_attribute("data-status", re.compile("pending|processing"))
    expect(row.get_by_role("button", name="Re-ingest tides.txt")).to_be_disabled()
    expect(status).to_have_attribute("data-status", "ready", timeout=45_000)
    after = requests.get(f"{base_url}/api/v1/documents/{document_id}", headers=headers, timeout=30).json()
    assert after["document"]["updated_at"] > before["document"]["updated_at"]

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete tides.txt").click()
    expect(page.get_by_role("rowheader", name="tides.txt")).to_have_count(0)
    expect(page.get_by_text("No documents yet")).to_be_visible()
    gone = requests.get(f"{base_url}/api/v1/documents/{document_id}", headers=headers, timeout=30)
    assert gone.status_code == 404


def test_a_refused_token_ends_the_session_with_a_message(page, console_url):
    sign_up(page, console_url, "Lighthouse")
    page.reload()  # the session survives a reload of the tab
    expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()
    page.evaluate(
        """() => {
            const key = 'rag-console-session';
            const session = JSON.parse(sessionStorage.getItem(key));
            sessionStorage.setItem(key, JSON.stringify({...session, token: session.token + 'x'}));
        }"""
    )
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Your session has ended: sign in again.")
    assert page.evaluate("sessionStorage.getItem('rag-console-session')") is None


FOLLOW_UP = "And on which day is it closed?"


def test_a_conversation_with_a_follow_up_is_there_after_a_reload(page, console_url, base_url):
    started = time.monotonic()
    sign_up(page, console_url, "Millbrook")
    token = session_token(page)
    headers = {"Authorization": f"Bearer {token}"}
    add_ready_document(base_url, token, "bakery.txt", DOCUMENT)

    page.get_by_role("link", name="Ask").click()
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    question = page.get_by_role("textbox", name="Question")
    question.fill(QUESTION)
    question.press("Enter")
    answers = page.locator("article.answer")
    expect(answers.first).to_have_attribute("data-complete", "true", timeout=30_000)
    # The first question created the conversation: the address names it, the list shows it by that
    # question (the API's title for an untitled conversation).
    expect(page).to_have_url(re.compile(r"#/ask/[0-9a-f-]{36}$"))
    conversation_id = page.url.rsplit("/", 1)[1]
    link = page.get_by_role("link", name=re.compile(re.escape(QUESTION)))
    expect(link).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name=QUESTION, level=2)).to_be_visible()

    question.fill(FOLLOW_UP)
    question.press("Enter")
    expect(answers).to_have_count(2)
    expect(answers.nth(1)).to_have_attribute("data-complete", "true", timeout=30_000)
    assert "Sundays" in answers.nth(1).locator(".answer-text").inner_text()
    # What retrieval searched with (the extractive default: the follow-up with the earlier question).
    note = page.locator(".turn").nth(1).locator(".retrieval")
    expect(note).to_contain_text("earlier questions")
    expect(note).to_contain_text(FOLLOW_UP)
    expect(link).to_contain_text("2 questions")

    # The API stored both turns, in order, and the stored answers are what the page showed.
    stored = requests.get(f"{base_url}/api/v1/conversations/{conversation_id}", headers=headers, timeout=30)
    assert stored.status_code == 200, stored.text
    messages = stored.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [messages[0]["content"], messages[2]["content"]] == [QUESTION, FOLLOW_UP]
    assert messages[2]["retrieval"]["method"] == "with_history"
    shown = [answers.nth(i).locator(".answer-text").inner_text() for i in range(2)]
    assert shown == [messages[1]["content"], messages[3]["content"]]

    page.reload()
    expect(page.get_by_role("heading", name="Ask", level=1)).to_be_visible()
    # (Each question starts with a "Question: " for screen readers, hidden on screen.)
    expect(page.locator(".question")).to_have_text([f"Question: {QUESTION}", f"Question: {FOLLOW_UP}"])
    expect(answers).to_have_count(2)
    assert [answers.nth(i).locator(".answer-text").inner_text() for i in range(2)] == shown
    expect(page.locator(".turn").nth(1).locator(".retrieval")).to_contain_text(FOLLOW_UP)
    # A stored answer's citation opens its stored source, as a streamed one does.
    citation = answers.nth(1).locator("a.citation").first
    number = int(citation.get_attribute("data-source"))
    citation.click()
    source = answers.nth(1).locator("details.source").nth(number - 1)
    expect(source).to_have_attribute("open", "")
    expect(source.locator(".snippet")).to_have_text(messages[3]["sources"][number - 1]["content"])
    assert_every_control_is_labelled(page)

    # A new conversation starts empty; the first stays listed, and is deleted after a confirmation.
    page.get_by_role("button", name="New conversation").click()
    expect(page.get_by_role("heading", name="New conversation", level=2)).to_be_visible()
    expect(page.locator(".turn")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete conversation {QUESTION}").click()
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    gone = requests.get(f"{base_url}/api/v1/conversations/{conversation_id}", headers=headers, timeout=30)
    assert gone.status_code == 404

    # Its address now says it is gone, in an alert, and a question asked there starts a new one.
    page.goto(f"{console_url}#/ask/{conversation_id}")
    expect(page.get_by_role("alert")).to_contain_text("does not exist or has been deleted")
    expect(page).to_have_url(re.compile(r"#/ask$"))
    elapsed = time.monotonic() - started
    assert elapsed < FLOW_BUDGET_SECONDS, f"the flow took {elapsed:.1f} s"


def test_an_api_key_is_shown_once_works_over_http_and_is_revoked(page, console_url, base_url):
    sign_up(page, console_url, "Keystone")
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    expect(page.get_by_text("No API keys")).to_be_visible()

    page.get_by_label("Name", exact=True).fill("reporting bot")
    page.get_by_label("Scope").select_option("query")
    page.get_by_label("Expires (optional)").fill("2020-01-01T09:30")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("alert")).to_contain_text("must be in the future")  # checked before sending
    page.get_by_label("Expires (optional)").fill("2031-01-01T09:30")
    page.get_by_role("button", name="Create key").click()

    # The secret, once, with a warning; the panel's heading takes the focus.
    heading = page.get_by_role("heading", name="Copy the secret of reporting bot now")
    expect(heading).to_be_focused()
    expect(page.locator(".secret-panel")).to_contain_text("only time the secret is shown")
    secret = page.get_by_role("textbox", name="Secret").input_value()
    assert re.fullmatch(r"rag_[0-9A-Za-z]{43}", secret)
    # From the keyboard: the secret's field, then Copy.
    page.keyboard.press("Tab")
    expect(page.get_by_role("textbox", name="Secret")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Copy")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".secret-panel [role=status]")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    row = page.locator("tr", has=page.get_by_role("rowheader", name="reporting bot"))
    expect(row.get_by_role("cell").nth(0)).to_have_text(f"{secret[:12]}…")  # the prefix, never more
    expect(row.get_by_role("cell").nth(1)).to_have_text("query")
    expect(row.get_by_role("cell").nth(3)).to_have_text("Never")  # not used yet
    expect(row.locator("time").nth(1)).to_have_attribute("datetime", re.compile(r"^2031-01-0[12]T"))
    assert_every_control_is_labelled(page)

    # The program's side: the key works over HTTP within its scope, conversations excepted.
    key = {"Authorization": f"Bearer {secret}"}
    me = requests.get(f"{base_url}/api/v1/me", headers=key, timeout=30)
    assert me.status_code == 200, me.text
    asked = requests.post(
        f"{base_url}/api/v1/query/sync", json={"question": "Anything?"}, headers=key, timeout=60
    )
    assert asked.status_code == 200, asked.text
    refused = requests.get(f"{base_url}/api/v1/conversations", headers=key, timeout=30)
    assert refused.status_code == 403

    # Never shown again: gone from the page after a reload, which now shows the key's last use.
    page.reload()
    expect(page.get_by_role("rowheader", name="reporting bot")).to_be_visible()
    expect(page.locator(".secret-panel")).to_be_hidden()
    assert secret not in page.content()
    expect(row.get_by_role("cell").nth(3)).not_to_have_text("Never")

    # Revoking asks first; dismissing the question keeps the key.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Revoke reporting bot").click()
    expect(page.get_by_role("rowheader", name="reporting bot")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke reporting bot").click()
    expect(page.get_by_role("rowheader", name="reporting bot")).to_have_count(0)
    expect(page.get_by_text("No API keys")).to_be_visible()
    assert requests.get(f"{base_url}/api/v1/me", headers=key, timeout=30).status_code == 401


PDF_QUESTION = "What should the pressure gauge read when the heating is cold?"
NOTES = b"# Workshop notes\n\nThe lathe in the Boilerhouse workshop is oiled every Thursday.\n"
UPLOAD_BUDGET_SECONDS = 30


def drop_files(page, files: list[tuple[str, str, bytes]]) -> None:
    """Drops files on the upload zone, as a person dragging them from their desktop does."""
    page.evaluate(
        """(files) => {
            const data = new DataTransfer();
            for (const [name, type, bytes] of files) {
                data.items.add(new File([new Uint8Array(bytes)], name, {type}));
            }
            const zone = document.querySelector(".dropzone");
            const init = {dataTransfer: data, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent("dragover", init));
            zone.dispatchEvent(new DragEvent("drop", init));
        }""",
        [[name, content_type, list(data)] for name, content_type, data in files],
    )


def test_files_uploaded_from_the_console_are_cited_by_page_duplicates_and_refusals_said(
    page, console_url, base_url
):
    from tests.e2e.test_uploads import two_page_pdf

    started = time.monotonic()
    pdf = two_page_pdf()
    sign_up(page, console_url, "Boilerhouse")
    page.locator("summary", has_text="Files").click()  # the files panel of "Add a document"
    picker = page.get_by_label("Files", exact=True)
    assert_every_control_is_labelled(page)

    # Two files from the picker, each PUT to its presigned URL on the local S3 endpoint (another origin:
    # its CORS rules and the page's Content-Security-Policy both let the browser through), each with its
    # own progress bar. The Markdown file has no type in the browser: its extension gives text/markdown.
    puts = []
    page.on("request", lambda r: r.method == "PUT" and "X-Amz-Signature" in r.url and puts.append(r))
    picker.set_input_files(
        [
            {"name": "boiler-manual.pdf", "mimeType": "application/pdf", "buffer": pdf},
            {"name": "workshop.md", "mimeType": "", "buffer": NOTES},
        ]
    )
    for name in ("boiler-manual.pdf", "workshop.md"):
        upload = page.locator("li.upload", has_text=name)
        expect(upload).to_have_attribute("data-state", "uploaded")
        bar = upload.get_by_role("progressbar", name=f"Upload of {name}")
        expect(bar).to_have_attribute("aria-valuetext", re.compile(r"^100% "))
        row = page.locator("tr", has=page.get_by_role("rowheader", name=name))
        expect(row.locator("[data-status]")).to_have_attribute("data-status", "ready", timeout=45_000)
    assert sorted(r.headers["content-type"] for r in puts) == ["application/pdf", "text/markdown"]
    original = page.locator("tr", has=page.get_by_role("rowheader", name="boiler-manual.pdf"))
    original_id = original.get_attribute("data-document-id")

    # Dropped on the zone: the same PDF again (its duplicate names the first, with a link to its row) and
    # a file of a type the platform does not take (the API's 422, worded for people; no document).
    drop_files(
        page,
        [("copy of manual.pdf", "application/pdf", pdf), ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n")],
    )
    # Dropped beside the zone: nothing happens (the browser would otherwise leave the console for it).
    kept = page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["x"], "stray.txt", {type: "text/plain"}));
            return !document.body.dispatchEvent(
                new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }"""
    )
    assert kept is True
    expect(page.locator("li.upload", has_text="stray.txt")).to_have_count(0)
    refused = page.locator("li.upload", has_text="photo.png")
    expect(refused).to_have_attribute("data-state", "refused")
    expect(refused.get_by_role("alert")).to_contain_text("files of type image/png are not supported")
    expect(page.get_by_role("rowheader", name="photo.png")).to_have_count(0)
    copy = page.locator("tr", has=page.get_by_role("rowheader", name="copy of manual.pdf"))
    expect(copy.locator("[data-status]")).to_have_attribute("data-status", "failed", timeout=45_000)
    link = copy.get_by_role("link", name="boiler-manual.pdf")
    expect(copy.locator(".duplicate-of")).to_have_text("Duplicate of boiler-manual.pdf")
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"#/documents/{original_id}$"))
    expect(page.locator(f"tr[data-document-id='{original_id}']")).to_be_focused()
    assert_every_control_is_labelled(page)

    page.get_by_role("link", name="Ask").click()
    question = page.get_by_role("textbox", name="Question")
    question.fill(PDF_QUESTION)
    question.press("Enter")
    answer = page.locator("article.answer").last
    expect(answer).to_have_attribute("data-complete", "true", timeout=30_000)
    citation = answer.locator("a.citation").first
    citation.click()
    source = answer.locator("details.source").nth(int(citation.get_attribute("data-source")) - 1)
    expect(source).to_have_attribute("open", "")
    expect(source.locator("summary")).to_contain_text("boiler-manual.pdf")
    expect(source.locator("summary")).to_contain_text("page 2")
    expect(source.locator(".snippet")).to_contain_text("one and a half bar")
    elapsed = time.monotonic() - started
    assert elapsed < UPLOAD_BUDGET_SECONDS, f"the flow took {elapsed:.1f} s"
