"""The embedding model shipped ready to load: built once by ``make build``, verified at every load.

In AWS the embed layer carries no safetensors file, no ``onnx`` and no ``safetensors`` package: it carries
the graphs :func:`ragcore.embeddings.onnx_build.build_checked_models` writes (the same function the
run-time cache uses, so the same graphs) in a small package, :data:`PACKAGE`, found on ``sys.path``::

    ragcore_model/
        __init__.py       marks the directory as importable, nothing else
        int8.onnx         the int8 build (texts longer than 16 word pieces)
        fp32.onnx         the float32 build (short texts, queries mostly)
        weights.bin       the tensors of both graphs, each distinct tensor once (ONNX external data)
        tokenizer.json    the model's WordPiece tokenizer
        manifest.json     weights hash, build version, variant digests, sha256 of every file

The two builds share their embedding tables and normalisation parameters (about half of the float32
model), so storing each distinct tensor once in ``weights.bin`` saves ~50 MB against two self-contained
files. The graphs are ONNX, not machine code: onnxruntime picks its kernels for the CPU it runs on.

Every file's sha256 is checked against the manifest before its first use in a process (a changed file is
checked again). A manifest from another build version, weights file or variant recipe is refused: the
layer must be rebuilt with the ragcore it ships with.

Locally (and in the tests) the package is absent and the model is built from the pip-installed weights
and cached, as before: :func:`ragcore.embeddings.onnx_build.ensure_model` is the one loader of both.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from ragcore.embeddings.errors import ModelIntegrityError
from ragcore.embeddings.weights import MODEL_NAME, WEIGHTS_SHA256, sha256_file

PACKAGE = "ragcore_model"
MANIFEST = "manifest.json"
DATA_FILE = "weights.bin"
TOKENIZER = "tokenizer.json"
# The builds the local embedder loads at run time (int8 by default, fp32 for short batches).
SHIPPED_VARIANTS = ("int8", "fp32")
# Tensors smaller than this stay inside the graph file (shape constants, scales): not worth a lookup.
EXTERNAL_THRESHOLD = 1024
# External tensors start on a page boundary, so onnxruntime can map them instead of copying.
ALIGNMENT = 4096


def prebuilt_dir() -> Path | None:
    """The directory of the shipped model package, or None when it is not installed (local runs)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)))
    return path if (path / MANIFEST).is_file() else None


def read_manifest(directory: Path) -> dict:
    """The manifest, after checking it was written for this ragcore's weights, build version and recipes."""
    from ragcore.embeddings.onnx_build import BUILD_VERSION, variant_digest

    manifest = json.loads((directory / MANIFEST).read_text())
    expected = {"model": MODEL_NAME, "weights_sha256": WEIGHTS_SHA256, "build_version": BUILD_VERSION}
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ModelIntegrityError(
                f"the shipped model in {directory.name} has {key}={manifest.get(key)!r}, this ragcore needs "
                f"{value!r}: rebuild the embed layer (make build)"
            )
    for name, entry in manifest.get("variants", {}).items():
        if entry.get("definition") != variant_digest(name):
            raise ModelIntegrityError(
                f"the shipped {name} model comes from another recipe: rebuild the embed layer (make build)"
            )
    return manifest


@lru_cache(maxsize=16)
def _checked(path: Path, expected: str, mtime_ns: int, size: int) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"refusing to load {path.name}: sha256 {actual} does not match the manifest's {expected}"
        )


def verified_file(directory: Path, manifest: dict, name: str) -> Path:
    """``directory/name`` once its sha256 matched the manifest (once per process per file version)."""
    expected = manifest.get("files", {}).get(name)
    if expected is None:
        raise ModelIntegrityError(f"the shipped model's manifest lists no {name}")
    path = directory / name
    stat = path.stat()
    _checked(path, expected, stat.st_mtime_ns, stat.st_size)
    return path


def model_path(variant: str) -> Path | None:
    """The verified shipped graph of ``variant`` (its external data verified too), or None when no model
    is shipped or this variant is not among the shipped ones."""
    directory = prebuilt_dir()
    if directory is None:
        return None
    manifest = read_manifest(directory)
    entry = manifest.get("variants", {}).get(variant)
    if entry is None:
        return None
    for name in entry.get("external", []):
        verified_file(directory, manifest, name)
    return verified_file(directory, manifest, entry["file"])


def tokenizer_path() -> Path | None:
    """The verified shipped tokenizer.json, or None when no model is shipped."""
    directory = prebuilt_dir()
    if directory is None:
        return None
    return verified_file(directory, read_manifest(directory), TOKENIZER)


def _externalize(models: dict, data_path: Path) -> None:
    """Move every initializer of at least EXTERNAL_THRESHOLD bytes into one data file, each distinct tensor
    (same type, shape and bytes) once, page-aligned; the graphs refer to it by offset."""
    from onnx import external_data_helper

    offsets: dict[str, tuple[int, int]] = {}
    with open(data_path, "wb") as data:
        for model in models.values():
            for tensor in model.graph.initializer:
                raw = tensor.raw_data
                if len(raw) < EXTERNAL_THRESHOLD:
                    continue
                key = hashlib.sha256(f"{tensor.data_type}:{list(tensor.dims)}:".encode() + raw).hexdigest()
                if key not in offsets:
                    position = data.tell()
                    start = position + (-position % ALIGNMENT)
                    data.write(b"\0" * (start - position))
                    data.write(raw)
                    offsets[key] = (start, len(raw))
                offset, length = offsets[key]
                external_data_helper.set_external_data(tensor, data_path.name, offset, length)
                tensor.ClearField("raw_data")


def write_prebuilt(
    target: Path, variants: Sequence[str] = SHIPPED_VARIANTS, model_directory: Path | None = None
) -> dict:
    """Build ``variants`` from the hash-checked weights into the package directory ``target`` (replaced),
    with the tokenizer and a manifest of sha256 digests; returns the manifest. Used by ``make build``."""
    import onnx

    from ragcore.embeddings.onnx_build import BUILD_VERSION, VARIANTS, build_checked_models, variant_digest
    from ragcore.embeddings.weights import model_dir

    models = build_checked_models([VARIANTS[name] for name in variants], model_directory)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "__init__.py").write_text(
        '"""all-MiniLM-L6-v2 built for onnxruntime by ragcore (see manifest.json)."""\n'
    )
    _externalize(models, staging / DATA_FILE)
    for name, model in models.items():
        onnx.save_model(model, str(staging / f"{name}.onnx"))
    shutil.copyfile((model_directory or model_dir()) / TOKENIZER, staging / TOKENIZER)
    files = sorted(p.name for p in staging.iterdir() if p.name not in ("__init__.py",))
    manifest = {
        "model": MODEL_NAME,
        "weights_sha256": WEIGHTS_SHA256,
        "build_version": BUILD_VERSION,
        "variants": {
            name: {"file": f"{name}.onnx", "definition": variant_digest(name), "external": [DATA_FILE]}
            for name in models
        },
        "files": {name: sha256_file(staging / name) for name in files},
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return manifest
