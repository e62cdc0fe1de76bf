"""ServiceFunction: the one way this platform defines a Lambda function."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.build_assets import UNZIPPED_LIMIT_BYTES

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
DEFAULT_HANDLER = "handler.lambda_handler"
CODE_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache", "tests"]


def check_unzipped_size(service: str, parts: Mapping[str, int], limit: int = UNZIPPED_LIMIT_BYTES) -> int:
    """The unzipped total of a function's code and every one of its layers (``parts``: name -> bytes; layers
    referenced by ARN at their recorded size). Raises ValueError, with the breakdown, over Lambda's limit:
    CloudFormation would only fail at deploy time, halfway through an update."""
    total = sum(parts.values())
    if total > limit:
        detail = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in parts.items())
        raise ValueError(
            f"{service}: code + layers unzipped = {total:,} bytes, over Lambda's limit of {limit:,} "
            f"({detail})"
        )
    return total


class ServiceFunction(Construct):
    """python3.12 on arm64 with JSON logs, X-Ray tracing, a retained-for-N-days log group, the
    shared layers, and (optionally) a place in the VPC. Permissions are added by the caller with
    ``grant_*`` on the resources, never by attaching broad policies here."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service: str,
        code_dir: Path,
        description: str,
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        handler: str = DEFAULT_HANDLER,
        memory_size: int = 1024,
        timeout: Duration | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = service
        self.code_dir = code_dir
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.security_group = (
            ec2.SecurityGroup(
                self,
                "SecurityGroup",
                vpc=vpc,
                description=f"{service} function",
                allow_all_outbound=True,
            )
            if vpc is not None
            else None
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=lambda_.Code.from_asset(str(code_dir), exclude=CODE_EXCLUDES),
            description=description,
            memory_size=memory_size,
            timeout=timeout or Duration.seconds(29),
            layers=layers,
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=self.log_group,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            security_groups=[self.security_group] if self.security_group else None,
            reserved_concurrent_executions=reserved_concurrency,
        )

    @property
    def connections(self) -> ec2.Connections:
        return self.function.connections

    def add_environment(self, key: str, value: str) -> None:
        self.function.add_environment(key, value)
