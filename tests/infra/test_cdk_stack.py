"""Properties of the synthesized CloudFormation template (not only resource counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.constructs.api import ROUTES
from infra.constructs.ingestion import VISIBILITY_FACTOR

SERVICES = ("auth", "documents", "query", "ingest", "migrate", "reaper")
# Environment keys that configure the Lambda tooling, not ragcore.config.Settings.
TOOLING_PREFIXES = ("POWERTOOLS_", "AWS_LWA_")
TOOLING_KEYS = {"AWS_LAMBDA_EXEC_WRAPPER"}
COMMON_KEYS = {
    "STAGE",
    "DB_SECRET_ARN",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_APP_ROLE",
    "JWT_SECRET_ARN",
    "QUEUE_URL",
    "UPLOAD_BUCKET",
    "EMBEDDING_PROVIDER",
    "GENERATION_PROVIDER",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


def cdk_json_context() -> dict:
    with open(Path(__file__).resolve().parents[2] / "cdk.json") as fh:
        return json.load(fh)["context"]


def env_of(synth, service) -> dict:
    return synth.function(service)[1]["Properties"]["Environment"]["Variables"]


def ref_of(synth, construct) -> str:
    return synth.stack.get_logical_id(construct.node.default_child)


def statements_of(synth, service) -> list[dict]:
    """All IAM statements attached to a function's role."""
    role_ref = synth.function(service)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    out = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_ref} in policy["Properties"]["Roles"]:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def mentions(value, logical_id: str) -> bool:
    return logical_id in json.dumps(value)


# --- checks ----------------------------------------------------------------------------------------


def test_cdk_nag_has_no_unsuppressed_errors(dev, full):
    assert dev.errors == []
    assert full.errors == []


def test_every_nag_suppression_has_a_written_reason(dev, full):
    count = 0
    for synth in (dev, full):
        for resource in synth.template["Resources"].values():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                count += 1
                assert rule["id"].startswith("AwsSolutions-")
                assert len(rule.get("reason", "").split()) >= 8, rule
    assert count > 0


# --- database ---------------------------------------------------------------------------------------


def test_database_is_postgres_17_encrypted_private_and_backed_up(dev):
    (instance,) = dev.resources("AWS::RDS::DBInstance").values()
    props = instance["Properties"]
    assert props["Engine"] == "postgres"
    assert str(props["EngineVersion"]).split(".")[0] == "17"
    # the minor version is pinned and changes only by a deploy that says so
    assert props["EngineVersion"] == "17.9"
    assert props["AutoMinorVersionUpgrade"] is False
    assert props["StorageEncrypted"] is True
    assert props["PubliclyAccessible"] is False
    assert props["BackupRetentionPeriod"] >= 7
    assert props["DeletionProtection"] is False  # dev is disposable
    assert instance["DeletionPolicy"] == "Delete"


def test_production_database_is_protected(full):
    (instance,) = full.resources("AWS::RDS::DBInstance").values()
    assert instance["Properties"]["DeletionProtection"] is True
    assert instance["Properties"]["MultiAZ"] is True
    assert instance["DeletionPolicy"] == "Snapshot"


def test_parameter_group_is_rls_ready(dev):
    (group,) = dev.resources("AWS::RDS::DBParameterGroup").values()
    params = group["Properties"]["Parameters"]
    assert params["row_security"] == "1"  # policies are never silently skipped
    assert params["rds.force_ssl"] == "1"
    assert params["password_encryption"] == "scram-sha-256"


def test_proxy_requires_tls_and_admits_only_the_app_role(dev):
    (proxy,) = dev.resources("AWS::RDS::DBProxy").values()
    props = proxy["Properties"]
    assert props["EngineFamily"] == "POSTGRESQL"
    assert props["RequireTLS"] is True
    (auth,) = props["Auth"]
    assert auth["IAMAuth"] == "DISABLED"
    assert auth["ClientPasswordAuthType"] == "POSTGRES_SCRAM_SHA_256"
    app_secret = ref_of(dev, dev.stack.database.app_secret)
    master_secret = ref_of(dev, dev.stack.database.master_secret)
    assert mentions(auth["SecretArn"], app_secret)
    assert not mentions(auth["SecretArn"], master_secret)
    (target,) = dev.resources("AWS::RDS::DBProxyTargetGroup").values()
    assert target["Properties"]["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"] <= 90


def test_app_role_secret_is_rag_app_and_secrets_rotate(dev):
    from ragcore.config import Settings

    app_secret = dev.template["Resources"][ref_of(dev, dev.stack.database.app_secret_resource)]
    template = json.loads(app_secret["Properties"]["GenerateSecretString"]["SecretStringTemplate"])
    assert template["username"] == Settings().db_app_role == env_of(dev, "auth")["DB_APP_ROLE"]
    schedules = dev.resources("AWS::SecretsManager::RotationSchedule")
    assert len(schedules) == 2  # master + app
    for schedule in schedules.values():
        assert schedule["Properties"]["RotateImmediatelyOnUpdate"] is False


def test_migrations_run_by_a_trigger_after_the_database(dev):
    (trigger,) = [r for r in dev.template["Resources"].values() if r["Type"] == "Custom::Trigger"]
    # bound to the function's current version: re-runs whenever the code, layers or settings change
    assert trigger["Properties"]["HandlerArn"]["Ref"].startswith("MigrateFunctionCurrentVersion")
    assert trigger["Properties"]["ExecuteOnHandlerChange"] is True
    assert trigger["Properties"]["InvocationType"] == "RequestResponse"
    instance_logical = next(iter(dev.resources("AWS::RDS::DBInstance")))
    assert instance_logical in trigger.get("DependsOn", [])
    # The SQL ships in a layer that lands in /opt/migrations, where ragcore looks for it.
    layers = json.dumps(dev.function("migrate")[1]["Properties"]["Layers"])
    assert ref_of(dev, dev.stack.layers["migrations"]) in layers


# --- ingestion --------------------------------------------------------------------------------------


def test_queue_dlq_and_redrive_numbers(dev):
    queue = dev.template["Resources"][ref_of(dev, dev.stack.ingestion.queue)]["Properties"]
    dlq = dev.template["Resources"][ref_of(dev, dev.stack.ingestion.dead_letter_queue)]["Properties"]
    ingest_timeout = dev.function("ingest")[1]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= VISIBILITY_FACTOR * ingest_timeout
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert mentions(
        queue["RedrivePolicy"]["deadLetterTargetArn"], ref_of(dev, dev.stack.ingestion.dead_letter_queue)
    )
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True


def test_ingest_gives_up_before_the_queue_does():
    from ragcore.config import Settings

    attempts = getattr(Settings(), "ingest_max_attempts", None)
    if attempts is None:
        pytest.skip("ragcore.config.Settings has no ingest_max_attempts")
    assert attempts < 5, "the document must be marked failed before SQS moves the message to the DLQ"


def test_event_source_mapping_reports_partial_failures_and_caps_concurrency(dev):
    (mapping,) = dev.resources("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= props["BatchSize"] <= 10
    assert 2 <= props["ScalingConfig"]["MaximumConcurrency"] <= 10
    assert mentions(props["FunctionName"], dev.function("ingest")[0])
    assert mentions(props["EventSourceArn"], ref_of(dev, dev.stack.ingestion.queue))


def test_reaper_runs_on_a_schedule_and_may_only_send_to_the_ingest_queue(dev):
    from ragcore.config import Settings

    logical, reaper = dev.function("reaper")
    rules = [
        rule
        for rule in dev.resources("AWS::Events::Rule").values()
        if any(mentions(target["Arn"], logical) for target in rule["Properties"]["Targets"])
    ]
    (rule,) = rules  # the other rule schedules the tenant index maintenance
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "rate(5 minutes)"
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert mentions(target["Arn"], logical)
    # The stated bound holds only if "processing" outlasts SQS's own re-delivery (the visibility timeout).
    visibility = ref_of(dev, dev.stack.ingestion.queue)
    queue = dev.template["Resources"][visibility]["Properties"]
    assert Settings().reaper_processing_after_seconds > queue["VisibilityTimeout"]
    actions = set()
    for statement in statements_of(dev, "reaper"):
        actions |= set(
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    assert "sqs:SendMessage" in actions
    assert "sqs:GetQueueAttributes" in actions  # the backlog decides whether pending documents wait
    assert not any(a.startswith(("sqs:Receive", "sqs:Delete", "sqs:Purge")) for a in actions)


def test_dlq_depth_alarm(dev):
    dlq = ref_of(dev, dev.stack.ingestion.dead_letter_queue)
    alarms = [
        a["Properties"]
        for a in dev.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and mentions(a["Properties"].get("Dimensions"), dlq)
    ]
    assert len(alarms) == 1
    assert alarms[0]["Threshold"] == 1
    assert alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarms[0]["AlarmActions"]


def test_alarms_cover_5xx_ingest_errors_and_db_connections(dev):
    alarms = [a["Properties"] for a in dev.resources("AWS::CloudWatch::Alarm").values()]
    names = {a.get("MetricName") for a in alarms}
    assert {"Errors", "DatabaseConnections", "ApproximateAgeOfOldestMessage"} <= names
    assert any("Metrics" in a and "5XXError" in json.dumps(a["Metrics"]) for a in alarms)
    assert len(dev.resources("AWS::CloudWatch::Dashboard")) == 1


# --- functions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_functions_are_python312_arm64_traced_json_logged(dev, service):
    props = dev.function(service)[1]["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "handler.lambda_handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert "LogGroup" in props["LoggingConfig"]
    assert props["VpcConfig"]["SubnetIds"]
    layers = json.dumps(props["Layers"])
    assert ref_of(dev, dev.stack.layers["core"]) in layers
    assert ref_of(dev, dev.stack.layers["deps"]) in layers
    # the model layer only where text is embedded (and only with the local provider)
    assert (ref_of(dev, dev.stack.layers["embed"]) in layers) == (service in ("query", "ingest"))


def test_log_groups_have_retention(dev):
    for group in dev.resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] > 0


@pytest.mark.parametrize("service", SERVICES)
def test_environment_keys_each_function_needs(dev, service):
    keys = set(env_of(dev, service))
    expected = COMMON_KEYS | ({"MIGRATION_DB_SECRET_ARN"} if service == "migrate" else set())
    if service in ("auth", "documents", "query", "stream"):
        expected |= {"CORS_ALLOWED_ORIGINS"}  # the console's origin, at least
    assert keys == expected
    env = env_of(dev, service)
    assert env["DB_PORT"] == "5432" and env["DB_NAME"] == "rag"
    assert mentions(env["DB_HOST"], ref_of(dev, dev.stack.database.proxy))  # through the proxy
    # secrets travel as ARNs only, never as values
    assert not {"DATABASE_URL", "JWT_SECRET", "OPENAI_API_KEY", "MIGRATION_DATABASE_URL"} & keys


def test_provider_environment_when_providers_change(full):
    query, ingest, auth = env_of(full, "query"), env_of(full, "ingest"), env_of(full, "auth")
    assert query["EMBEDDING_PROVIDER"] == "openai" and query["GENERATION_PROVIDER"] == "bedrock"
    assert {"OPENAI_API_KEY_SECRET_ARN", "OPENAI_BASE_URL", "EMBEDDING_MODEL", "GENERATION_MODEL"} <= set(
        query
    )
    assert {"OPENAI_API_KEY_SECRET_ARN", "EMBEDDING_MODEL", "EMBEDDING_DIMENSIONS"} <= set(ingest)
    assert "GENERATION_MODEL" not in ingest
    assert "OPENAI_API_KEY_SECRET_ARN" not in auth


def test_every_environment_key_is_a_settings_field(dev, full):
    from ragcore.config import Settings

    fields = set(Settings.model_fields)
    unknown = set()
    for synth in (dev, full):
        for service in synth.stack.functions:
            for key in env_of(synth, service):
                if key.startswith(TOOLING_PREFIXES) or key in TOOLING_KEYS:
                    continue
                if key.lower() not in fields:
                    unknown.add(key)
    assert not unknown, f"environment keys ragcore.config.Settings does not read: {sorted(unknown)}"


def test_stage_config_reaches_the_functions(full):
    assert env_of(full, "auth")["STAGE"] == "prod"


# --- IAM: least privilege -------------------------------------------------------------------------


def _actions(statement) -> set[str]:
    return set(as_list(statement["Action"]))


def _grants(synth, service, action_prefix: str) -> list[dict]:
    return [s for s in statements_of(synth, service) if any(a.startswith(action_prefix) for a in _actions(s))]


@pytest.mark.parametrize("synth_name", ["dev", "full"])
def test_wildcard_resources_only_for_xray(request, synth_name):
    synth = request.getfixturevalue(synth_name)
    for service in synth.stack.functions:
        for statement in statements_of(synth, service):
            if "*" in as_list(statement["Resource"]):
                assert all(a.startswith("xray:") for a in _actions(statement)), (service, statement)
            assert "*" not in _actions(statement)


def test_only_documents_the_reaper_and_ingest_send_to_the_queue(dev):
    # ingest sends a large document's chunk ranges to its own queue.
    queue = ref_of(dev, dev.stack.ingestion.queue)
    for service in SERVICES:
        sends = [s for s in _grants(dev, service, "sqs:SendMessage")]
        if service in ("documents", "reaper", "ingest"):
            assert sends and all(mentions(s["Resource"], queue) for s in sends)
        else:
            assert not sends, service


def test_only_ingest_consumes_the_queue(dev):
    for service in SERVICES:
        receives = _grants(dev, service, "sqs:ReceiveMessage")
        assert bool(receives) == (service == "ingest"), service


def test_secret_access(dev):
    master = ref_of(dev, dev.stack.database.master_secret)
    app = ref_of(dev, dev.stack.database.app_secret)
    jwt = ref_of(dev, dev.stack.jwt_secret)
    for service in SERVICES:
        reads = _grants(dev, service, "secretsmanager:GetSecretValue")
        text = json.dumps([s["Resource"] for s in reads])
        assert (master in text) == (service == "migrate"), service
        assert app in text, service
        assert (jwt in text) == (service in ("auth", "documents", "query")), service
        for statement in reads:
            assert "*" not in as_list(statement["Resource"])


def test_bedrock_and_openai_grants_are_scoped(full):
    for service in full.stack.functions:
        bedrock = _grants(full, service, "bedrock:")
        if service in ("query", "stream"):
            (statement,) = bedrock
            assert _actions(statement) == {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}
            text = json.dumps(statement["Resource"])
            assert "anthropic.claude-sonnet-4-20250514-v1:0" in text
            assert "inference-profile/us.anthropic" in text
        else:
            assert not bedrock, service
        openai_reads = [
            s
            for s in _grants(full, service, "secretsmanager:GetSecretValue")
            if "openai-api-key" in json.dumps(s)
        ]
        assert bool(openai_reads) == (service in ("query", "ingest", "stream")), service


# --- network ---------------------------------------------------------------------------------------


def _endpoint_services(synth) -> list[str]:
    return [
        json.dumps(e["Properties"]["ServiceName"]) for e in synth.resources("AWS::EC2::VPCEndpoint").values()
    ]


def test_vpc_endpoints_without_nat(dev):
    assert not dev.resources("AWS::EC2::NatGateway")
    services = " ".join(_endpoint_services(dev))
    for name in ("secretsmanager", "sqs", "s3"):
        assert name in services
    assert "bedrock" not in services
    assert dev.resources("AWS::EC2::FlowLog")


def test_nat_and_bedrock_endpoint_when_configured(full):
    assert full.resources("AWS::EC2::NatGateway")
    assert "bedrock-runtime" in " ".join(_endpoint_services(full))


def test_database_accepts_only_proxy_and_migrations(dev):
    db_sg = ref_of(dev, dev.stack.database.security_group)
    sources = set()
    for rule in dev.resources("AWS::EC2::SecurityGroupIngress").values():
        if mentions(rule["Properties"]["GroupId"], db_sg):
            sources.add(rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0])
    migrate_sg = ref_of(dev, dev.stack.functions["migrate"].security_group)
    proxy_sg = ref_of(dev, dev.stack.database.proxy_security_group)
    assert proxy_sg in sources and migrate_sg in sources
    api_sgs = {
        ref_of(dev, dev.stack.functions[s].security_group) for s in ("auth", "documents", "query", "ingest")
    }
    assert not api_sgs & sources


# --- API, stream, storage --------------------------------------------------------------------------


def test_api_stage_throttles_logs_and_traces(dev):
    (stage,) = dev.resources("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["TracingEnabled"] is True
    assert props["AccessLogSetting"]["DestinationArn"]
    settings = {(m["ResourcePath"], m["HttpMethod"]): m for m in props["MethodSettings"]}
    everything = settings[("/*", "*")]
    assert everything["ThrottlingRateLimit"] == 50
    assert everything["ThrottlingBurstLimit"] == 100
    assert everything["DataTraceEnabled"] is False
    # register and login run bcrypt on every call: their own, tighter limit
    for path in ("/~1api~1v1~1auth~1register", "/~1api~1v1~1auth~1login"):
        route = settings[(path, "POST")]
        assert route["ThrottlingRateLimit"] == 5
        assert route["ThrottlingBurstLimit"] == 10


def test_api_routes_use_lambda_proxy_integrations(dev):
    methods = dev.resources("AWS::ApiGateway::Method")
    non_options = [m for m in methods.values() if m["Properties"]["HttpMethod"] != "OPTIONS"]
    assert len(non_options) == sum(len(r) for r in ROUTES.values())
    for method in non_options:
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    assert set(dev.stack.api.routes.values()) == {"auth", "documents", "query"}


def spelled(value) -> str:
    """A template string with its intrinsic functions written out: Fn::Join joined, Fn::GetAtt as
    <Resource.Attribute>, Ref as <Resource> (CDK merges adjacent literals, so compare the spelling)."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(spelled(part) for part in parts)
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    raise AssertionError(f"unexpected intrinsic {value}")


def site_origin(synth) -> str:
    """The console's origin as the template spells it: https:// + the distribution's domain name."""
    return f"https://<{ref_of(synth, synth.stack.site.distribution)}.DomainName>"


def test_cors_is_configurable(dev, full):
    def preflights(synth):
        return [
            m
            for m in synth.resources("AWS::ApiGateway::Method").values()
            if m["Properties"]["HttpMethod"] == "OPTIONS"
        ]

    # The console's origin is always allowed; configured origins come in addition.
    dev_methods = preflights(dev)
    assert dev_methods and "https://app.example.com" not in json.dumps(dev_methods)
    assert ref_of(dev, dev.stack.site.distribution) in json.dumps(dev_methods)
    full_methods = preflights(full)
    assert full_methods and "https://app.example.com" in json.dumps(full_methods)
    assert ref_of(full, full.stack.site.distribution) in json.dumps(full_methods)


def test_no_stream_function_until_functions_stream_exists(dev):
    from infra.stacks.assets import ROOT

    has_stream = (ROOT / "functions" / "stream").is_dir()
    assert ("stream" in dev.stack.functions) == has_stream
    assert bool(dev.resources("AWS::Lambda::Url")) == has_stream


def test_stream_function_url_streams_through_the_web_adapter(full):
    (url,) = full.resources("AWS::Lambda::Url").values()
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    assert url["Properties"]["AuthType"] == "NONE"
    assert mentions(url["Properties"]["TargetFunctionArn"], full.function("stream")[0])
    props = full.function("stream")[1]["Properties"]
    env = props["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert props["Handler"] == "run.sh"
    assert props["Architectures"] == ["arm64"]
    assert "LambdaAdapterLayerArm64" in json.dumps(props["Layers"])
    assert "753240598075" in json.dumps(props["Layers"])
    assert "StreamUrl" in full.template["Outputs"]


def test_upload_bucket_is_private_encrypted_and_expires_junk(dev):
    bucket = dev.template["Resources"][ref_of(dev, dev.stack.storage.bucket)]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert any(r.get("AbortIncompleteMultipartUpload") for r in rules)
    policies = [
        p
        for p in dev.resources("AWS::S3::BucketPolicy").values()
        if mentions(p["Properties"]["Bucket"], ref_of(dev, dev.stack.storage.bucket))
    ]
    assert "aws:SecureTransport" in json.dumps(policies)


def _s3_actions(synth, service) -> dict[str, set[str]]:
    """The S3 actions granted to a function, by resource (as JSON text)."""
    granted: dict[str, set[str]] = {}
    for statement in statements_of(synth, service):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        s3_actions = {a for a in actions if a.startswith("s3:")}
        if s3_actions:
            granted.setdefault(json.dumps(statement["Resource"], sort_keys=True), set()).update(s3_actions)
    return granted


def test_upload_bucket_notifies_the_ingest_queue_and_grants_are_least_privilege(dev):
    bucket = ref_of(dev, dev.stack.storage.bucket)
    queue = ref_of(dev, dev.stack.ingestion.queue)
    (notifications,) = dev.resources("Custom::S3BucketNotifications").values()
    configuration = notifications["Properties"]["NotificationConfiguration"]
    (target,) = configuration["QueueConfigurations"]
    assert target["Events"] == ["s3:ObjectCreated:*"] and mentions(target["QueueArn"], queue)
    assert mentions(notifications["Properties"]["BucketName"], bucket)
    # S3 may send to the queue, for this bucket only.
    policies = [p for p in dev.resources("AWS::SQS::QueuePolicy").values() if mentions(p, queue)]
    statement = json.dumps(policies)
    assert "s3.amazonaws.com" in statement and "aws:SourceArn" in statement and bucket in statement

    for service in ("documents", "ingest"):
        assert env_of(dev, service)["UPLOAD_BUCKET"] == {"Ref": bucket}
    documents, ingest = _s3_actions(dev, "documents"), _s3_actions(dev, "ingest")
    assert set().union(*documents.values()) == {
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:ListBucketVersions",
    }
    assert set().union(*ingest.values()) == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    for service in ("auth", "query", "reaper", "migrate"):
        assert _s3_actions(dev, service) == {}, service
    # Browsers may PUT from the configured origins (the console's is always one), and do nothing else.
    (rule,) = dev.template["Resources"][bucket]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["PUT"]
    assert "*" not in json.dumps(rule["AllowedOrigins"])


def test_outputs(dev):
    assert {"ApiUrl", "IngestQueueUrl", "UploadBucketName", "DashboardName"} <= set(dev.template["Outputs"])
    assert "/api/v1" in json.dumps(dev.template["Outputs"]["ApiUrl"])


def test_no_secret_values_in_the_template(dev, full):
    for synth in (dev, full):
        for secret in synth.resources("AWS::SecretsManager::Secret").values():
            assert "SecretString" not in secret["Properties"]  # generated by Secrets Manager, never inline
            assert "GenerateSecretString" in secret["Properties"]
        for service in synth.stack.functions:
            for key, value in env_of(synth, service).items():
                if key.endswith("_SECRET_ARN"):
                    assert isinstance(value, dict), (service, key)  # a reference to a secret, not a value


def test_failed_documents_alarm_watches_the_ingest_functions_metric(dev):
    alarms = [a["Properties"] for a in dev.resources("AWS::CloudWatch::Alarm").values()]
    failed = [a for a in alarms if a.get("MetricName") == "DocumentsFailed"]
    assert len(failed) == 1
    assert failed[0]["Namespace"] == "RagPlatform"
    assert failed[0]["Dimensions"] == [{"Name": "service", "Value": "ingest"}]
    assert failed[0]["Threshold"] == 1 and failed[0]["AlarmActions"]


# --- run time in a real account --------------------------------------------------------------------


def test_cors_origins_reach_the_functions_that_answer_browsers(dev, full):
    for synth, configured in ((full, "https://app.example.com,"), (dev, "")):
        for service in synth.stack.functions:
            env = env_of(synth, service)
            if service in ("auth", "documents", "query", "stream"):
                # the configured origins, then the console's
                assert spelled(env["CORS_ALLOWED_ORIGINS"]) == configured + site_origin(synth), service
            else:
                assert "CORS_ALLOWED_ORIGINS" not in env, service


def _gateway_responses(synth) -> dict[str, dict]:
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()
    }


def test_api_gateways_own_errors_carry_cors_headers_and_the_error_body(dev, full):
    responses = _gateway_responses(full)
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED", "MISSING_AUTHENTICATION_TOKEN"} <= set(responses)
    for props in responses.values():
        headers = props["ResponseParameters"]
        # two origins (the configured one and the console's): the request's Origin is echoed
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "method.request.header.Origin"
        assert headers["gatewayresponse.header.Vary"] == "'Origin'"
        assert '"error"' in props["ResponseTemplates"]["application/json"]
    assert responses["THROTTLED"]["StatusCode"] == "429"
    assert responses["THROTTLED"]["ResponseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"  # unknown route
    # the same status and code as the functions and the local gateway give
    for kind, status, code in (
        ("THROTTLED", "429", "rate_limited"),
        ("REQUEST_TOO_LARGE", "413", "payload_too_large"),
        ("INTEGRATION_TIMEOUT", "504", "gateway_timeout"),
        ("MISSING_AUTHENTICATION_TOKEN", "404", "not_found"),
    ):
        assert responses[kind]["StatusCode"] == status
        assert f'"code": "{code}"' in responses[kind]["ResponseTemplates"]["application/json"]
    # dev configures no origin: only the console's, named in the header
    for props in _gateway_responses(dev).values():
        allowed = props["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert spelled(allowed) == f"'{site_origin(dev)}'"


def test_gateway_responses_echo_the_origin_when_several_are_allowed():
    from aws_cdk import RemovalPolicy, Stack
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Template

    from infra.constructs.api import RestApi

    stack = Stack()
    api = RestApi(
        stack,
        "Api",
        name="t",
        throttle_rate=10,
        throttle_burst=10,
        auth_throttle_rate=1,
        auth_throttle_burst=1,
        cors_origins=("https://a.example.com", "https://b.example.com"),
        log_retention=logs.RetentionDays.ONE_DAY,
        removal_policy=RemovalPolicy.DESTROY,
    )
    api.api.root.add_method("GET")
    responses = Template.from_stack(stack).find_resources("AWS::ApiGateway::GatewayResponse")
    for response in responses.values():
        headers = response["Properties"]["ResponseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "method.request.header.Origin"


def test_stream_url_cors_and_reserved_concurrency(full):
    (url,) = full.resources("AWS::Lambda::Url").values()
    cors = url["Properties"]["Cors"]
    assert [spelled(origin) for origin in cors["AllowOrigins"]] == [
        "https://app.example.com",
        site_origin(full),
    ]
    assert set(cors["AllowMethods"]) == {"POST", "GET"}
    assert {h.lower() for h in cors["AllowHeaders"]} == {"authorization", "content-type"}
    assert cors["ExposeHeaders"] == ["retry-after"]
    props = full.function("stream")[1]["Properties"]
    assert props["ReservedConcurrentExecutions"] == 20
    for service in ("auth", "documents", "query", "ingest", "migrate"):
        assert "ReservedConcurrentExecutions" not in full.function(service)[1]["Properties"], service


def test_proxy_connections_do_not_prepare_statements_and_pinning_alarms(dev):
    from ragcore.config import Settings

    # prepared statements pin proxy sessions: off unless a function's environment turns them on
    assert Settings().db_prepared_statements is False
    for service in dev.stack.functions:
        assert env_of(dev, service).get("DB_PREPARED_STATEMENTS", "false") == "false"
    proxy = ref_of(dev, dev.stack.database.proxy)
    (pinned,) = [
        a["Properties"]
        for a in dev.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "DatabaseConnectionsCurrentlySessionPinned"
    ]
    assert pinned["Namespace"] == "AWS/RDS"
    (dimension,) = pinned["Dimensions"]
    assert dimension["Name"] == "ProxyName" and mentions(dimension["Value"], proxy)
    assert pinned["Threshold"] == 1 and pinned["AlarmActions"]


def test_destroying_a_stage_keeps_the_accounts_api_gateway_logging_role(dev):
    (account,) = dev.resources("AWS::ApiGateway::Account").values()
    assert account["DeletionPolicy"] == "Retain"
    role = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert dev.template["Resources"][role]["DeletionPolicy"] == "Retain"


def test_an_openai_provider_without_nat_fails_at_synth():
    from infra.stacks.config import load_config

    context = cdk_json_context() | {
        "generationProvider": "openai",
        "generationModel": "gpt-4o-mini",
        "natGateways": "0",
    }
    with pytest.raises(ValueError, match="natGateways"):
        load_config(context.get)
    assert load_config((context | {"natGateways": "1"}).get).nat_gateways == 1


def test_the_database_engine_pin_is_validated():
    from infra.stacks.config import load_config

    with pytest.raises(ValueError, match="dbEngineVersion"):
        load_config((cdk_json_context() | {"dbEngineVersion": "17"}).get)
    assert load_config((cdk_json_context() | {"dbEngineVersion": "17.5"}).get).db_engine_version == "17.5"


# --- web console --------------------------------------------------------------------------------------


def test_console_bucket_is_private_and_reached_only_through_cloudfront_with_oac(dev):
    site = dev.stack.site
    bucket_ref = ref_of(dev, site.bucket)
    bucket = dev.template["Resources"][bucket_ref]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert "WebsiteConfiguration" not in bucket  # no public website endpoint
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in dev.resources("AWS::S3::BucketPolicy").values()
        if mentions(p["Properties"]["Bucket"], bucket_ref)
    ]
    assert "aws:SecureTransport" in json.dumps(policy)
    reads = [s for s in policy if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
    assert reads and all(s["Effect"] == "Allow" for s in reads)
    assert mentions(reads[0]["Condition"], ref_of(dev, site.distribution))  # this distribution only

    (oac,) = dev.resources("AWS::CloudFront::OriginAccessControl").values()
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    config = dev.template["Resources"][ref_of(dev, site.distribution)]["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert "OriginAccessControlId" in origin and mentions(origin["DomainName"], bucket_ref)
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert config["DefaultRootObject"] == "index.html"
    assert config["Logging"]["Bucket"]


def test_console_gets_security_headers(dev):
    (policy,) = dev.resources("AWS::CloudFront::ResponseHeadersPolicy").values()
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = spelled(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self' https://*.execute-api.<AWS::Region>.<AWS::URLSuffix>" in csp
    assert "https://*.lambda-url.<AWS::Region>.on.aws" in csp
    # The console PUTs files to presigned URLs of the upload bucket (regional or global virtual host).
    assert "https://*.s3.<AWS::Region>.<AWS::URLSuffix> https://*.s3.<AWS::URLSuffix>;" in csp
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] == 365 * 24 * 3600
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["ContentTypeOptions"]["Override"] is True


def test_console_is_deployed_with_the_api_and_stream_urls_in_config_json(dev):
    deployments = {
        key: value["Properties"] for key, value in dev.resources("Custom::CDKBucketDeployment").items()
    }
    assert len(deployments) == 2
    bucket_ref = ref_of(dev, dev.stack.site.bucket)
    assert all(mentions(p["DestinationBucketName"], bucket_ref) for p in deployments.values())
    (assets,) = [p for p in deployments.values() if p.get("DestinationBucketKeyPrefix") == "assets/"]
    assert assets["SystemMetadata"]["cache-control"] == "public, max-age=31536000, immutable"
    assert assets["Prune"] is False  # pages loaded before a deploy still find their files
    (pages,) = [p for p in deployments.values() if "DestinationBucketKeyPrefix" not in p]
    assert pages["SystemMetadata"]["cache-control"] == "no-cache"
    assert mentions(pages["DistributionId"], ref_of(dev, dev.stack.site.distribution))
    assert "/config.json" in pages["DistributionPaths"] and "/index.html" in pages["DistributionPaths"]
    # config.json: the REST base (…/api/v1) and the stream Function URL + api/v1/query, at deploy time.
    markers = [spelled(v) for m in pages["SourceMarkers"] for v in m.values()]
    api_ref = ref_of(dev, dev.stack.api.api)
    assert any(f"https://<{api_ref}>.execute-api." in m and m.endswith('/api/v1"') for m in markers)
    url_ref = ref_of(dev, dev.stack.stream.url)
    assert f'"<{url_ref}.FunctionUrl>api/v1/query"' in markers
    assert spelled(dev.template["Outputs"]["ConsoleUrl"]["Value"]) == site_origin(dev)


def test_console_placeholder_only_in_stub_mode(tmp_path):
    from infra.stacks.assets import Assets, AssetsNotBuilt

    with pytest.raises(AssetsNotBuilt, match="make build"):
        Assets("built", root=tmp_path).console()
    (tmp_path / "web" / "dist").mkdir(parents=True)
    (tmp_path / "web" / "dist" / "index.html").write_text("<!doctype html>")
    assert Assets("built", root=tmp_path).console() == tmp_path / "web" / "dist"


def test_dashboard_shows_stage_latencies_provider_failures_and_the_alarms(full):
    (dashboard,) = full.resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for name in (
        "QueryEmbedLatency",
        "QuerySearchLatency",
        "QueryGenerateLatency",
        "IngestChunkLatency",
        "IngestEmbedLatency",
        "IngestStoreLatency",
        "ChunksEmbedded",
        "EmbeddingProviderErrors",
        "EmbeddingProviderThrottles",
        "GenerationProviderErrors",
        "GenerationProviderThrottles",
    ):
        assert name in body, name
    # Stage latencies of both functions that answer questions.
    assert '\\"service\\",\\"stream\\"' in body and '\\"service\\",\\"query\\"' in body
    # Tenants are never a dimension: the number of metrics does not grow with the tenants.
    assert "org_id" not in body
    # Every alarm of the stack is on the dashboard.
    for logical_id in full.resources("AWS::CloudWatch::Alarm"):
        assert logical_id in body, logical_id


def test_the_stream_function_leaves_tracing_to_lambda(full):
    assert env_of(full, "stream")["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert "POWERTOOLS_TRACE_DISABLED" not in env_of(full, "query")
