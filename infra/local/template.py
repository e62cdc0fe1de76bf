"""Reads template-local.yaml: the routes, functions, queues and environment the local stack runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_NAME = "template-local.yaml"


class TemplateError(ValueError):
    """The template says something the local stack cannot run."""


class _CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation short-form tags (!Ref, !GetAtt, !Sub...)."""


def _construct_intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation/SAM template")
    return document


@dataclass(frozen=True)
class Route:
    method: str  # upper case; ANY matches every method
    path: str  # API Gateway resource path, e.g. /api/v1/documents/{id}
    function: str  # logical id of the function


@dataclass(frozen=True)
class SqsEventSource:
    queue: str  # logical id of the queue
    batch_size: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # logical id
    code_uri: str
    handler: str  # module.attribute
    timeout: int
    memory_size: int
    environment: dict[str, Any]  # raw values: strings or intrinsic functions
    sqs_events: tuple[SqsEventSource, ...] = ()
    schedules: tuple[int, ...] = ()  # periods in seconds of its Schedule events (EventBridge rate(...))


_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def parse_rate(expression: str) -> int:
    """Seconds between runs of an EventBridge ``rate(N unit)`` expression (cron is not run locally)."""
    text = expression.strip()
    if not (text.startswith("rate(") and text.endswith(")")):
        raise TemplateError(f"only rate(...) schedules run locally, not {expression!r}")
    amount, _, unit = text[5:-1].strip().partition(" ")
    if not amount.isdigit() or int(amount) < 1 or unit.strip() not in _RATE_UNITS:
        raise TemplateError(f"malformed schedule {expression!r}")
    return int(amount) * _RATE_UNITS[unit.strip()]


@dataclass(frozen=True)
class QueueSpec:
    name: str  # logical id
    properties: dict[str, Any]

    @property
    def dead_letter_queue(self) -> str | None:
        target = (self.properties.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        return _logical_id_of(target) if target is not None else None

    @property
    def max_receive_count(self) -> int | None:
        count = (self.properties.get("RedrivePolicy") or {}).get("maxReceiveCount")
        return int(count) if count is not None else None


@dataclass(frozen=True)
class Template:
    path: Path
    parameters: dict[str, Any]
    functions: dict[str, FunctionSpec]
    routes: tuple[Route, ...]
    queues: dict[str, QueueSpec]
    layer_uris: tuple[str, ...]
    # Where each layer's importable code is in the source tree (what Lambda has under /opt/python).
    layer_import_paths: tuple[str, ...] = ()
    stage_name: str = "v1"
    binary_media_types: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent


def _logical_id_of(reference: Any) -> str | None:
    """The resource a Ref or GetAtt points at, or None for anything else."""
    if isinstance(reference, dict):
        if "Ref" in reference:
            return str(reference["Ref"])
        if "Fn::GetAtt" in reference:
            return str(reference["Fn::GetAtt"][0])
    return None


def _layer_import_path(content_uri: str, resource: dict[str, Any]) -> str:
    """`sam build` puts the content of a layer built by a python runtime under python/ (so ContentUri is
    the import root); a layer built otherwise, or not built, is laid out as it will be in /opt."""
    build_method = str((resource.get("Metadata") or {}).get("BuildMethod") or "")
    if build_method.startswith("python"):
        return content_uri.rstrip("/")
    return f"{content_uri.rstrip('/')}/python"


def load_template(path: Path) -> Template:
    document = load_yaml(path)
    resources: dict[str, Any] = document["Resources"]
    globals_ = (document.get("Globals") or {}).get("Function") or {}
    global_env = ((globals_.get("Environment") or {}).get("Variables")) or {}

    functions: dict[str, FunctionSpec] = {}
    routes: list[Route] = []
    queues: dict[str, QueueSpec] = {}
    layer_uris: list[str] = []
    layer_import_paths: list[str] = []
    stage_name = "Prod"  # SAM's implicit API stage, when the template declares none
    binary_media_types: tuple[str, ...] = ()

    for name, resource in resources.items():
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        if kind == "AWS::Serverless::Api":
            stage_name = str(props.get("StageName", stage_name))
            binary_media_types = tuple(props.get("BinaryMediaTypes") or ())
        elif kind == "AWS::Serverless::LayerVersion":
            layer_uris.append(str(props["ContentUri"]))
            layer_import_paths.append(_layer_import_path(str(props["ContentUri"]), resource))
        elif kind == "AWS::SQS::Queue":
            queues[name] = QueueSpec(name, props)
        elif kind == "AWS::Serverless::Function":
            env = dict(global_env)
            env.update(((props.get("Environment") or {}).get("Variables")) or {})
            sqs_events = []
            schedules = []
            for event_name, event in (props.get("Events") or {}).items():
                event_props = event.get("Properties") or {}
                if event["Type"] == "Api":
                    routes.append(Route(str(event_props["Method"]).upper(), str(event_props["Path"]), name))
                elif event["Type"] == "Schedule":
                    schedules.append(parse_rate(str(event_props["Schedule"])))
                elif event["Type"] == "SQS":
                    queue = _logical_id_of(event_props["Queue"])
                    if queue is None:
                        raise TemplateError(
                            f"{name}.{event_name}: the queue must be a resource of the template"
                        )
                    sqs_events.append(
                        SqsEventSource(
                            queue=queue,
                            batch_size=int(event_props.get("BatchSize", 10)),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in (event_props.get("FunctionResponseTypes") or ()),
                        )
                    )
            functions[name] = FunctionSpec(
                name=name,
                code_uri=str(props["CodeUri"]),
                handler=str(props.get("Handler", globals_.get("Handler", ""))),
                timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
                memory_size=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
                environment=env,
                sqs_events=tuple(sqs_events),
                schedules=tuple(schedules),
            )

    return Template(
        path=path,
        parameters=document.get("Parameters") or {},
        functions=functions,
        routes=tuple(routes),
        queues=queues,
        layer_uris=tuple(layer_uris),
        layer_import_paths=tuple(layer_import_paths),
        stage_name=stage_name,
        binary_media_types=binary_media_types,
        raw=document,
    )


def resolve_environment(
    template: Template, function: FunctionSpec, overrides: dict[str, str], refs: dict[str, str]
) -> dict[str, str]:
    """The function's environment with local values filled in.

    `overrides` win over the template (local values, or what the user exported); `refs` maps logical
    ids of resources to what Ref returns locally (a queue's URL). Values the local stack cannot evaluate
    are an error naming the variable, rather than a silently wrong environment.
    """
    env: dict[str, str] = {}
    for key, value in function.environment.items():
        if key in overrides:
            env[key] = overrides[key]
            continue
        resolved = _resolve_value(template, value, refs)
        if resolved is _NO_VALUE:
            continue
        if resolved is None:
            raise TemplateError(
                f"{function.name}: environment variable {key} is {value!r}, which the local stack cannot "
                "evaluate; give it a local value (export it, or teach infra/local/stack.py)"
            )
        env[key] = resolved
    return env


_NO_VALUE = object()


def _resolve_value(template: Template, value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        target = value["Ref"]
        if target == "AWS::NoValue":
            return _NO_VALUE
        if target in refs:
            return refs[target]
        if target in template.parameters and "Default" in template.parameters[target]:
            return str(template.parameters[target]["Default"])
    return None
