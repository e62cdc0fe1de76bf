"""Starts and stops the whole local platform in this process."""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .console import ConsoleSite
from .events import RouteTable
from .functions import LocalFunction
from .gateway import Gateway
from .template import TEMPLATE_NAME, load_template, resolve_environment

log = logging.getLogger("infra.local")

REPO_ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET_FILE = "jwt-secret"
LOCAL_VISIBILITY_TIMEOUT = 30  # seconds; long enough for one ingest batch, short enough to see retries
# The reaper's bounds locally (unless exported): past the local visibility timeout and any local ingest
# run, far shorter than in AWS so a stranded document is seen to move within minutes.
LOCAL_REAPER_BOUNDS = {"REAPER_PENDING_AFTER_SECONDS": "120", "REAPER_PROCESSING_AFTER_SECONDS": "300"}
MAX_HEADER_READ_BYTES = 8 * 1024 * 1024
CONSOLE_DIST = Path("web") / "dist"
STREAM_APP = ("functions/stream/app.py", "app", "/api/v1/query")  # file, ASGI attribute, served path


@dataclass
class StackConfig:
    data_dir: Path = Path(".local")
    port: int = 8080
    host: str = "127.0.0.1"
    root: Path = REPO_ROOT
    poll_wait_seconds: int = 5
    # Scheduled functions (the reaper) run this often at most, whatever their rate in the template.
    schedule_period_seconds: float = 60
    # On stop, how long running invocations may take to finish before they are abandoned.
    shutdown_grace_seconds: float = 10
    # Extra ASGI apps served at exact paths without a proxy event (see Gateway); overrides discovery.
    asgi_routes: dict[str, Callable[..., Any]] | None = None
    # Also serve the embedded PostgreSQL on 127.0.0.1:<pg_port> (clients in containers: `sam local`).
    pg_port: int | None = None
    # The built web console served at / (default: <root>/web/dist, which `make run` builds).
    console_dir: Path | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StackConfig:
        pg_port = environ.get("PG_PORT")
        return cls(
            data_dir=Path(environ.get("DATA_DIR", ".local")),
            port=int(environ.get("PORT", "8080")),
            shutdown_grace_seconds=float(environ.get("SHUTDOWN_GRACE_SECONDS", "10")),
            pg_port=int(pg_port) if pg_port else None,
        )


def load_or_create_jwt_secret(data_dir: Path) -> str:
    """A per-installation signing secret, generated once; 0600 because it mints anyone's tokens."""
    path = data_dir / JWT_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="ascii").strip()
        if len(secret.encode()) < 32:
            raise RuntimeError(
                f"{path} holds a secret shorter than 32 bytes; delete it to get a new one"
            ) from None
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    return secret


@dataclass
class LocalStack:
    config: StackConfig
    environ: MutableMapping[str, str] = field(default_factory=lambda: os.environ)

    def __post_init__(self) -> None:
        self.url: str | None = None
        self.queue_urls: dict[str, str] = {}
        self.bucket_names: dict[str, str] = {}
        self.tcp_database_urls: dict[str, str] = {}
        self.functions: dict[str, LocalFunction] = {}
        self._database: Any = None
        self._moto: Any = None
        self._pollers: list[Any] = []
        self._schedulers: list[Any] = []
        self.abandoned_invocations = 0
        self._gateway: Gateway | None = None
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._env_before: dict[str, str | None] = {}

    def _setenv(self, **values: str) -> None:
        """Sets variables and remembers what they were, so stop() leaves the environment as it found it
        (a second stack in the same process must not mistake the first one's URLs for user settings)."""
        for key, value in values.items():
            self._env_before.setdefault(key, self.environ.get(key))
            self.environ[key] = value

    # ------------------------------------------------------------------------------------------ start

    def start(self) -> str:
        """Brings everything up; returns the base URL. On failure, stops what it had started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> str:
        cfg = self.config
        env = self.environ
        if env.get("JWT_SECRET") and len(env["JWT_SECRET"].encode()) < 32:
            # Checked before anything starts: every token would be refused or guessable.
            raise SystemExit("JWT_SECRET must be at least 32 bytes long; unset it to use a generated one")
        template = load_template(cfg.root / TEMPLATE_NAME)
        data_dir = cfg.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        for relative in template.layer_import_paths:  # what Lambda mounts under /opt/python
            layer = (cfg.root / relative).resolve()
            # Layers of third-party packages (a requirements file, or built by make) have no source to
            # import here: the virtual environment provides their packages.
            if _has_python_source(layer) and str(layer) not in sys.path:
                sys.path.insert(0, str(layer))

        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._setenv(AWS_REGION=region, AWS_DEFAULT_REGION=region)
        stage = env.get("STAGE", "local")
        app_role = env.get("DB_APP_ROLE", "rag_app")

        # (a) database: an external one when both URLs are given, else embedded PostgreSQL.
        if env.get("DATABASE_URL") and env.get("MIGRATION_DATABASE_URL"):
            app_url, owner_url = env["DATABASE_URL"], env["MIGRATION_DATABASE_URL"]
            log.info("using the database of DATABASE_URL / MIGRATION_DATABASE_URL")
            if cfg.pg_port is not None:
                log.warning("PG_PORT ignored: it exposes the embedded PostgreSQL, which is not running")
        else:
            from .postgres import start_postgres

            self._database = start_postgres(data_dir, app_role)
            app_url, owner_url = self._database.app_url, self._database.owner_url
            log.info("embedded PostgreSQL running, data in %s", data_dir / "pgdata")
            if cfg.pg_port is not None:
                self._database.expose_tcp("127.0.0.1", cfg.pg_port)
                self.tcp_database_urls = {
                    "DATABASE_URL": self._database.tcp_url(app_url),
                    "MIGRATION_DATABASE_URL": self._database.tcp_url(owner_url),
                }
                for key, value in self.tcp_database_urls.items():
                    log.info("over TCP: %s=%s", key, value)

        # (b) the JWT secret.
        jwt_secret = env.get("JWT_SECRET") or load_or_create_jwt_secret(data_dir)

        # (c) SQS: moto in this process, unless AWS_ENDPOINT_URL names LocalStack or AWS. moto is announced
        # to SQS clients only (AWS_ENDPOINT_URL_SQS), so that Bedrock or Secrets Manager calls still reach
        # AWS when a provider needs them.
        user_endpoint = env.get("AWS_ENDPOINT_URL")
        endpoint = user_endpoint or self._start_moto()
        import boto3

        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=region)
        self.queue_urls = _ensure_queues(sqs, template, stage)
        # The upload bucket, notifying the ingest queue as in AWS (moto's S3 sends those events itself).
        from botocore.config import Config

        from .s3 import ensure_buckets

        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name=region, config=Config(signature_version="s3v4")
        )
        queue_arns = {
            name: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            for name, url in self.queue_urls.items()
        }
        self.bucket_names = ensure_buckets(s3, template, name_prefix=f"rag-{stage}", queue_arns=queue_arns)

        # A function whose handler is a start script (run.sh) runs under the Lambda Web Adapter in AWS:
        # here its ASGI app is served directly (asgi_routes below), with neither a handler to load nor
        # the adapter's variables.
        specs = {name: spec for name, spec in template.functions.items() if not spec.handler.endswith(".sh")}

        # The functions' environment: the template's, with local values and the user's exports.
        overrides = {key: env[key] for fn in specs.values() for key in fn.environment if key in env}
        overrides.update(
            STAGE=stage,
            DATABASE_URL=app_url,
            MIGRATION_DATABASE_URL=owner_url,
            DB_APP_ROLE=app_role,
            JWT_SECRET=jwt_secret,
            AWS_ENDPOINT_URL=endpoint,
        )
        merged: dict[str, str] = {}
        for fn in specs.values():
            for key, value in resolve_environment(
                template, fn, overrides, {**self.queue_urls, **self.bucket_names}
            ).items():
                if merged.get(key, value) != value:
                    log.warning(
                        "%s sets %s differently from another function; one process, first value wins",
                        fn.name,
                        key,
                    )
                merged.setdefault(key, value)
        # All functions share this process, so they share one environment.
        if not user_endpoint:
            merged.pop("AWS_ENDPOINT_URL", None)
        self._setenv(**{**merged, "AWS_ENDPOINT_URL_SQS": endpoint, "AWS_ENDPOINT_URL_S3": endpoint})
        if "POWERTOOLS_TRACE_DISABLED" not in env:
            self._setenv(POWERTOOLS_TRACE_DISABLED="true")  # no X-Ray daemon here
        self._setenv(**{key: value for key, value in LOCAL_REAPER_BOUNDS.items() if key not in env})
        _reset_ragcore_settings()
        if self.tcp_database_urls:
            self._write_sam_env_vars(data_dir, jwt_secret, merged.get("QUEUE_URL", ""), endpoint)

        _apply_migrations(owner_url)
        _reap_at_start()

        # (d) functions and the gateway; (e) one poller per SQS event source.
        self.functions = {name: LocalFunction(spec, cfg.root, region) for name, spec in specs.items()}
        for function in self.functions.values():
            function.load()  # cold start now, not on the first request; failures become 502s

        from .sqs import SqsPoller

        for name, spec in template.functions.items():
            for source in spec.sqs_events:
                poller = SqsPoller(
                    sqs,
                    self.queue_urls[source.queue],
                    self.functions[name],
                    source,
                    region=region,
                    wait_seconds=cfg.poll_wait_seconds,
                )
                poller.start()
                self._pollers.append(poller)

        from .schedule import Scheduler

        for name, spec in template.functions.items():
            for period in spec.schedules:
                scheduler = Scheduler(
                    self.functions[name], min(period, cfg.schedule_period_seconds), region=region
                )
                scheduler.start()
                self._schedulers.append(scheduler)

        console_dir = cfg.console_dir or cfg.root / CONSOLE_DIST
        asgi_routes = cfg.asgi_routes if cfg.asgi_routes is not None else _discover_stream_app(cfg.root)
        self._gateway = Gateway(
            RouteTable(template.routes),
            self.functions,
            stage=template.stage_name,
            binary_media_types=template.binary_media_types,
            asgi_routes=asgi_routes,
            # The console PUTs files to the presigned URLs, which name the S3 endpoint.
            site=ConsoleSite(console_dir, connect=(_origin(endpoint),)),
        )
        self.url = self._serve(self._gateway)
        if (console_dir / "index.html").is_file():
            log.info("web console on %s/", self.url)
        else:
            log.warning("the web console is not built (%s): `make run` builds it", console_dir)
        return self.url

    def _write_sam_env_vars(self, data_dir: Path, jwt_secret: str, queue_url: str, endpoint: str) -> None:
        from .samenv import sam_env_vars, write_sam_env_vars

        path = write_sam_env_vars(
            data_dir,
            sam_env_vars(
                database_url=self.tcp_database_urls["DATABASE_URL"],
                migration_database_url=self.tcp_database_urls["MIGRATION_DATABASE_URL"],
                jwt_secret=jwt_secret,
                queue_url=queue_url,
                upload_bucket=self.bucket_names.get("UploadBucket", ""),
            ),
        )
        log.info("for sam local: --env-vars %s --parameter-overrides AwsEndpointUrl=%s", path, endpoint)

    def _start_moto(self) -> str:
        from .s3 import LocalAwsServer

        # Dummy credentials: boto3 refuses to sign without some, and moto accepts any. The endpoint checks
        # presigned URLs (upload URLs) against them, as S3 checks them against the signer's keys.
        if not self.environ.get("AWS_ACCESS_KEY_ID"):
            self._setenv(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        self._moto = LocalAwsServer(
            "127.0.0.1",
            0,
            secrets={self.environ["AWS_ACCESS_KEY_ID"]: self.environ.get("AWS_SECRET_ACCESS_KEY", "")},
        )
        url = self._moto.start()
        log.info("moto SQS and S3 endpoint on %s", url)
        return url

    def _serve(self, app: Gateway) -> str:
        import uvicorn

        cfg = self.config
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=cfg.host,
                port=cfg.port,
                lifespan="off",
                log_level="info",
                # h11 drops a request whose headers exceed 16 KiB by closing the connection (a client
                # still sending sees a reset, no body); reading up to 8 MiB of them lets the gateway
                # answer 431 with the error body, as API Gateway does past its 10 KiB.
                http="h11",
                h11_max_incomplete_event_size=MAX_HEADER_READ_BYTES,
            )
        )
        # Not the main thread, so uvicorn leaves signal handling to us.
        self._server_thread = threading.Thread(target=self._server.run, name="gateway", daemon=True)
        self._server_thread.start()
        while not self._server.started:
            if not self._server_thread.is_alive():
                raise RuntimeError(f"the gateway could not listen on {cfg.host}:{cfg.port}")
            time.sleep(0.05)
        port = self._server.servers[0].sockets[0].getsockname()[1]  # the real one when PORT=0
        return f"http://{cfg.host}:{port}"

    # ------------------------------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Stops in reverse order; safe to call twice and after a failed start."""
        if self._server is not None:
            self._server.should_exit = True
            if self._server_thread is not None:
                self._server_thread.join(10)
            self._server = None
        # Background work first gets the grace period to finish (the pollers' long poll ends within its
        # wait time); an invocation still running after it is abandoned, as Lambda abandons an
        # environment that is shut down: its message is gone with this process's queue, and the reaper
        # re-sends its document at the next start.
        background = [*self._schedulers, *self._pollers]
        for worker in background:
            worker.request_stop()
        deadline = time.monotonic() + self.config.shutdown_grace_seconds
        for worker in background:
            worker.stop(max(0.0, deadline - time.monotonic()))
        self._schedulers, self._pollers = [], []
        for function in self.functions.values():
            function.wait_idle(max(0.0, deadline - time.monotonic()))
        self.abandoned_invocations = sum(function.busy for function in self.functions.values())
        if self.abandoned_invocations:
            log.warning(
                "%d invocation(s) still running after %ss are abandoned; the reaper re-sends their "
                "documents at the next start",
                self.abandoned_invocations,
                self.config.shutdown_grace_seconds,
            )
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._database is not None:
            self._database.stop()
            self._database = None
        for key, value in self._env_before.items():
            if value is None:
                self.environ.pop(key, None)
            else:
                self.environ[key] = value
        self._env_before = {}
        _reset_ragcore_settings()


def _ensure_queues(sqs: Any, template: Any, stage: str) -> dict[str, str]:
    from .sqs import ensure_queues

    return ensure_queues(
        sqs, template, name_prefix=f"rag-{stage}", visibility_timeout=LOCAL_VISIBILITY_TIMEOUT
    )


def _has_python_source(directory: Path) -> bool:
    return directory.is_dir() and any(
        child.suffix == ".py" or (child / "__init__.py").is_file() for child in directory.iterdir()
    )


def _reset_ragcore_settings() -> None:
    try:
        from ragcore.config import reset_settings
    except ImportError:
        return
    reset_settings()


def _apply_migrations(owner_url: str) -> None:
    try:
        from ragcore.migrations import apply_migrations
    except ImportError as exc:
        raise RuntimeError(f"cannot import ragcore.migrations.apply_migrations: {exc}") from exc
    applied = apply_migrations(owner_url)
    log.info("migrations: %s", ", ".join(applied) if applied else "up to date")


def _reap_at_start() -> None:
    """Documents left pending/processing by the previous run go back to the queue (or fail when their
    attempts are used up) at once: this process's queue is new, so nothing of theirs is still in flight."""
    from ragcore.queue import get_ingest_queue
    from ragcore.reaper import reap

    get_ingest_queue.cache_clear()  # the queue URL may differ from a previous stack in this process
    report = reap(pending_after_seconds=0, processing_after_seconds=0)
    if report.requeued or report.failed or report.unsent:
        log.info(
            "reaper at start-up: %d re-sent, %d failed, %d not sent",
            len(report.requeued),
            len(report.failed),
            len(report.unsent),
        )


def _discover_stream_app(root: Path) -> dict[str, Callable[..., Any]]:
    """The streaming ASGI app, when functions/stream/ provides one (it is optional)."""
    relative, attribute, served_path = STREAM_APP
    path = root / relative
    if not path.is_file():
        return {}
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("_lambda_stream_app", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    log.info("serving the stream app of %s at POST %s", relative, served_path)
    return {served_path: getattr(module, attribute)}


def _origin(url: str) -> str:
    """The origin (scheme://host[:port]) of ``url``, as a Content-Security-Policy source names it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
