"""Loads the Lambda handlers of the template and invokes them the way the Lambda runtime does."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from .events import LambdaContext
from .template import FunctionSpec

log = logging.getLogger("infra.local.functions")


class FunctionError(RuntimeError):
    """The function could not be loaded or raised: in AWS the caller sees an invocation error."""


class LocalFunction:
    """One function, one warm execution environment.

    Invocations are serialised per function, as Lambda runs one event at a time per environment:
    handler modules keep per-invocation state in globals (Powertools resolvers, logger keys) and
    would mix concurrent requests up otherwise.
    """

    def __init__(self, spec: FunctionSpec, root: Path, region: str = "us-east-1"):
        self.spec = spec
        self.root = root
        self.region = region
        self._lock = threading.Lock()
        self._handler: Any = None
        self._load_error: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def load(self) -> bool:
        """Imports the handler module (the cold start). A failure is kept and reported per invocation."""
        module_name, _, attribute = self.spec.handler.rpartition(".")
        code_dir = (self.root / self.spec.code_uri).resolve()
        path = code_dir / (module_name.replace(".", "/") + ".py")
        try:
            module = _import_file(f"_lambda_{self.spec.name}_{module_name.replace('.', '_')}", path, code_dir)
            self._handler = getattr(module, attribute)
            self._load_error = None
        except Exception as exc:  # any import-time failure is the function's, not the stack's
            shown = path.relative_to(self.root) if path.is_relative_to(self.root) else path
            self._load_error = f"cannot load {shown}: {exc!r}"
            log.error("%s: %s\n%s", self.name, self._load_error, traceback.format_exc())
            return False
        return True

    def invoke(self, event: dict[str, Any], request_id: str | None = None) -> Any:
        with self._lock:
            if self._handler is None and not self.load():
                raise FunctionError(self._load_error)
            context = LambdaContext(
                function_name=self.spec.name,
                memory_limit_in_mb=str(self.spec.memory_size),
                timeout_seconds=self.spec.timeout,
                region=self.region,
            )
            if request_id:
                context.aws_request_id = request_id
            try:
                return self._handler(event, context)
            except Exception as exc:
                log.error(
                    "%s raised (request %s)\n%s", self.name, context.aws_request_id, traceback.format_exc()
                )
                raise FunctionError(f"{self.name} raised {type(exc).__name__}: {exc}") from exc


def _import_file(module_name: str, path: Path, code_dir: Path) -> ModuleType:
    """Imports one handler file under a unique name (every function's file is called handler.py).

    The code directory is on sys.path while the module executes, as /var/task is in Lambda, so a
    handler can import helper modules that sit beside it.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no handler file at {path}")
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
