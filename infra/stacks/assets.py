"""Where the Lambda code and layers come from: the real build output, or offline placeholders."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import AssetHashType
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.build_assets import (
    dir_size,
    hash_file,
    inputs_hash,
    layer_specs,
    remove_distributions,
    shared_with_openai,
    stored_hash,
)

ROOT = Path(__file__).resolve().parent.parent.parent
CORE_EXCLUDES = ["__pycache__", "*.pyc", "*.egg-info"]
SERVICES = ("auth", "documents", "query", "ingest", "migrate", "reaper")
OPTIONAL_SERVICES = ("stream",)
CONSOLE_DIST = Path("web") / "dist"


class AssetsNotBuilt(RuntimeError):
    pass


@dataclass
class LayerAsset:
    code: lambda_.Code
    path: Path
    exclude: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return dir_size(self.path, self.exclude)


class Assets:
    """Layer and function sources. ``mode='built'`` needs ``make build``; ``mode='stub'`` makes tiny
    placeholder layers in a temporary directory so tests can synthesize offline in seconds."""

    def __init__(self, mode: str, root: Path = ROOT, build_dir: Path | None = None) -> None:
        self.mode = mode
        self.root = root
        self.build_dir = build_dir or root / "build" / "lambda"
        self._tmp = Path(tempfile.mkdtemp(prefix="rag-cdk-assets-"))

    def function_dir(self, service: str) -> Path:
        return self.root / "functions" / service

    def has_function(self, service: str) -> bool:
        return self.function_dir(service).is_dir()

    def function_code(self, service: str, *, with_web: bool = False, with_openai: bool = False) -> Path:
        """The folder shipped as the function's code. ``with_web``: the function's own files plus the built
        "web" folder (the ASGI server of the stream function; Lambda's five-layer limit leaves no layer
        for it), staged afresh at every synthesis so the code is never a stale copy. ``with_openai``: the
        function also gets the openai layer, so what that layer ships is left out here."""
        source = self.function_dir(service)
        if not with_web or self.mode == "stub":
            return source
        web = self._built_path("web") / "python"
        target = self._tmp / f"{service}-code"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(web, target)
        if with_openai:
            self._built_path("openai")
            remove_distributions(target, shared_with_openai(self.build_dir))
        shutil.copytree(
            source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        return target

    def _built_path(self, name: str) -> Path:
        """out/<name> of ``make build``, refused when missing or built from other inputs than today's."""
        digest = stored_hash(self.build_dir, name)
        if digest is None:
            raise AssetsNotBuilt(
                f"layer '{name}' is not built ({self.build_dir / name} or "
                f"{hash_file(self.build_dir, name).name} "
                "missing): run `make build` first, or synthesize with `-c assets=stub` for a placeholder"
            )
        if digest != inputs_hash(layer_specs(self.root)[name], self.root):
            raise AssetsNotBuilt(
                f"layer '{name}' in {self.build_dir} was built from other inputs (dependencies, constraints "
                "or the model builder changed): run `make build`"
            )
        return self.build_dir / name

    def core(self) -> LayerAsset:
        path = self.root / "layers" / "core"
        return LayerAsset(
            lambda_.Code.from_asset(str(path), exclude=CORE_EXCLUDES), path, tuple(CORE_EXCLUDES)
        )

    def built_layer(self, name: str) -> LayerAsset:
        if self.mode == "stub":
            path = self._tmp / name
            (path / "python").mkdir(parents=True, exist_ok=True)
            (path / "python" / f"{name}_placeholder.txt").write_text(f"placeholder for the {name} layer\n")
            code = lambda_.Code.from_asset(
                str(path), asset_hash_type=AssetHashType.CUSTOM, asset_hash=f"stub-{name}"
            )
            return LayerAsset(code, path)
        path = self._built_path(name)
        # The build's input hash stands for the content: no need to fingerprint 100+ MB on every synth.
        digest = stored_hash(self.build_dir, name)
        code = lambda_.Code.from_asset(str(path), asset_hash_type=AssetHashType.CUSTOM, asset_hash=digest)
        return LayerAsset(code, path)

    def migrations(self) -> LayerAsset:
        """``migrations/*.sql`` staged as a layer (lands in /opt/migrations)."""
        source = self.root / "migrations"
        path = self._tmp / "migrations-layer"
        target = path / "migrations"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for sql in sorted(source.glob("*.sql")):
            shutil.copy2(sql, target / sql.name)
        return LayerAsset(lambda_.Code.from_asset(str(path)), path)

    def console(self) -> Path:
        """The built web console (``make build`` runs ``npm run build`` in web/); a placeholder page and
        asset in stub mode."""
        if self.mode == "stub":
            path = self._tmp / "console"
            (path / "assets").mkdir(parents=True, exist_ok=True)
            (path / "index.html").write_text("<!doctype html><title>placeholder console</title>\n")
            (path / "assets" / "placeholder.js").write_text("// placeholder for the built console\n")
            return path
        path = self.root / CONSOLE_DIST
        if not (path / "index.html").is_file():
            raise AssetsNotBuilt(
                f"the web console is not built ({path / 'index.html'} missing): run `make build` first, "
                "or synthesize with `-c assets=stub` for a placeholder"
            )
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def make_layer(
    scope: Construct, construct_id: str, asset: LayerAsset, description: str
) -> lambda_.LayerVersion:
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=asset.code,
        description=description,
        compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
        compatible_architectures=[lambda_.Architecture.ARM_64],
    )
