"""Per-stage deployment settings, read from CDK context (cdk.json, `-c key=value`).

Precedence: a key given on the command line (or at the top level of cdk.json's context) wins over
the same key under ``stages.<stage>``, which wins over the defaults below. Secrets never appear
here: only the *names* of Secrets Manager secrets that the stack references.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

EMBEDDING_PROVIDERS = ("local", "openai", "bedrock")
GENERATION_PROVIDERS = ("extractive", "openai", "bedrock")

# Lambda Web Adapter (public layer, published per region by AWS Labs in account 753240598075).
LWA_ACCOUNT = "753240598075"
LWA_DEFAULT_VERSION = 25
# Unzipped size counted for that layer by the stack's size check (Lambda counts it against the function's
# 262,144,000 bytes like any layer, but a layer referenced by ARN has no files here to measure). An upper
# bound, not a measurement: the layer holds /opt/bootstrap (a shell script) and
# /opt/extensions/lambda-adapter, one binary built with the adapter's release profile (strip, lto,
# codegen-units = 1 in its Cargo.toml), a few MB; `aws lambda get-layer-version-by-arn` reports only the
# zipped CodeSize. Replace it with `du -sb /opt/bootstrap /opt/extensions` measured inside a function
# that has only this layer.
LWA_LAYER_UNZIPPED_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class StageConfig:
    stage: str = "dev"
    # Stages whose data must survive: deletion protection, snapshots on delete, retained buckets.
    production: bool = False

    # Providers (ragcore.config.Settings decides what the functions accept).
    embedding_provider: str = "local"
    embedding_model: str | None = None  # None: ragcore's default for the provider
    embedding_dimensions: int | None = None
    generation_provider: str = "extractive"
    generation_model: str | None = None
    openai_base_url: str | None = None
    # Name of an existing Secrets Manager secret holding the OpenAI-compatible API key (plain string).
    openai_api_key_secret_name: str | None = None

    # Network. NAT is only needed to reach endpoints outside AWS (an OpenAI-compatible API).
    max_azs: int = 2
    nat_gateways: int = 0

    # Database. The engine's minor version is pinned (and auto minor upgrades off): an upgrade is a
    # deliberate change of this value, not drift between the template and the instance.
    db_engine_version: str = "17.9"
    db_instance_class: str = "t4g.micro"
    db_allocated_storage_gib: int = 20
    db_max_allocated_storage_gib: int = 100
    db_multi_az: bool = False
    db_backup_retention_days: int = 7
    db_performance_insights: bool = False
    db_connections_alarm_threshold: int = 60
    secret_rotation_days: int = 30

    # API.
    api_throttle_rate: float = 50.0
    api_throttle_burst: int = 100
    # register and login run bcrypt (cost 12, ~0.25 s of CPU each): a tighter per-route limit.
    auth_throttle_rate: float = 5.0
    auth_throttle_burst: int = 10
    cors_origins: tuple[str, ...] = ()

    # Ingestion.
    ingest_timeout_seconds: int = 300
    ingest_memory_mb: int = 3008
    # One message per invocation: a small document or one chunk range of a large one, so every invocation
    # is bounded by a range's work and a small document never waits inside a batch behind ranges
    # (docs/decisions.md, "Large documents are embedded in chained chunk-range messages").
    ingest_batch_size: int = 1
    ingest_max_concurrency: int = 4
    ingest_max_receive_count: int = 5
    query_memory_mb: int = 2048
    # Concurrent executions reserved for (and capping) the stream function, whose Function URL answers
    # anyone: a flood there cannot take the account's concurrency from the API. 0: no reservation.
    stream_reserved_concurrency: int = 20

    # Observability.
    log_retention_days: int = 30
    alarm_email: str | None = None

    lwa_layer_version: int = LWA_DEFAULT_VERSION
    stream_enabled: str = "auto"  # auto: only when functions/stream exists; on | off

    # Asset source: "built" (make build output) or "stub" (placeholder layers for offline tests).
    assets: str = "built"

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def embeds_locally(self) -> bool:
        return self.embedding_provider == "local"

    @property
    def needs_openai(self) -> bool:
        return "openai" in (self.embedding_provider, self.generation_provider)

    @property
    def needs_bedrock(self) -> bool:
        return "bedrock" in (self.embedding_provider, self.generation_provider)

    @property
    def openai_secret_name(self) -> str:
        return self.openai_api_key_secret_name or f"rag/{self.stage}/openai-api-key"

    @property
    def stack_name(self) -> str:
        return f"RagPlatform-{self.stage}"

    def validate(self) -> StageConfig:
        problems = []
        if self.embedding_provider not in EMBEDDING_PROVIDERS:
            problems.append(f"embeddingProvider must be one of {EMBEDDING_PROVIDERS}")
        if self.generation_provider not in GENERATION_PROVIDERS:
            problems.append(f"generationProvider must be one of {GENERATION_PROVIDERS}")
        if self.embedding_provider == "bedrock" and not self.embedding_model:
            problems.append("embeddingModel is required with embeddingProvider=bedrock")
        if self.generation_provider in ("openai", "bedrock") and not self.generation_model:
            problems.append(f"generationModel is required with generationProvider={self.generation_provider}")
        if self.needs_openai and self.nat_gateways < 1:
            problems.append(
                "an openai provider calls an endpoint outside AWS, which functions without a NAT gateway "
                "cannot reach: set natGateways to 1 or more"
            )
        if self.db_engine_version.split(".")[0] != "17" or len(self.db_engine_version.split(".")) != 2:
            problems.append("dbEngineVersion must be a PostgreSQL 17 minor version, e.g. 17.9")
        if self.stream_reserved_concurrency < 0:
            problems.append("streamReservedConcurrency must be 0 (no reservation) or more")
        if not 0 < self.auth_throttle_rate <= self.api_throttle_rate:
            problems.append("authThrottleRate must be positive and at most apiThrottleRate")
        if self.ingest_max_receive_count < 2:
            problems.append("ingestMaxReceiveCount must be at least 2")
        if self.ingest_max_concurrency < 2:
            problems.append("ingestMaxConcurrency must be at least 2 (the SQS event source minimum)")
        if not 1 <= self.ingest_batch_size <= 10:
            problems.append("ingestBatchSize must be between 1 and 10")
        if self.assets not in ("built", "stub"):
            problems.append("assets must be 'built' or 'stub'")
        if self.stream_enabled not in ("auto", "on", "off"):
            problems.append("stream must be auto, on or off")
        if problems:
            raise ValueError("invalid deployment context: " + "; ".join(problems))
        return self


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


_ALIASES = {"stream_enabled": "stream"}


def _coerce(value: Any, default: Any, name: str) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if isinstance(default, bool):
            return text.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int) and not isinstance(default, bool):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(p.strip() for p in text.split(",") if p.strip())
        if name in ("embedding_dimensions",):
            return int(text)
        return text or None if default is None else text
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def load_config(get_context) -> StageConfig:
    """Build the StageConfig from a context getter (``node.try_get_context``)."""
    stage = get_context("stage") or "dev"
    stages = get_context("stages") or {}
    if isinstance(stages, str):
        stages = json.loads(stages)
    per_stage = stages.get(stage, {})
    values: dict[str, Any] = {"stage": stage}
    for f in fields(StageConfig):
        if f.name in ("stage", "extra"):
            continue
        key = _ALIASES.get(f.name, _camel(f.name))
        default = StageConfig.__dataclass_fields__[f.name].default
        raw = get_context(key)
        if raw is None:
            raw = per_stage.get(key)
        if raw is None:
            continue
        values[f.name] = _coerce(raw, default, f.name)
    return StageConfig(**values).validate()
