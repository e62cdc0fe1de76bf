"""Migrations: the migrate function, run by a CDK Trigger during every deploy that changes it.

The SQL files ship in a small layer laid out as ``migrations/*.sql``, so they land in
``/opt/migrations`` where ``ragcore.migrations.default_migrations_dir`` finds them. Because that
layer is part of the function's configuration, adding or editing a migration changes the function
version and the Trigger runs again; so does any change to ragcore or the handler. The Trigger
invokes synchronously: a migration that raises fails the deployment (and CloudFormation rolls back).

The same function maintains the per-tenant vector indexes on a schedule (an EventBridge rule sending
``{"task": "tenant_indexes"}``): building an index takes minutes, must run outside any transaction and
as the schema owner, so it belongs neither to a request nor to the ingest batch.
"""

from __future__ import annotations

from aws_cdk import Duration, triggers
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct, IConstruct

from infra.constructs.service_function import ServiceFunction


class Migrations(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: ServiceFunction,
        execute_after: list[IConstruct],
        timeout: Duration,
        maintenance_every: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = function
        self.trigger = triggers.Trigger(
            self,
            "Trigger",
            handler=function.function,
            execute_after=execute_after,
            execute_on_handler_change=True,
            invocation_type=triggers.InvocationType.REQUEST_RESPONSE,
            timeout=timeout,
        )
        self.maintenance = events.Rule(
            self,
            "TenantIndexMaintenance",
            description="builds and drops the per-tenant vector indexes",
            schedule=events.Schedule.rate(maintenance_every),
            targets=[
                targets.LambdaFunction(
                    function.function,
                    event=events.RuleTargetInput.from_object({"task": "tenant_indexes"}),
                    retry_attempts=0,
                )
            ],
        )
