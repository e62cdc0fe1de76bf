"""API: the REST API (Lambda proxy integrations) for the auth, documents and query functions."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.service_function import ServiceFunction

STAGE_NAME = "v1"

# (method, path) served by each function; template-local.yaml declares the same routes and a test
# keeps the two in step (the local gateway reads its routes from that file).
ROUTES: dict[str, list[tuple[str, str]]] = {
    "auth": [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users"),
        ("DELETE", "/api/v1/users/{id}"),
    ],
    "documents": [
        ("POST", "/api/v1/documents"),
        ("GET", "/api/v1/documents"),
        ("GET", "/api/v1/documents/{id}"),
        ("DELETE", "/api/v1/documents/{id}"),
        ("POST", "/api/v1/documents/{id}/reingest"),
    ],
    "query": [
        ("POST", "/api/v1/query/sync"),
        ("GET", "/api/v1/health"),
    ],
}


class RestApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        throttle_rate: float,
        throttle_burst: int,
        cors_origins: tuple[str, ...],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=removal_policy
        )
        cors = (
            apigw.CorsOptions(
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
            )
            if cors_origins
            else None
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=name,
            description="Multi-tenant RAG platform API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=removal_policy,
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        self.routes: dict[tuple[str, str], str] = {}

    def route(self, function: ServiceFunction, routes: list[tuple[str, str]]) -> None:
        integration = apigw.LambdaIntegration(function.function, proxy=True, allow_test_invoke=False)
        for method, path in routes:
            resource = self.api.root.resource_for_path(path)
            resource.add_method(method, integration)
            self.routes[(method, path)] = function.service

    @property
    def base_url(self) -> str:
        return self.api.url_for_path("/api/v1")
