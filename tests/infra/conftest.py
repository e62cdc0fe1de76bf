"""Synthesize the CDK app once per session, offline, with placeholder layers (`assets=stub`).

Two assemblies: the default `dev` stage exactly as cdk.json configures it, and a `prod` stage with
every optional part switched on (stream function, NAT, Bedrock generation, OpenAI embeddings), built
from a copy of the repository layout that has a placeholder functions/stream.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

pytest.importorskip("aws_cdk", reason="the infra extra (aws-cdk-lib, cdk-nag) is not installed")
pytest.importorskip("cdk_nag", reason="the infra extra (aws-cdk-lib, cdk-nag) is not installed")


@dataclass
class Synth:
    stack: object
    template: dict
    assembly: object
    outdir: Path
    template_path: Path
    errors: list[str]

    def resources(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_}

    def function(self, service: str) -> tuple[str, dict]:
        fn = self.stack.functions[service].function
        logical = self.stack.get_logical_id(fn.node.default_child)
        return logical, self.template["Resources"][logical]


def cdk_json_context() -> dict:
    with open(ROOT / "cdk.json") as fh:
        return json.load(fh)["context"]


def _synth(context: dict, outdir: Path, root: Path = ROOT) -> Synth:
    from infra.app import build_app, errors_in

    app, stack, assets = build_app(context=context, outdir=str(outdir), root=root)
    try:
        assembly = app.synth()
    finally:
        assets.cleanup()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    template_path = Path(assembly.directory) / artifact.template_file
    return Synth(stack, artifact.template, assembly, outdir, template_path, errors_in(assembly))


@pytest.fixture(scope="session")
def dev(tmp_path_factory) -> Synth:
    context = cdk_json_context() | {"assets": "stub"}
    return _synth(context, tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def full(tmp_path_factory) -> Synth:
    """prod stage with a stream function and every provider option that adds resources."""
    root = tmp_path_factory.mktemp("repo")
    for name in ("layers", "migrations"):
        (root / name).symlink_to(ROOT / name)
    (root / "functions").mkdir()
    for service in ("auth", "documents", "query", "ingest", "migrate", "reaper"):
        (root / "functions" / service).symlink_to(ROOT / "functions" / service)
    stream = root / "functions" / "stream"
    stream.mkdir()
    (stream / "run.sh").write_text('#!/bin/sh\nexec python -m uvicorn app:app --port "$AWS_LWA_PORT"\n')
    context = cdk_json_context() | {
        "assets": "stub",
        "stage": "prod",
        "natGateways": "1",
        "embeddingProvider": "openai",
        "embeddingModel": "text-embedding-3-small",
        "embeddingDimensions": "384",
        "openaiBaseUrl": "https://api.openai.com/v1",
        "generationProvider": "bedrock",
        "generationModel": "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "corsOrigins": "https://app.example.com",
        "alarmEmail": "ops@example.com",
    }
    return _synth(context, tmp_path_factory.mktemp("cdk-full"), root=root)
