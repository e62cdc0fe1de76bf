"""The README's quick start, run as written (bash and curl) against the local stack."""

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_API = "http://127.0.0.1:8080/api/v1"


def quick_start_script() -> str:
    section = README.read_text().split("## Quick start", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="the quick start uses curl")
def test_quick_start_runs_as_written(base_url):
    script = quick_start_script()
    assert f"API={DEFAULT_API}" in script, "the quick start must talk to the default port"
    script = script.replace(f"API={DEFAULT_API}", f"API={base_url}/api/v1")
    runs = [
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120
        )
        for _ in range(2)
    ]
    # It can be run twice: the second registration is 409, the sign-in that follows still gives a token.
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
    assert [run.stdout.splitlines()[0] for run in runs] == ["201", "409"]
    result = runs[1]
    outputs = [line for line in result.stdout.splitlines() if line.startswith("{")]
    document = json.loads(outputs[0])["document"]
    assert document["status"] == "ready" and document["name"] == "handbook.txt"
    answer = json.loads(outputs[1])
    assert "twenty-five days of paid vacation" in answer["answer"]
    assert answer["sources"][0]["document_name"] == "handbook.txt"
    # The streamed answer: sources first, tokens, then done.
    events = re.findall(r"^event: (\w+)", result.stdout, re.M)
    assert events[0] == "sources" and events[-1] == "done" and "token" in events


def readme_block(heading: str) -> str:
    section = README.read_text().split(heading, 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="the example uses curl")
def test_conversation_example_runs_as_written(base_url):
    """The quick start, then the README's conversation example in the same shell."""
    script = quick_start_script() + readme_block("### Conversations")
    script = script.replace(f"API={DEFAULT_API}", f"API={base_url}/api/v1")
    # An account of its own, whichever of the README tests runs first.
    assert script.count("ada@acme.test") == 2
    script = script.replace("ada@acme.test", f"ada-{uuid.uuid4().hex[:8]}@acme.test")
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    outputs = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    first, follow_up, stored = outputs[-3:]
    assert first["conversation"]["retrieval"]["method"] == "question"
    assert follow_up["conversation"]["retrieval"]["method"] == "with_history"
    assert "three days per week" in follow_up["answer"]
    assert stored["conversation"]["turn_count"] == 2
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    assert stored["messages"][3]["sources"] == follow_up["sources"]


def file_upload_script() -> str:
    """The quick start's second block (a file upload), which runs after the first (API, TOKEN)."""
    section = README.read_text().split("## Quick start", 1)[1]
    return re.findall(r"```bash\n(.*?)```", section, re.S)[1]


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="the quick start uses curl")
def test_quick_start_file_upload_runs_as_written(base_url, tmp_path):
    script = (quick_start_script() + file_upload_script()).replace(
        f"API={DEFAULT_API}", f"API={base_url}/api/v1"
    )
    # An account of its own, whichever of the README tests runs first.
    script = script.replace("ada@acme.test", f"ada-{uuid.uuid4().hex[:8]}@acme.test")
    runs = [
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    documents = [
        json.loads(line)["document"]
        for run in runs
        for line in run.stdout.splitlines()
        if line.startswith('{"document"') and json.loads(line)["document"]["name"] == "expenses.md"
    ]
    first, second = documents
    assert first["status"] == "ready" and first["content_type"] == "text/markdown", first
    # Run again: the same bytes are a duplicate of the first upload, and nothing is embedded twice.
    assert second["status"] == "failed" and second["duplicate_of"] == first["id"], second
    for run in runs:
        answer = json.loads([line for line in run.stdout.splitlines() if line.startswith('{"answer"')][-1])
        assert "45 euros" in answer["answer"]
        assert answer["sources"][0]["document_name"] == "expenses.md"
        assert answer["sources"][0]["headings"] == ["Expenses", "Meals"]
