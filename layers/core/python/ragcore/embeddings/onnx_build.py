"""Build the fast ONNX form of all-MiniLM-L6-v2 from the hash-checked safetensors weights, once.

The graph is written directly with the fused operators of onnxruntime's ``com.microsoft`` domain, the
same ones its transformer optimizer (``onnxruntime.transformers.optimizer``, model_type bert) produces
from an exported BERT: EmbedLayerNormalization (word + position + token-type embeddings and their
LayerNorm, plus the mask lengths), Attention (QKV projection in one GEMM, scaled softmax with the padding
mask, per head), SkipLayerNormalization (bias + residual + LayerNorm) and BiasGelu (exact erf GELU).
Writing the fused form directly needs neither torch nor the optimizer's pattern matching.

The dense layers are then quantized to int8 by this module rather than by ``quantize_dynamic``, for two
measured reasons (SciFact and cosine figures in docs/benchmarks.md):

* CPUs without AVX-512 VNNI (AVX2 only) multiply uint8 activations by int8 weights with an instruction
  that adds pairs of products in saturating int16; full-range int8 weights overflow it (cosine to the
  float32 model fell to 0.90). Weights are therefore limited to [-64, 64] per output channel ("s7"),
  which keeps every pair in range at the same speed.
* Activations are quantized per tensor at run time, and BERT's activations have a few outlier channels
  (LayerNorm outputs up to ~30 where most channels stay under ~1.5; a few GELU channels up to ~25). The
  attention and feed-forward inputs are rescaled per channel (SmoothQuant, alpha 0.5: x / s into the int8
  GEMM, s folded into the weights), and the four GELU channels of largest calibrated magnitude are
  computed apart in float32 through both feed-forward matrices. Calibration runs the float32 reference on
  a dozen built-in sentences (outlier channels are a property of the weights, not of the text).

Built files are cached under :func:`model_cache_dir`, named by the weights' hash, the build version
and the variant, so a machine (or a warm Lambda's temporary directory) builds once. Writes go to a
temporary file in the same directory, then an atomic rename: concurrent builders never expose a partial
file, and a lock file keeps them from building the same file twice. Deployed functions never build: the
embed layer carries the int8 and float32 builds made by ``make build`` (:mod:`ragcore.embeddings.prebuilt`),
which :func:`ensure_model` prefers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragcore.embeddings.weights import WEIGHTS_SHA256, BertConfig, load_config, load_weights

BUILD_VERSION = "1"
_OPSET = 17


@dataclass(frozen=True)
class Variant:
    """How the dense layers are computed.

    ``weights``: ``"fp32"`` (MatMul, Attention), ``"s7"`` (int8 weights limited to [-64, 64], per output
    channel: the u8 x s8 kernels of CPUs without VNNI add pairs of products in saturating int16, and
    7-bit weights keep every pair in range) or ``"u8"`` (uint8 weights, zero point 128, per channel:
    slower u8 x u8 kernels that cannot saturate). Activations are quantized per call (uint8, per tensor).
    ``float_nodes`` names dense nodes kept in float32 (``l{i}_qkv``, ``l{i}_attn_out``, ``l{i}_ffn_in``,
    ``l{i}_ffn_out``).
    """

    name: str
    weights: str = "fp32"
    float_nodes: tuple[str, ...] = ()
    # SmoothQuant migration strength (None: off), see activation_scales.
    smooth_alpha: float | None = None
    smooth_layers: tuple[str, ...] = ("ffn_in",)
    # The ``ffn_split`` intermediate (GELU) channels of largest calibrated magnitude are computed apart,
    # in float32, through both feed-forward matrices; the int8 matrices never see them.
    ffn_split: int = 0


VARIANTS: dict[str, Variant] = {
    "fp32": Variant("fp32"),
    # int8 without outlier handling: for comparison only (min cosine about 0.989).
    "int8-plain": Variant("int8-plain", weights="s7"),
    # The shipped build.
    "int8": Variant("int8", weights="s7", smooth_alpha=0.5, smooth_layers=("qkv", "ffn_in"), ffn_split=4),
}
DEFAULT_VARIANT = "int8"


# Calibration sentences for the activation ranges (SmoothQuant). BERT's outlier channels are a property
# of the weights, not of the text: a few varied sentences find them.
CALIBRATION_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Protein folding is determined by the amino acid sequence and the cellular environment.",
    "What is the capital of France?",
    "Invoices must be paid within 30 days of receipt; late payments incur a 2% monthly fee.",
    "The patient presented with acute chest pain radiating to the left arm (ECG: ST elevation).",
    "def add(a, b): return a + b  # Python functions are first-class objects",
    "In 1969, Apollo 11 landed on the Moon and Neil Armstrong became the first person to walk on it.",
    "Quarterly revenue rose 12% year over year, driven by subscription growth in EMEA.",
    "Mitochondria are the powerhouse of the cell, producing ATP through oxidative phosphorylation.",
    "Please reset your password using the link sent to your e-mail address.",
    "The court held that the contract was void for lack of consideration.",
    "Deep learning models require large amounts of labelled data to generalise well.",
    "",
)


def activation_scales(weights: dict, config: BertConfig, model_directory: Path | None = None) -> dict:
    """Per-channel absolute maxima of every dense layer's input, over CALIBRATION_TEXTS (reference
    float32 forward pass, one text at a time so that no padding enters the statistics)."""
    from ragcore.embeddings.local import pad_batch
    from ragcore.embeddings.reference import ReferenceEmbedder
    from ragcore.embeddings.weights import load_tokenizer

    ref = ReferenceEmbedder.__new__(ReferenceEmbedder)
    ReferenceEmbedder.setup(ref, weights, config, load_tokenizer(model_directory), None)
    maxima: dict[str, np.ndarray] = {}

    def tap(name: str, activations: np.ndarray) -> None:
        current = np.abs(activations.reshape(-1, activations.shape[-1])).max(axis=0)
        maxima[name] = np.maximum(maxima[name], current) if name in maxima else current

    for text in CALIBRATION_TEXTS:
        ids, mask = pad_batch([ref.tokenizer.encode(text).ids])
        ref.forward(ids, mask, tap)
    return maxima


def smoothing(act_max: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    """SmoothQuant factors s (K,): x / s is easier to quantize per tensor, s * w (row-wise) absorbs it."""
    w_max = np.abs(w).max(axis=1)
    s = np.power(np.maximum(act_max, 1e-5), alpha) / np.power(np.maximum(w_max, 1e-5), 1.0 - alpha)
    return np.clip(s, 1e-2, 1e2).astype(np.float32)


def quantize_weight(w: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric per-column quantization of ``w`` (K, N): (quantized, scale (N,), zero point (N,))."""
    limit = {"s7": 64.0, "u8": 127.0}[mode]
    scale = np.abs(w).max(axis=0) / limit
    scale[scale == 0] = 1.0
    q = np.clip(np.round(w / scale), -limit, limit)
    if mode == "u8":
        return (q + 128).astype(np.uint8), scale.astype(np.float32), np.full(w.shape[1], 128, np.uint8)
    return q.astype(np.int8), scale.astype(np.float32), np.zeros(w.shape[1], np.int8)


def model_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where built models are cached: the argument (settings' MODEL_CACHE_DIR), else ~/.cache/ragcore/models.

    When the home directory is not writable (AWS Lambda: only the temporary directory is), falls back to
    ``<tempdir>/ragcore-models``.
    """
    if explicit:
        return Path(explicit).expanduser()
    with contextlib.suppress(RuntimeError, KeyError):
        home = Path.home()
        candidate = home / ".cache" / "ragcore" / "models"
        with contextlib.suppress(OSError):
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
    return Path(tempfile.gettempdir()) / "ragcore-models"


def variant_digest(variant: str) -> str:
    """A short digest of a variant's definition: a changed recipe never matches an old build."""
    import hashlib

    return hashlib.sha256(repr(VARIANTS[variant]).encode()).hexdigest()[:8]


def cached_model_path(
    variant: str = DEFAULT_VARIANT,
    cache_dir: str | os.PathLike | None = None,
    weights_sha256: str = WEIGHTS_SHA256,
) -> Path:
    """The cache file of a build: weights hash, build version, variant name and a digest of its definition."""
    name = f"minilm-l6-{weights_sha256[:16]}-b{BUILD_VERSION}-{variant}-{variant_digest(variant)}.onnx"
    return model_cache_dir(cache_dir) / name


def build_onnx_model(weights: dict, config: BertConfig, variant: Variant, act_max: dict | None = None):
    """The fused ONNX graph. Inputs input_ids and attention_mask (int32, (batch, seq),
    right-padded); output last_hidden_state (float32, (batch, seq, hidden))."""
    from onnx import TensorProto, helper, numpy_helper

    c = config
    inits: list = []
    nodes: list = []

    def init(name: str, array: np.ndarray) -> str:
        if array.dtype not in (np.int8, np.uint8):
            array = array.astype(np.float32)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def quantized(name: str) -> bool:
        return variant.weights != "fp32" and name not in variant.float_nodes

    def smooth(name: str, x: str, w: np.ndarray) -> tuple[str, np.ndarray]:
        if variant.smooth_alpha is None or act_max is None or not name.endswith(variant.smooth_layers):
            return x, w
        s = smoothing(act_max[name], w, variant.smooth_alpha)
        nodes.append(
            helper.make_node(
                "Mul", [x, init(name + "_smooth", 1.0 / s)], [name + "_in"], name=name + "_smooth"
            )
        )
        return name + "_in", w * s[:, None]

    def dense(name: str, x: str, w: np.ndarray, out: str) -> None:
        """out = x @ w (the bias is added by the fused node that follows)."""
        if not quantized(name):
            nodes.append(helper.make_node("MatMul", [x, init(name + "_w", w)], [out], name=name))
            return
        x, w = smooth(name, x, w)
        q, scale, zero = quantize_weight(w, variant.weights)
        nodes.append(
            helper.make_node(
                "DynamicQuantizeMatMul",
                [x, init(name + "_wq", q), init(name + "_ws", scale), init(name + "_wz", zero)],
                [out],
                name=name,
                domain="com.microsoft",
            )
        )

    def attention(name: str, x: str, w: np.ndarray, b: np.ndarray, out: str) -> None:
        if not quantized(name):
            nodes.append(
                helper.make_node(
                    "Attention",
                    [x, init(name + "_w", w), init(name + "_b", b), "mask_index"],
                    [out],
                    name=name,
                    domain="com.microsoft",
                    num_heads=c.num_attention_heads,
                )
            )
            return
        x, w = smooth(name, x, w)
        q, scale, zero = quantize_weight(w, variant.weights)
        nodes.append(
            helper.make_node(
                "DynamicQuantizeLinear", [x], [x + "_q", x + "_qs", x + "_qz"], name=name + "_quantize_input"
            )
        )
        nodes.append(
            helper.make_node(
                "QAttention",
                [
                    x + "_q",
                    init(name + "_wq", q),
                    init(name + "_b", b),
                    x + "_qs",
                    init(name + "_ws", scale),
                    "mask_index",
                    x + "_qz",
                    init(name + "_wz", zero),
                ],
                [out],
                name=name,
                domain="com.microsoft",
                num_heads=c.num_attention_heads,
            )
        )

    w = weights
    # Token type is always 0: fold its embedding into the position embeddings.
    pos = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0][None]
    nodes.append(
        helper.make_node(
            "EmbedLayerNormalization",
            [
                "input_ids",
                "",
                init("word_embeddings", w["embeddings.word_embeddings.weight"]),
                init("position_embeddings", pos),
                "",
                init("emb_ln_gamma", w["embeddings.LayerNorm.weight"]),
                init("emb_ln_beta", w["embeddings.LayerNorm.bias"]),
                "attention_mask",
            ],
            ["emb_out", "mask_index"],
            name="embed_ln",
            domain="com.microsoft",
            epsilon=c.layer_norm_eps,
        )
    )
    x = "emb_out"
    for i in range(c.num_hidden_layers):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate(
            [w[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1
        )
        qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
        attention(f"l{i}_qkv", x, qkv_w, qkv_b, f"l{i}_ctx")
        dense(f"l{i}_attn_out", f"l{i}_ctx", w[p + "attention.output.dense.weight"].T, f"l{i}_attn_proj")
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [
                    f"l{i}_attn_proj",
                    x,
                    init(f"l{i}_ln1_g", w[p + "attention.output.LayerNorm.weight"]),
                    init(f"l{i}_ln1_b", w[p + "attention.output.LayerNorm.bias"]),
                    init(f"l{i}_attn_out_b", w[p + "attention.output.dense.bias"]),
                ],
                [f"l{i}_h1"],
                name=f"l{i}_skip_ln1",
                domain="com.microsoft",
                epsilon=c.layer_norm_eps,
            )
        )
        w_in, b_in = w[p + "intermediate.dense.weight"].T, w[p + "intermediate.dense.bias"]
        w_out = w[p + "output.dense.weight"].T
        split = variant.ffn_split if (act_max is not None and quantized(f"l{i}_ffn_out")) else 0
        if split:
            idx = np.sort(np.argsort(-act_max[f"l{i}_ffn_out"])[:split])
            rest = np.setdiff1d(np.arange(w_in.shape[1]), idx)
            nodes.append(
                helper.make_node(
                    "MatMul",
                    [f"l{i}_h1", init(f"l{i}_ffn_in_wo", w_in[:, idx])],
                    [f"l{i}_ffn_pre_o"],
                    name=f"l{i}_ffn_in_outliers",
                )
            )
            nodes.append(
                helper.make_node(
                    "BiasGelu",
                    [f"l{i}_ffn_pre_o", init(f"l{i}_ffn_in_bo", b_in[idx])],
                    [f"l{i}_ffn_act_o"],
                    name=f"l{i}_gelu_outliers",
                    domain="com.microsoft",
                )
            )
            nodes.append(
                helper.make_node(
                    "MatMul",
                    [f"l{i}_ffn_act_o", init(f"l{i}_ffn_out_wo", w_out[idx])],
                    [f"l{i}_ffn_proj_o"],
                    name=f"l{i}_ffn_out_outliers",
                )
            )
            w_in, b_in, w_out = w_in[:, rest], b_in[rest], w_out[rest]
        dense(f"l{i}_ffn_in", f"l{i}_h1", w_in, f"l{i}_ffn_pre")
        nodes.append(
            helper.make_node(
                "BiasGelu",
                [f"l{i}_ffn_pre", init(f"l{i}_ffn_in_b", b_in)],
                [f"l{i}_ffn_act"],
                name=f"l{i}_gelu",
                domain="com.microsoft",
            )
        )
        dense(f"l{i}_ffn_out", f"l{i}_ffn_act", w_out, f"l{i}_ffn_proj_m" if split else f"l{i}_ffn_proj")
        if split:
            nodes.append(
                helper.make_node(
                    "Add", [f"l{i}_ffn_proj_m", f"l{i}_ffn_proj_o"], [f"l{i}_ffn_proj"], name=f"l{i}_ffn_sum"
                )
            )
        out = "last_hidden_state" if i == c.num_hidden_layers - 1 else f"l{i}_out"
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [
                    f"l{i}_ffn_proj",
                    f"l{i}_h1",
                    init(f"l{i}_ln2_g", w[p + "output.LayerNorm.weight"]),
                    init(f"l{i}_ln2_b", w[p + "output.LayerNorm.bias"]),
                    init(f"l{i}_ffn_out_b", w[p + "output.dense.bias"]),
                ],
                [out],
                name=f"l{i}_skip_ln2",
                domain="com.microsoft",
                epsilon=c.layer_norm_eps,
            )
        )
        x = out

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", c.hidden_size]
            )
        ],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET), helper.make_opsetid("com.microsoft", 1)],
        producer_name="ragcore",
    )
    model.ir_version = 8
    return model


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename alone still keeps the file whole
        yield
        return
    with open(path.with_suffix(".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def needs_calibration(variant: Variant) -> bool:
    return variant.smooth_alpha is not None or variant.ffn_split > 0


def build_checked_models(variants: Sequence[Variant], model_directory: Path | None = None) -> dict:
    """The checked ONNX graphs of ``variants`` (by name), from one load of the hash-checked weights (and one
    calibration, shared by the variants that need it). Both the run-time cache and ``make build``'s
    prebuilt model come from here, so they are the same graphs."""
    import onnx

    weights, config = load_weights(model_directory), load_config(model_directory)
    specs = {spec.name: spec for spec in variants}
    act_max = None
    if any(needs_calibration(spec) for spec in specs.values()):
        act_max = activation_scales(weights, config, model_directory)
    models = {}
    for name, spec in specs.items():
        model = build_onnx_model(weights, config, spec, act_max if needs_calibration(spec) else None)
        onnx.checker.check_model(model)
        models[name] = model
    return models


def build_model(target: Path, variant: Variant, model_directory: Path | None = None) -> None:
    """Build ``variant`` into ``target`` (atomically). Weights are hash-checked by load_weights."""
    import onnx

    model = build_checked_models([variant], model_directory)[variant.name]
    _atomic_write(target, lambda p: onnx.save(model, str(p)))


def ensure_model(
    variant: str = DEFAULT_VARIANT,
    cache_dir: str | os.PathLike | None = None,
    model_directory: Path | None = None,
) -> Path:
    """The path of the model to load: the prebuilt one shipped with the deployment when there is one
    (hash-checked, see :mod:`ragcore.embeddings.prebuilt`), else this machine's cached build, building it
    first from the hash-checked weights if this machine has not yet. An explicit ``model_directory``
    (other weights) always builds."""
    from ragcore.embeddings import prebuilt
    from ragcore.embeddings.weights import verified_weights_path

    if model_directory is None:
        shipped = prebuilt.model_path(variant)
        if shipped is not None:
            return shipped
    verified_weights_path(model_directory)  # refuse tampered weights even when a build is cached
    spec = VARIANTS[variant]
    target = cached_model_path(variant, cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(target):
        if not target.is_file():  # another process may have finished while we waited
            build_model(target, spec, model_directory)
    return target
