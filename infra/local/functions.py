"""Loads the Lambda handlers of the template and invokes them the way the Lambda runtime does."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .events import LambdaContext
from .template import FunctionSpec

log = logging.getLogger("infra.local.functions")


class FunctionError(RuntimeError):
    """The function could not be loaded or raised: in AWS the caller sees an invocation error."""


class Throttled(RuntimeError):
    """Every environment stayed busy for the whole wait: Lambda would refuse the invocation (429)."""


class LocalFunction:
    """One function and its warm execution environments, the way Lambda scales a function out.

    An environment runs one event at a time (handler modules keep per-invocation state in globals:
    Powertools resolvers, batch processors), so each environment is its own import of the handler file.
    Concurrent requests get concurrent environments, up to ``max_environments`` (Lambda's concurrency
    limit, small here); beyond that they wait for one to be free. Idle environments are reused, newest
    first, as Lambda prefers warm ones.
    """

    def __init__(self, spec: FunctionSpec, root: Path, region: str = "us-east-1", max_environments: int = 4):
        self.spec = spec
        self.root = root
        self.region = region
        self.max_environments = max_environments
        self._available = threading.Condition()
        self._idle: list[Any] = []  # handlers of warm environments not serving a request
        self._environments = 0
        self._load_error: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def idle_handlers(self) -> list[Any]:
        """The handlers of the warm environments not serving a request, most recently used last."""
        with self._available:
            return list(self._idle)

    @property
    def busy(self) -> int:
        """How many environments are running an invocation right now."""
        with self._available:
            return self._environments - len(self._idle)

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no invocation is running; False if one still is after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._available:
            while self._environments - len(self._idle) > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._available.wait(remaining)
            return True

    def _cold_start(self) -> Any:
        """Imports the handler module for a new environment; None (error kept) when it cannot load."""
        module_name, _, attribute = self.spec.handler.rpartition(".")
        code_dir = (self.root / self.spec.code_uri).resolve()
        path = code_dir / (module_name.replace(".", "/") + ".py")
        unique = f"_lambda_{self.spec.name}_{module_name.replace('.', '_')}_{uuid.uuid4().hex[:8]}"
        try:
            module = _import_file(unique, path, code_dir)
            handler = getattr(module, attribute)
        except Exception as exc:  # any import-time failure is the function's, not the stack's
            shown = path.relative_to(self.root) if path.is_relative_to(self.root) else path
            self._load_error = f"cannot load {shown}: {exc!r}"
            log.error("%s: %s\n%s", self.name, self._load_error, traceback.format_exc())
            return None
        self._load_error = None
        return handler

    def load(self) -> bool:
        """Starts one warm environment ahead of the first request. A failure is reported per invocation."""
        with self._available:
            if self._idle:
                return True
            self._environments += 1
        handler = self._cold_start()
        with self._available:
            if handler is None:
                self._environments -= 1
            else:
                self._idle.append(handler)
            self._available.notify()
        return handler is not None

    def _acquire(self, wait_seconds: float | None = None) -> Any:
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        with self._available:
            while not self._idle and self._environments >= self.max_environments:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Throttled(f"{self.name}: all {self.max_environments} environments are busy")
                self._available.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._environments += 1
        handler = self._cold_start()
        if handler is None:
            with self._available:
                self._environments -= 1
                self._available.notify()
            raise FunctionError(self._load_error)
        return handler

    def _release(self, handler: Any) -> None:
        with self._available:
            self._idle.append(handler)
            self._available.notify()

    def invoke(
        self,
        event: dict[str, Any],
        request_id: str | None = None,
        *,
        wait_seconds: float | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Any:
        """Runs the event in a free environment and returns what the handler returned.

        ``wait_seconds`` bounds the wait for a free environment (Throttled past it; None waits as long
        as it takes, as the SQS poller does). ``on_start`` is called once the handler has an environment:
        the gateway's integration timeout counts from there, not from the time spent queued.
        """
        handler = self._acquire(wait_seconds)
        if on_start is not None:
            on_start()
        context = LambdaContext(
            function_name=self.spec.name,
            memory_limit_in_mb=str(self.spec.memory_size),
            timeout_seconds=self.spec.timeout,
            region=self.region,
        )
        if request_id:
            context.aws_request_id = request_id
        try:
            return handler(event, context)
        except Exception as exc:
            log.error("%s raised (request %s)\n%s", self.name, context.aws_request_id, traceback.format_exc())
            raise FunctionError(f"{self.name} raised {type(exc).__name__}: {exc}") from exc
        finally:
            self._release(handler)


_IMPORT_LOCK = threading.Lock()  # cold starts in parallel must not interleave their sys.path changes


def _import_file(module_name: str, path: Path, code_dir: Path) -> ModuleType:
    """Imports one handler file under a unique name (every function's file is called handler.py).

    The code directory is on sys.path while the module executes, as /var/task is in Lambda, so a
    handler can import helper modules that sit beside it.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no handler file at {path}")
    with _IMPORT_LOCK:
        return _import_file_locked(module_name, path, code_dir)


def _import_file_locked(module_name: str, path: Path, code_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(code_dir))
    return module
