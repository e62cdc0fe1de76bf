"""LocalStack in host mode (no Docker) as the local stack's SQS and S3, and `make run-localstack`.

`python -m infra.local.localstack` starts LocalStack from its own virtual environment (LOCALSTACK_PYTHON,
default .venv-localstack/bin/python) on 127.0.0.1:LOCALSTACK_PORT (4566), exports what the local stack
needs to use it (AWS_ENDPOINT_URL, dummy credentials, a region), runs the local stack until SIGINT or
SIGTERM, then stops LocalStack. LocalStack's state lives under <DATA_DIR>/localstack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, MutableMapping
from pathlib import Path

log = logging.getLogger("infra.local.localstack")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = REPO_ROOT / ".venv-localstack" / "bin" / "python"
SERVICES = ("sqs", "s3")
READY_STATES = ("available", "running")
# LocalStack accepts any key pair; boto3 only needs one to sign.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


class LocalStackError(RuntimeError):
    """LocalStack is not installed, exited, or did not become ready in time."""


class LocalStackProcess:
    """One LocalStack runtime in host mode, in the caller's process group (so a group kill takes it too)."""

    def __init__(
        self,
        python: Path,
        port: int,
        work_dir: Path,
        *,
        services: tuple[str, ...] = SERVICES,
        environ: Mapping[str, str] | None = None,
    ):
        self.python = Path(python)
        self.port = port
        self.work_dir = Path(work_dir)
        self.services = services
        self.environ = dict(os.environ if environ is None else environ)
        self.log_path = self.work_dir / "localstack.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in self.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_"))}
        env.update(
            GATEWAY_LISTEN=f"127.0.0.1:{self.port}",
            SERVICES=",".join(self.services),
            # Host mode: state under work_dir, even when this machine is itself a container (LocalStack
            # would then pick its container layout under /var/lib/localstack).
            OVERRIDE_IN_DOCKER="0",
            FILESYSTEM_ROOT=str(self.work_dir / "filesystem"),
            # Offline-friendly: no DNS server of its own, no certificate download, no analytics.
            DNS_ADDRESS="0",
            SKIP_SSL_CERT_DOWNLOAD="1",
            DISABLE_EVENTS="1",
            # Queue URLs such as http://127.0.0.1:4566/queue/us-east-1/000000000000/name, which need no
            # DNS (the default names a host under localhost.localstack.cloud).
            SQS_ENDPOINT_STRATEGY="path",
            **DUMMY_CREDENTIALS,
        )
        return env

    def start(self, timeout: float = 90) -> str:
        """Starts LocalStack and waits until every service answers; returns its URL."""
        if not self.python.exists():
            raise LocalStackError(
                f"LocalStack is not installed: {self.python} does not exist (make localstack-venv)"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "localstack.runtime.main"],
                cwd=self.work_dir,
                env=self._environment(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise LocalStackError(f"LocalStack exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._ready():
                log.info("LocalStack (%s) on %s", ", ".join(self.services), self.url)
                return self.url
            if time.monotonic() > deadline:
                self.stop()
                raise LocalStackError(f"LocalStack not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.25)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_localstack/health", timeout=2) as response:
                states = json.load(response).get("services", {})
        except (OSError, ValueError):
            return False
        return all(states.get(service) in READY_STATES for service in self.services)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (LocalStack shuts its services down), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def client_environment(endpoint: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What the local stack needs to use LocalStack: the endpoint, dummy credentials unless real-looking
    ones are set, a region."""
    values = {"AWS_ENDPOINT_URL": endpoint}
    if not environ.get("AWS_ACCESS_KEY_ID"):
        values.update(DUMMY_CREDENTIALS)
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    values.update(AWS_REGION=region, AWS_DEFAULT_REGION=region)
    return values


def main(environ: MutableMapping[str, str] = os.environ) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = Path(environ.get("DATA_DIR", ".local")).resolve()
    localstack = LocalStackProcess(
        Path(environ.get("LOCALSTACK_PYTHON") or DEFAULT_PYTHON),
        int(environ.get("LOCALSTACK_PORT") or 4566),
        data_dir / "localstack",
    )
    # SIGTERM must unwind through the finally below (LocalStack is stopped there); the local stack's own
    # handlers replace this one once it starts.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        endpoint = localstack.start()
    except LocalStackError as exc:
        log.error("%s", exc)
        return 1
    try:
        environ.update(client_environment(endpoint, environ))
        from .__main__ import main as run_local_stack

        return run_local_stack()
    finally:
        with contextlib.suppress(Exception):
            localstack.stop()


if __name__ == "__main__":
    sys.exit(main())
