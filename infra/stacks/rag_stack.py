"""RagPlatformStack: network, database, ingestion, storage, functions, API, stream, migrations and
observability, composed from the constructs in infra/constructs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.build_assets import EMBEDDERS, GENERATORS, dir_size, function_layers
from infra.constructs.api import ROUTES, RestApi
from infra.constructs.database import Database
from infra.constructs.ingestion import Ingestion
from infra.constructs.migrations import Migrations
from infra.constructs.network import Network
from infra.constructs.observability import METRICS_NAMESPACE, Observability
from infra.constructs.service_function import CODE_EXCLUDES, ServiceFunction, check_unzipped_size
from infra.constructs.site import StaticSite
from infra.constructs.storage import Storage
from infra.constructs.stream import HANDLER as STREAM_HANDLER
from infra.constructs.stream import StreamEndpoint, adapter_layer
from infra.stacks.assets import Assets, LayerAsset, make_layer
from infra.stacks.config import LWA_ACCOUNT, LWA_LAYER_UNZIPPED_BYTES, StageConfig
from infra.stacks.nag import CROSS_REGION_PREFIXES, apply_suppressions

# Which services embed text and which generate answers: EMBEDDERS, GENERATORS (infra.build_assets).
# How often the reaper runs; its bounds (ragcore settings REAPER_*) say which documents are stale.
REAPER_PERIOD_MINUTES = 5
TOKEN_VERIFIERS = ("auth", "documents", "query", "stream")
# Functions that answer browsers (and so need the allowed CORS origins).
HTTP_SERVICES = ("auth", "documents", "query", "stream")

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    try:
        return _RETENTION[days]
    except KeyError:
        raise ValueError(f"logRetentionDays must be one of {sorted(_RETENTION)}") from None


def bedrock_model_arns(stack: Stack, model_id: str) -> list[str]:
    """Foundation-model ARN, or for a cross-region inference profile (``us.``/``eu.``/... prefix) the
    profile plus the underlying model in the regions the profile may route to."""
    if model_id.split(".", 1)[0] in CROSS_REGION_PREFIXES:
        base = model_id.split(".", 1)[1]
        return [
            f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:inference-profile/{model_id}",
            f"arn:{stack.partition}:bedrock:*::foundation-model/{base}",
        ]
    return [f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"]


class RagPlatformStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, assets: Assets, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        cfg = self.config = config
        self.assets = assets
        self.bedrock_models: dict[str, list[str]] = {}
        removal = RemovalPolicy.RETAIN if cfg.production else RemovalPolicy.DESTROY
        log_retention = retention(cfg.log_retention_days)

        # --- network, database, queue, storage -------------------------------------------------
        self.network = Network(
            self,
            "Network",
            max_azs=cfg.max_azs,
            nat_gateways=cfg.nat_gateways,
            bedrock=cfg.needs_bedrock,
            log_retention=log_retention,
            removal_policy=removal,
        )
        vpc = self.network.vpc
        self.database = Database(
            self,
            "Database",
            vpc=vpc,
            subnets=self.network.data_subnets,
            secrets_endpoint=self.network.secrets_endpoint,
            instance_class=cfg.db_instance_class,
            allocated_storage_gib=cfg.db_allocated_storage_gib,
            max_allocated_storage_gib=cfg.db_max_allocated_storage_gib,
            multi_az=cfg.db_multi_az,
            backup_retention_days=cfg.db_backup_retention_days,
            performance_insights=cfg.db_performance_insights,
            production=cfg.production,
            rotation_days=cfg.secret_rotation_days,
            log_retention=log_retention,
            engine_version=cfg.db_engine_version,
        )
        ingest_timeout = Duration.seconds(cfg.ingest_timeout_seconds)
        self.ingestion = Ingestion(
            self, "Ingestion", ingest_timeout=ingest_timeout, max_receive_count=cfg.ingest_max_receive_count
        )
        # The console's origin is allowed by the API, the stream URL and the upload bucket: created first.
        self.site = StaticSite(self, "Console", production=cfg.production)
        cors_origins = (*cfg.cors_origins, self.site.origin)
        self.cors_origins = cors_origins
        self.storage = Storage(self, "Storage", production=cfg.production, cors_origins=cors_origins)
        self.jwt_secret = secretsmanager.Secret(
            self,
            "JwtSecret",
            description="HS256 signing key of the API tokens (64 random characters)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=removal,
        )
        self.openai_secret = (
            secretsmanager.Secret.from_secret_name_v2(self, "OpenAiApiKey", cfg.openai_secret_name)
            if cfg.needs_openai
            else None
        )

        # --- layers ------------------------------------------------------------------------------
        core_asset = assets.core()
        deps_asset = assets.built_layer("deps")
        layer_assets: dict[str, LayerAsset] = {"core": core_asset, "deps": deps_asset}
        self.layers: dict[str, lambda_.ILayerVersion] = {
            "core": make_layer(self, "CoreLayer", core_asset, "ragcore, the platform's shared library"),
            "deps": make_layer(self, "DepsLayer", deps_asset, "runtime dependencies of ragcore"),
        }
        if cfg.embeds_locally:
            layer_assets["embed"] = assets.built_layer("embed")
            self.layers["embed"] = make_layer(
                self, "EmbedLayer", layer_assets["embed"], "onnxruntime and all-MiniLM-L6-v2, prebuilt"
            )
        openai_generation = cfg.generation_provider == "openai"
        if openai_generation:
            layer_assets["openai"] = assets.built_layer("openai")
            self.layers["openai"] = make_layer(
                self, "OpenAiLayer", layer_assets["openai"], "OpenAI SDK (answer generation)"
            )
        # The file parsers: only the ingest function reads uploaded files.
        layer_assets["extract"] = assets.built_layer("extract")
        self.layers["extract"] = make_layer(
            self, "ExtractLayer", layer_assets["extract"], "file parsers: Markdown, HTML, PDF, DOCX"
        )
        layer_assets["migrations"] = assets.migrations()
        self.layers["migrations"] = make_layer(
            self, "MigrationsLayer", layer_assets["migrations"], "SQL migrations"
        )

        # --- functions ---------------------------------------------------------------------------
        services = ["auth", "documents", "query", "ingest", "migrate", "reaper"]
        stream_on = cfg.stream_enabled == "on" or (
            cfg.stream_enabled == "auto" and assets.has_function("stream")
        )
        if stream_on:
            services.append("stream")
            self.layers["adapter"] = adapter_layer(
                self, "WebAdapterLayer", LWA_ACCOUNT, cfg.lwa_layer_version
            )

        common_env = {
            "STAGE": cfg.stage,
            **self.database.app_environment(),
            "JWT_SECRET_ARN": self.jwt_secret.secret_arn,
            "QUEUE_URL": self.ingestion.queue.queue_url,
            "UPLOAD_BUCKET": self.storage.bucket.bucket_name,
            "EMBEDDING_PROVIDER": cfg.embedding_provider,
            "GENERATION_PROVIDER": cfg.generation_provider,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        sizes = {
            "memory": {
                "auth": 1024,
                "documents": 1024,
                "query": cfg.query_memory_mb,
                "ingest": cfg.ingest_memory_mb,
                "migrate": 512,
                "reaper": 512,
                "stream": cfg.query_memory_mb,
            },
            "timeout": {
                "ingest": ingest_timeout,
                # Long enough for a large tenant's index build (maintenance, on a schedule).
                "migrate": Duration.minutes(15),
                "reaper": Duration.minutes(1),
                "stream": Duration.minutes(2),
            },
        }
        descriptions = {
            "auth": "register, login, users, API keys",
            "documents": "document CRUD, upload URLs; queues ingestion",
            "query": "synchronous answers, health",
            "ingest": "SQS batches: extract, chunk, embed, store",
            "migrate": "applies SQL migrations (CDK Trigger), maintains tenant vector indexes",
            "reaper": "scheduled: re-sends or fails documents stranded in pending/processing",
            "stream": "SSE answers (Lambda Web Adapter)",
        }
        # Layers referenced by ARN have no files to measure: their recorded sizes are counted instead.
        arn_layer_sizes = {"adapter": LWA_LAYER_UNZIPPED_BYTES}
        self.functions: dict[str, ServiceFunction] = {}
        for service in services:
            built = function_layers(
                service, local_embedding=cfg.embeds_locally, openai_generation=openai_generation
            )
            # "web" (the ASGI server) ships inside the stream function's code: Lambda allows five layers.
            layer_names = ["core"] + [n for n in built if n != "web"]
            if service == "migrate":
                layer_names.append("migrations")
            if service == "stream":
                layer_names.append("adapter")
            env = dict(common_env, POWERTOOLS_SERVICE_NAME=service)
            if service == "stream":
                # Its Python process serves HTTP behind the Web Adapter, outside the Lambda runtime
                # interface: the X-Ray SDK finds no segment to attach subsegments to (it would log an
                # error per call). Lambda's active tracing still records each invocation.
                env["POWERTOOLS_TRACE_DISABLED"] = "true"
            env.update(self._provider_environment(service))
            if service == "migrate":
                env["MIGRATION_DB_SECRET_ARN"] = self.database.master_secret.secret_arn
            if service in HTTP_SERVICES:
                env["CORS_ALLOWED_ORIGINS"] = ",".join(cors_origins)
            fn = ServiceFunction(
                self,
                f"{service.capitalize()}Function",
                service=service,
                code_dir=assets.function_code(
                    service, with_web="web" in built, with_openai="openai" in built
                ),
                description=f"RAG platform ({cfg.stage}): {descriptions[service]}",
                handler=STREAM_HANDLER if service == "stream" else "handler.lambda_handler",
                layers=[self.layers[n] for n in layer_names],
                environment=env,
                log_retention=log_retention,
                removal_policy=removal,
                memory_size=sizes["memory"][service],
                timeout=sizes["timeout"].get(service),
                vpc=vpc,
                vpc_subnets=self.network.app_subnets,
                reserved_concurrency=(
                    (cfg.stream_reserved_concurrency or None) if service == "stream" else None
                ),
            )
            fn.layer_names = layer_names
            self.functions[service] = fn
            # Every layer counts, the ones referenced by ARN included (placeholders are tiny: this only
            # bites with the real build, but it runs the same way with both).
            fn.unzipped_parts = {"code": dir_size(fn.code_dir, tuple(CODE_EXCLUDES))} | {
                n: layer_assets[n].size if n in layer_assets else arn_layer_sizes[n] for n in layer_names
            }
            fn.unzipped_bytes = check_unzipped_size(service, fn.unzipped_parts)

        # --- permissions (grant_* only) ----------------------------------------------------------
        for service, fn in self.functions.items():
            self.database.app_secret.grant_read(fn.function)
            if service == "migrate":
                self.database.master_secret.grant_read(fn.function)
                self.database.allow_owner(fn.function)
            else:
                self.database.allow_app(fn.function)
            if service in TOKEN_VERIFIERS:
                self.jwt_secret.grant_read(fn.function)
            uses_openai = (service in EMBEDDERS and cfg.embedding_provider == "openai") or (
                service in GENERATORS and cfg.generation_provider == "openai"
            )
            if uses_openai and self.openai_secret is not None:
                self.openai_secret.grant_read(fn.function)
            self._grant_bedrock(service, fn)
        self.ingestion.queue.grant_send_messages(self.functions["documents"].function)
        self.storage.allow_uploads(self.functions["documents"].function)
        self.storage.allow_ingest(self.functions["ingest"].function)
        self.storage.notify(self.ingestion.queue)
        self.ingestion.connect(
            self.functions["ingest"],
            batch_size=cfg.ingest_batch_size,
            max_concurrency=cfg.ingest_max_concurrency,
        )
        self.ingestion.reap_with(self.functions["reaper"], every=Duration.minutes(REAPER_PERIOD_MINUTES))

        # --- API, stream, migrations, observability ----------------------------------------------
        self.api = RestApi(
            self,
            "Api",
            name=f"rag-platform-{cfg.stage}",
            throttle_rate=cfg.api_throttle_rate,
            throttle_burst=cfg.api_throttle_burst,
            auth_throttle_rate=cfg.auth_throttle_rate,
            auth_throttle_burst=cfg.auth_throttle_burst,
            cors_origins=cors_origins,
            log_retention=log_retention,
            removal_policy=removal,
        )
        for service, routes in ROUTES.items():
            self.api.route(self.functions[service], routes)
        self.stream = (
            StreamEndpoint(self, "Stream", function=self.functions["stream"], cors_origins=cors_origins)
            if stream_on
            else None
        )
        # Without a stream function the console's chat gets the API's 404 for /query, in the error body.
        stream_url = (
            f"{self.stream.url.url}api/v1/query" if self.stream is not None else f"{self.api.base_url}/query"
        )
        self.site.deploy(assets.console(), api_base_url=self.api.base_url, stream_url=stream_url)
        self.migrations = Migrations(
            self,
            "Migrations",
            function=self.functions["migrate"],
            execute_after=[self.network, self.database],
            timeout=Duration.minutes(5),
            maintenance_every=Duration.minutes(15),
        )
        self.observability = Observability(
            self,
            "Observability",
            dashboard_name=f"rag-platform-{cfg.stage}",
            api=self.api.api,
            functions={k: v for k, v in self.functions.items() if k != "migrate"},
            queue=self.ingestion.queue,
            dead_letter_queue=self.ingestion.dead_letter_queue,
            instance=self.database.instance,
            proxy=self.database.proxy,
            db_connections_threshold=cfg.db_connections_alarm_threshold,
            alarm_email=cfg.alarm_email,
        )

        # --- outputs -----------------------------------------------------------------------------
        CfnOutput(self, "ApiUrl", value=self.api.base_url, description="REST API base URL (…/api/v1)")
        if self.stream is not None:
            CfnOutput(
                self,
                "StreamUrl",
                value=self.stream.url.url,
                description="Function URL of the SSE endpoint: POST {StreamUrl}api/v1/query",
            )
        CfnOutput(self, "ConsoleUrl", value=self.site.origin, description="The web console (CloudFront)")
        CfnOutput(self, "IngestQueueUrl", value=self.ingestion.queue.queue_url)
        CfnOutput(self, "IngestDeadLetterQueueUrl", value=self.ingestion.dead_letter_queue.queue_url)
        CfnOutput(self, "UploadBucketName", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "DatabaseProxyEndpoint", value=self.database.proxy.endpoint)
        CfnOutput(self, "DatabaseAppSecretArn", value=self.database.app_secret.secret_arn)
        CfnOutput(self, "JwtSecretArn", value=self.jwt_secret.secret_arn)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=f"rag-platform-{cfg.stage}")

        apply_suppressions(self)

    # ---------------------------------------------------------------------------------------------
    def _provider_environment(self, service: str) -> dict[str, str]:
        cfg = self.config
        env: dict[str, str] = {}
        if service in EMBEDDERS:
            if cfg.embedding_model:
                env["EMBEDDING_MODEL"] = cfg.embedding_model
            if cfg.embedding_dimensions:
                env["EMBEDDING_DIMENSIONS"] = str(cfg.embedding_dimensions)
        if service in GENERATORS and cfg.generation_model:
            env["GENERATION_MODEL"] = cfg.generation_model
        uses_openai = (service in EMBEDDERS and cfg.embedding_provider == "openai") or (
            service in GENERATORS and cfg.generation_provider == "openai"
        )
        if uses_openai:
            if cfg.openai_base_url:
                env["OPENAI_BASE_URL"] = cfg.openai_base_url
            env["OPENAI_API_KEY_SECRET_ARN"] = self.openai_secret.secret_arn
        return env

    def _grant_bedrock(self, service: str, fn: ServiceFunction) -> None:
        cfg = self.config
        arns: list[str] = []
        actions: set[str] = set()
        if service in EMBEDDERS and cfg.embedding_provider == "bedrock":
            arns += bedrock_model_arns(self, cfg.embedding_model)
            actions.add("bedrock:InvokeModel")
        if service in GENERATORS and cfg.generation_provider == "bedrock":
            arns += bedrock_model_arns(self, cfg.generation_model)
            actions |= {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}
        self.bedrock_models[service] = [
            m
            for m, used in (
                (cfg.embedding_model, service in EMBEDDERS and cfg.embedding_provider == "bedrock"),
                (cfg.generation_model, service in GENERATORS and cfg.generation_provider == "bedrock"),
            )
            if used
        ]
        if arns:
            iam.Grant.add_to_principal(
                grantee=fn.function, actions=sorted(actions), resource_arns=sorted(set(arns))
            )
