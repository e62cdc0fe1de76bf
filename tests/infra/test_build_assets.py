"""The Docker-free layer build: what goes in which layer, and when work is skipped (no network)."""

from __future__ import annotations

from infra import build_assets as ba


def names(spec) -> set[str]:
    return {ba._req_name(r) for r in spec.requirements}


def test_layers_split_the_project_dependencies():
    specs = ba.layer_specs()
    project = {ba._req_name(r) for r in ba.project_dependencies()}
    deps, embed = names(specs["deps"]), names(specs["embed"])
    assert not deps & embed
    assert not deps & ba.RUNTIME_PROVIDED  # boto3 & co come with the Lambda runtime
    assert {"onnxruntime", "tokenizers"} <= embed and ba._norm(ba.MODEL_PACKAGE) in embed
    assert project - ba.RUNTIME_PROVIDED <= deps | embed  # every runtime dependency ships somewhere
    assert specs["embed"].no_deps and not specs["deps"].no_deps


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


def test_prune_drops_bytecode_and_test_data(tmp_path):
    site = tmp_path / "python"
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "__pycache__" / "m.cpython-312.pyc").write_bytes(b"x")
    (site / "pkg" / "m.py").write_text("x = 1\n")
    (site / "onnx" / "backend" / "test" / "data").mkdir(parents=True)
    (site / "bin").mkdir()
    ba.prune(site)
    assert (site / "pkg" / "m.py").exists()
    assert not (site / "pkg" / "__pycache__").exists()
    assert not (site / "onnx" / "backend" / "test").exists()
    assert not (site / "bin").exists()
