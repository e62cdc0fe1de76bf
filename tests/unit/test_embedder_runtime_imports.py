"""The Lambda layer drops onnxruntime's Python tooling to fit the 250 MB limit (infra/build_assets.py):
the local embedder must build and run its model without it."""

import subprocess
import sys

PRUNED = ("onnxruntime.quantization", "onnxruntime.transformers", "onnxruntime.tools", "onnxruntime.datasets")

SCRIPT = f"""
import sys
from ragcore.config import Settings
from ragcore.embeddings import get_embedder
embedder = get_embedder(Settings(model_cache_dir=sys.argv[1]))
assert embedder.embed(["a short text", "a longer text " * 40]).shape == (2, 384)
print(",".join(m for m in sys.modules if m.startswith({PRUNED!r})))
"""


def test_embedding_never_imports_what_the_layer_prunes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300, check=True
    )
    assert result.stdout.strip() == ""
