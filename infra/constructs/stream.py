"""Stream: the SSE answer endpoint, an ASGI app run by the Lambda Web Adapter behind a Function URL.

Python Lambdas cannot stream natively: the adapter (a public layer) starts the app with the
function's handler script (``run.sh``), forwards each invocation to it over HTTP and streams the
response back (``AWS_LWA_INVOKE_MODE=response_stream`` + ``InvokeMode: RESPONSE_STREAM``). The
Function URL has no IAM auth: the app verifies the bearer JWT itself, as the API functions do.

Anyone can invoke the URL, and every request, a 401 included, is an invocation: the function's reserved
concurrency (``streamReservedConcurrency``) caps how much of the account's concurrency a flood can take.
The allowed CORS origins are configured on the URL and reach the app as ``CORS_ALLOWED_ORIGINS``.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs.service_function import ServiceFunction

HANDLER = "run.sh"
PORT = "8080"
ADAPTER_ENVIRONMENT = {
    "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
    "AWS_LWA_INVOKE_MODE": "response_stream",
    "AWS_LWA_PORT": PORT,
    "AWS_LWA_READINESS_CHECK_PATH": "/api/v1/health",
}


def adapter_layer_arn(scope: Construct, account: str, version: int) -> str:
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:lambda:{stack.region}:{account}:layer:LambdaAdapterLayerArm64:{version}"


def adapter_layer(scope: Construct, construct_id: str, account: str, version: int) -> lambda_.ILayerVersion:
    return lambda_.LayerVersion.from_layer_version_arn(
        scope, construct_id, adapter_layer_arn(scope, account, version)
    )


class StreamEndpoint(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, function: ServiceFunction, cors_origins: tuple[str, ...]
    ) -> None:
        super().__init__(scope, construct_id)
        for key, value in ADAPTER_ENVIRONMENT.items():
            function.add_environment(key, value)
        cors = (
            lambda_.FunctionUrlCorsOptions(
                allowed_origins=list(cors_origins),
                allowed_methods=[lambda_.HttpMethod.POST, lambda_.HttpMethod.GET],
                allowed_headers=["authorization", "content-type"],
                exposed_headers=["retry-after"],
                max_age=Duration.seconds(600),
            )
            if cors_origins
            else None
        )
        self.url = function.function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
            cors=cors,
        )
