"""Auth function: registration, login, the caller's profile, user management and API keys."""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore import api_keys, auth
from ragcore.api import (
    CreateApiKeyRequest,
    CreateUserRequest,
    LoginRequest,
    RegisterRequest,
    as_json_request,
    authenticate,
    client_address,
    create_resolver,
    json_response,
    no_content,
    parse_id,
)
from ragcore.observability import logger, tracer

app = create_resolver()


@app.post("/api/v1/auth/register")
def register(body: RegisterRequest):
    return json_response(201, auth.register(body.org_name, body.email, body.password, client_address(app)))


@app.post("/api/v1/auth/login")
def login(body: LoginRequest):
    return json_response(200, auth.login(body.email, body.password, client_address(app)))


@app.get("/api/v1/me")
def me():
    return auth.me(authenticate(app))


@app.post("/api/v1/users")
def create_user(body: CreateUserRequest):
    user = auth.create_user(authenticate(app), body.email, body.password, body.role)
    return json_response(201, {"user": user})


@app.get("/api/v1/users")
def list_users():
    return {"items": auth.list_users(authenticate(app))}


@app.delete("/api/v1/users/<user_id>")
def delete_user(user_id: str):
    auth.delete_user(authenticate(app), parse_id(user_id, "user"))
    return no_content()


@app.post("/api/v1/api-keys")
def create_api_key(body: CreateApiKeyRequest):
    created = api_keys.create_api_key(authenticate(app), body.name, body.scope, body.expires_at)
    return json_response(201, created)


@app.get("/api/v1/api-keys")
def list_api_keys():
    return {"items": api_keys.list_api_keys(authenticate(app))}


@app.delete("/api/v1/api-keys/<key_id>")
def revoke_api_key(key_id: str):
    api_keys.revoke_api_key(authenticate(app), parse_id(key_id, "API key"))
    return no_content()


# The response is not traced (it holds answers, tokens, secrets); the event is never logged (it holds the
# Authorization header and the body), whatever POWERTOOLS_LOGGER_LOG_EVENT says.
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False
)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(as_json_request(event), context)
