"""Where the Lambda code and layers come from: the real build output, or offline placeholders."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import AssetHashType
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.build_assets import dir_size, hash_file, stored_hash

ROOT = Path(__file__).resolve().parent.parent.parent
CORE_EXCLUDES = ["__pycache__", "*.pyc", "*.egg-info"]
SERVICES = ("auth", "documents", "query", "ingest", "migrate", "reaper")
OPTIONAL_SERVICES = ("stream",)


class AssetsNotBuilt(RuntimeError):
    pass


@dataclass
class LayerAsset:
    code: lambda_.Code
    path: Path

    @property
    def size(self) -> int:
        return dir_size(self.path)


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

    def core(self) -> LayerAsset:
        path = self.root / "layers" / "core"
        return LayerAsset(lambda_.Code.from_asset(str(path), exclude=CORE_EXCLUDES), path)

    def built_layer(self, name: str) -> LayerAsset:
        if self.mode == "stub":
            path = self._tmp / name
            (path / "python").mkdir(parents=True, exist_ok=True)
            (path / "python" / f"{name}_placeholder.txt").write_text(f"placeholder for the {name} layer\n")
            code = lambda_.Code.from_asset(
                str(path), asset_hash_type=AssetHashType.CUSTOM, asset_hash=f"stub-{name}"
            )
            return LayerAsset(code, path)
        digest = stored_hash(self.build_dir, name)
        if digest is None:
            raise AssetsNotBuilt(
                f"layer '{name}' is not built ({self.build_dir / name} or "
                f"{hash_file(self.build_dir, name).name} "
                "missing): run `make build` first, or synthesize with `-c assets=stub` for a placeholder"
            )
        path = self.build_dir / name
        # The build's input hash stands for the content: no need to fingerprint 100+ MB on every synth.
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
