"""template-local.yaml (SAM, local runs) and the CDK stack (AWS) describe the same functions.

Same set of functions, and for each: handler, runtime, architecture, timeout, memory, environment keys,
API routes; the same SQS event source (batch size, maximum concurrency, partial failures) and queues
(visibility timeout, retention, redrive). Environment keys are compared after one documented
translation: in AWS a secret arrives as the ARN of a Secrets Manager secret (and the database URL as
secret + proxy host/port/name), locally as the value itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.constructs.api import ROUTES

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template-local.yaml"

# CDK key -> the local key carrying the same setting.
AWS_TO_LOCAL = {
    "DB_SECRET_ARN": "DATABASE_URL",
    "DB_HOST": "DATABASE_URL",
    "DB_PORT": "DATABASE_URL",
    "DB_NAME": "DATABASE_URL",
    "MIGRATION_DB_SECRET_ARN": "MIGRATION_DATABASE_URL",
    "JWT_SECRET_ARN": "JWT_SECRET",
    "OPENAI_API_KEY_SECRET_ARN": "OPENAI_API_KEY",
}
LOCAL_ONLY = {"AWS_ENDPOINT_URL"}  # moto/LocalStack endpoint override; AWS uses the real endpoints
# The deployed console's CloudFront origin (plus any configured): the local console is same-origin, and
# template-local.yaml deploys no site, so it has no origin to allow.
AWS_ONLY = {"CORS_ALLOWED_ORIGINS"}


def _decoded() -> dict:
    from cfnlint.decode import decode

    template, matches = decode(str(TEMPLATE))
    assert template is not None, matches
    return template


@pytest.fixture(scope="module")
def local_template() -> dict:
    if not TEMPLATE.exists():
        pytest.skip("template-local.yaml does not exist yet")
    return _decoded()


@pytest.fixture(scope="module")
def local():
    if not TEMPLATE.exists():
        pytest.skip("template-local.yaml does not exist yet")
    template = _decoded()
    globals_fn = template.get("Globals", {}).get("Function", {})
    functions = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        service = Path(str(props["CodeUri"]).rstrip("/")).name
        env = dict(globals_fn.get("Environment", {}).get("Variables", {}))
        env.update(props.get("Environment", {}).get("Variables", {}))
        events = props.get("Events", {})
        functions[service] = {
            "logical": logical,
            "handler": props.get("Handler", globals_fn.get("Handler")),
            "runtime": props.get("Runtime", globals_fn.get("Runtime")),
            "architectures": props.get("Architectures", globals_fn.get("Architectures", ["x86_64"])),
            "timeout": props.get("Timeout", globals_fn.get("Timeout", 3)),
            "memory": props.get("MemorySize", globals_fn.get("MemorySize", 128)),
            "env": set(env),
            "env_values": env,
            "routes": {
                (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
                for e in events.values()
                if e["Type"] == "Api"
            },
            "sqs": [e["Properties"] for e in events.values() if e["Type"] == "SQS"],
        }
    return functions


def normalise_aws(keys: set[str]) -> set[str]:
    return {AWS_TO_LOCAL.get(k, k) for k in keys - AWS_ONLY}


def normalise_local(keys: set[str]) -> set[str]:
    return keys - LOCAL_ONLY


def runtime_family(runtime: str) -> str:
    return "".join(ch for ch in runtime if ch.isalpha())


def test_same_functions(local, dev):
    assert set(local) == set(dev.stack.functions)


def test_same_handler_runtime_architecture(local, local_template, dev):
    parameters = local_template["Parameters"]
    for service, spec in local.items():
        props = dev.function(service)[1]["Properties"]
        assert spec["handler"] == props["Handler"], service
        assert runtime_family(spec["runtime"]) == runtime_family(props["Runtime"]), service
        assert spec["runtime"] == props["Runtime"], f"{service}: layers are built for {props['Runtime']}"
        (architecture,) = spec["architectures"]
        if isinstance(architecture, dict):
            # A parameter (locally the host's architecture): AWS's must be one of its values.
            parameter = parameters[architecture["Ref"]]
            assert props["Architectures"][0] in parameter["AllowedValues"], service
        else:
            assert [architecture] == props["Architectures"], service


def test_same_timeout_and_memory(local, dev):
    differences = {}
    for service, spec in local.items():
        props = dev.function(service)[1]["Properties"]
        local_sizes = {"Timeout": int(spec["timeout"]), "MemorySize": int(spec["memory"])}
        aws_sizes = {"Timeout": props["Timeout"], "MemorySize": props["MemorySize"]}
        if local_sizes != aws_sizes:
            differences[service] = {"template-local": local_sizes, "CDK": aws_sizes}
    assert not differences, json.dumps(differences, indent=1)


def test_same_environment_keys(local, dev):
    differences = {}
    for service, spec in local.items():
        aws = normalise_aws(set(dev.function(service)[1]["Properties"]["Environment"]["Variables"]))
        loc = normalise_local(spec["env"])
        if aws != loc:
            differences[service] = {
                "only in CDK": sorted(aws - loc),
                "only in template-local": sorted(loc - aws),
            }
    assert not differences, json.dumps(differences, indent=1)


def test_same_api_routes(local, dev):
    cdk_routes = {(m, p): s for s, routes in ROUTES.items() for m, p in routes}
    assert cdk_routes == dev.stack.api.routes
    local_routes = {route: service for service, spec in local.items() for route in spec["routes"]}
    assert local_routes == cdk_routes


def test_same_sqs_event_source(local, dev):
    (mapping,) = dev.resources("AWS::Lambda::EventSourceMapping").values()
    consumers = {service for service, spec in local.items() if spec["sqs"]}
    assert consumers == {"ingest"}
    (event,) = local["ingest"]["sqs"]
    aws = mapping["Properties"]
    assert event.get("FunctionResponseTypes") == aws["FunctionResponseTypes"]
    assert event.get("BatchSize", 10) == aws["BatchSize"]
    local_concurrency = (event.get("ScalingConfig") or {}).get("MaximumConcurrency")
    assert local_concurrency == (aws.get("ScalingConfig") or {}).get("MaximumConcurrency")


def _queue_attributes(properties: dict, resources: dict) -> dict:
    """The settings of an ingest queue that change its behaviour, with its dead-letter queue's."""
    redrive = properties.get("RedrivePolicy") or {}
    target = redrive.get("deadLetterTargetArn")
    dlq_id = target["Fn::GetAtt"][0] if isinstance(target, dict) else None
    dlq = resources[dlq_id]["Properties"] if dlq_id else {}
    return {
        "VisibilityTimeout": int(properties.get("VisibilityTimeout", 30)),
        "MessageRetentionPeriod": int(properties.get("MessageRetentionPeriod", 345600)),
        "maxReceiveCount": int(redrive["maxReceiveCount"]) if redrive else None,
        "DLQ MessageRetentionPeriod": int(dlq.get("MessageRetentionPeriod", 345600)) if dlq else None,
    }


def test_same_ingest_queue(local, local_template, dev):
    (mapping,) = dev.resources("AWS::Lambda::EventSourceMapping").values()
    aws_queue_id = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
    aws = _queue_attributes(dev.template["Resources"][aws_queue_id]["Properties"], dev.template["Resources"])
    (event,) = local["ingest"]["sqs"]
    local_queue_id = event["Queue"]["Fn::GetAtt"][0]
    resources = local_template["Resources"]
    assert _queue_attributes(resources[local_queue_id]["Properties"], resources) == aws


def test_same_web_adapter_settings_for_the_stream_function(local, dev):
    if "stream" not in local:
        pytest.skip("no stream function yet")
    aws = dev.function("stream")[1]["Properties"]["Environment"]["Variables"]
    adapter = {k: v for k, v in aws.items() if k.startswith("AWS_LWA_") or k == "AWS_LAMBDA_EXEC_WRAPPER"}
    assert adapter
    assert {k: str(local["stream"]["env_values"][k]) for k in adapter} == adapter
