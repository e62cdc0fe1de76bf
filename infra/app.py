#!/usr/bin/env python3
"""The CDK app: `python infra/app.py [-c key=value ...]` writes the cloud assembly to cdk.out/.

Runs the same under the CDK CLI (`cdk synth`/`cdk deploy`, which read cdk.json) and as a plain
script (`make synth`), where this file reads cdk.json's context itself. cdk-nag's AwsSolutions
checks run on every synthesis; an unsuppressed error makes the synthesis fail.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts infra/ first on sys.path, where infra/constructs would shadow the
# `constructs` library: import everything from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "infra"]
sys.path.insert(0, str(ROOT))
# jsii warns loudly on Node versions past their end of life (this project's machines run Node 20);
# the synthesis itself is unaffected.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.stacks.assets import Assets  # noqa: E402
from infra.stacks.config import load_config  # noqa: E402
from infra.stacks.rag_stack import RagPlatformStack  # noqa: E402


def _cli_context(argv: list[str]) -> dict[str, str]:
    """`-c key=value` / `--context key=value` pairs, as the CDK CLI accepts them."""
    context: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        if arg in ("-c", "--context"):
            pair = next(it, "")
        elif arg.startswith("--context="):
            pair = arg.split("=", 1)[1]
        else:
            raise SystemExit(f"unknown argument {arg!r}; usage: python infra/app.py [-c key=value ...]")
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"context must be key=value, got {pair!r}")
        context[key] = value
    return context


def build_app(context: dict | None = None, outdir: str | None = None, root: Path = ROOT, nag: bool = True):
    """The App with the stack; returns (app, stack, assets). Tests call this with their own context."""
    app = cdk.App(context=context, outdir=outdir) if (context is not None or outdir) else cdk.App()
    config = load_config(app.node.try_get_context)
    assets = Assets(config.assets, root=root)
    stack = RagPlatformStack(
        app,
        config.stack_name,
        config=config,
        assets=assets,
        description=f"Multi-tenant RAG platform ({config.stage})",
        # Environment-agnostic: no account lookups at synth time; `cdk deploy` picks the target from
        # the caller's credentials (CDK_DEFAULT_ACCOUNT/REGION are only used when present).
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
        )
        if os.environ.get("CDK_DEFAULT_ACCOUNT") and os.environ.get("CDK_DEFAULT_REGION")
        else None,
    )
    untaggable = ["AWS::RDS::DBProxyTargetGroup"]  # CloudFormation rejects Tags on it
    cdk.Tags.of(app).add("project", "rag-platform", exclude_resource_types=untaggable)
    cdk.Tags.of(app).add("stage", config.stage, exclude_resource_types=untaggable)
    if nag:
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack, assets


def errors_in(assembly) -> list[str]:
    found = []
    for artifact in assembly.stacks:
        for message in artifact.messages:
            if message.level == cdk.cx_api.SynthesisMessageLevel.ERROR:
                found.append(f"{message.id}: {message.entry.data}")
    return found


def main(argv: list[str]) -> int:
    under_cli = "CDK_OUTDIR" in os.environ or "CDK_CONTEXT_JSON" in os.environ
    if under_cli:
        app, _stack, assets = build_app()
    else:
        with open(ROOT / "cdk.json") as fh:
            context = json.load(fh).get("context", {})
        context.update(_cli_context(argv))
        app, _stack, assets = build_app(context=context, outdir=str(ROOT / "cdk.out"))
    try:
        assembly = app.synth()
    finally:
        assets.cleanup()
    errors = errors_in(assembly)
    for line in errors:
        print(f"[synth] ERROR {line}", file=sys.stderr)
    if errors:
        print(
            f"[synth] {len(errors)} error(s): fix them or suppress them with a written reason "
            "(infra/stacks/nag.py)",
            file=sys.stderr,
        )
        return 1
    if not under_cli:
        print(f"[synth] wrote {assembly.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
