"""API: the REST API (Lambda proxy integrations) for the auth, documents and query functions."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.service_function import ServiceFunction

STAGE_NAME = "v1"
# Routes that run bcrypt on every call get their own, tighter throttle (stage MethodSettings).
BCRYPT_ROUTES = (("POST", "/api/v1/auth/register"), ("POST", "/api/v1/auth/login"))
# The CORS rules of ragcore.cors, for the requests API Gateway answers itself (preflight, throttling,
# unknown routes, integration failures).
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type"]
CORS_EXPOSE_HEADERS = "Retry-After"
CORS_MAX_AGE_SECONDS = 600
# API Gateway's other 4xx answers in the platform's error body; codes are the response types in lower case
# (access_denied, invalid_api_key, quota_exceeded, ...).
ERROR_TEMPLATE = (
    '{"error": {"code": "$util.escapeJavaScript($context.error.responseType.toLowerCase())", '
    '"message": $context.error.messageString}}'
)

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
        ("POST", "/api/v1/api-keys"),
        ("GET", "/api/v1/api-keys"),
        ("DELETE", "/api/v1/api-keys/{id}"),
    ],
    "documents": [
        ("POST", "/api/v1/documents"),
        ("POST", "/api/v1/documents/uploads"),
        ("GET", "/api/v1/documents"),
        ("GET", "/api/v1/documents/{id}"),
        ("DELETE", "/api/v1/documents/{id}"),
        ("POST", "/api/v1/documents/{id}/reingest"),
        ("GET", "/api/v1/usage"),
    ],
    "query": [
        ("POST", "/api/v1/query/sync"),
        ("POST", "/api/v1/conversations"),
        ("GET", "/api/v1/conversations"),
        ("GET", "/api/v1/conversations/{id}"),
        ("DELETE", "/api/v1/conversations/{id}"),
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
        auth_throttle_rate: float,
        auth_throttle_burst: int,
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
                allow_headers=CORS_ALLOW_HEADERS,
                max_age=Duration.seconds(CORS_MAX_AGE_SECONDS),
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
            # The role API Gateway writes logs with is one per account and region (AWS::ApiGateway::Account),
            # shared by every stage deployed there: destroying dev must not take it from prod.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
                method_options={
                    f"{path}/{method}": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=auth_throttle_rate,
                        throttling_burst_limit=auth_throttle_burst,
                    )
                    for method, path in BCRYPT_ROUTES
                },
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
        self._gateway_responses(cors_origins)

    def _gateway_responses(self, cors_origins: tuple[str, ...]) -> None:
        """API Gateway's own answers (throttling, unknown routes, integration failures) in the platform's
        error body, with CORS headers so that a browser page can read them.

        A gateway response cannot choose its headers by the request's Origin: with one origin it names
        that origin; with several it echoes the request's Origin (these bodies carry no tenant data).
        """
        headers: dict[str, str] = {}
        if cors_origins:
            headers = {
                "Access-Control-Allow-Origin": (
                    f"'{cors_origins[0]}'" if len(cors_origins) == 1 else "method.request.header.Origin"
                ),
                "Access-Control-Expose-Headers": f"'{CORS_EXPOSE_HEADERS}'",
                "Vary": "'Origin'",
            }

        def body(code: str, message: str = "$context.error.messageString") -> dict[str, str]:
            return {"application/json": f'{{"error": {{"code": "{code}", "message": {message}}}}}'}

        responses = (
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX, None, {"application/json": ERROR_TEMPLATE}),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX, None, body("internal_error")),
            # The codes the functions and the local gateway use for the same situations.
            ("Throttled", apigw.ResponseType.THROTTLED, "429", body("rate_limited")),
            ("TooLarge", apigw.ResponseType.REQUEST_TOO_LARGE, "413", body("payload_too_large")),
            ("Timeout", apigw.ResponseType.INTEGRATION_TIMEOUT, "504", body("gateway_timeout")),
            # API Gateway says 403 "Missing Authentication Token" for a path it does not know.
            (
                "UnknownRoute",
                apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
                "404",
                body("not_found", '"no such route"'),
            ),
        )
        for response_id, response_type, status, templates in responses:
            extra = {"Retry-After": "'1'"} if response_id == "Throttled" else {}
            self.api.add_gateway_response(
                response_id,
                type=response_type,
                status_code=status,
                response_headers={**headers, **extra},
                templates=templates,
            )

    def route(self, function: ServiceFunction, routes: list[tuple[str, str]]) -> None:
        integration = apigw.LambdaIntegration(function.function, proxy=True, allow_test_invoke=False)
        for method, path in routes:
            resource = self.api.root.resource_for_path(path)
            resource.add_method(method, integration)
            self.routes[(method, path)] = function.service

    @property
    def base_url(self) -> str:
        return self.api.url_for_path("/api/v1")
