"""Running a parser in a child process, under the time budget and a memory cap.

A parser fed a hostile file can spin (a PDF whose content streams take ages to interpret, pathological
nesting) or inflate it far beyond its size. Neither may stall the ingest worker or the other documents
of its batch, so every parse runs in a child interpreter: the parent waits at most the time budget for
the result and then kills the child; the child caps its own address space (``RLIMIT_AS``), so an
allocation past the cap fails there and not in the worker, and its CPU time (``RLIMIT_CPU``), a second
stop should the parent itself be held up.

The child is a fresh interpreter (``python -I -c ...``), not a fork: the worker has threads (database
pool, inference runtime) that a fork would copy in whatever state they were, and multiprocessing's other
start methods import the parent's ``__main__`` again (in Lambda, the runtime's own bootstrap). The child
gets the parent's ``sys.path`` (and nothing else), a JSON header and the file's bytes on stdin, and
answers in JSON on stdout: never a pickle, so a parser subverted by a hostile file cannot run code in
the worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable

from . import ExtractedDocument, ExtractionFailed, ExtractionLimits, Section

logger = logging.getLogger(__name__)
Parse = Callable[[bytes, str, dict[str, str], ExtractionLimits], ExtractedDocument]
DEFAULT_PARSE = "ragcore.extractors:parse_in_process"

_BOOT = """
import json, sys
header = json.loads(sys.stdin.buffer.readline())
sys.path[:0] = header["sys_path"]
from ragcore.extractors.sandbox import child_main
child_main(header)
"""


def _virtual_memory_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _cap_resources(limits: ExtractionLimits) -> None:
    """Cap this (child) process: the address space grows by at most max_memory_mb, CPU time is bounded."""
    current = _virtual_memory_bytes()
    if current is not None:
        cap = current + limits.max_memory_mb * 1024 * 1024
        # Where the platform does not enforce it (macOS), the time budget still applies.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    seconds = math.ceil(limits.time_budget_seconds) + 1
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))


def _encode(document: ExtractedDocument) -> dict:
    return {
        "status": "ok",
        "pages": document.pages,
        "sections": [[s.text, s.page, list(s.headings)] for s in document.sections],
    }


def _decode(answer: dict) -> ExtractedDocument:
    sections = [Section(str(text), page, tuple(headings)) for text, page, headings in answer["sections"]]
    return ExtractedDocument(sections, answer["pages"])


def child_main(header: dict) -> None:
    """The child's side: parse stdin's bytes as the header says and print the answer as JSON."""
    limits = ExtractionLimits(**header["limits"])
    _cap_resources(limits)
    try:
        data = sys.stdin.buffer.read()
        module, _, name = header["parse"].partition(":")
        parse = getattr(importlib.import_module(module), name)
        answer = _encode(parse(data, header["media_type"], header["params"], limits))
    except ExtractionFailed as exc:
        answer = {"status": "failed", "reason": exc.reason}
    except MemoryError:
        answer = {"status": "memory"}
    except RecursionError:
        answer = {"status": "failed", "reason": "the file is nested too deeply to read"}
    except Exception as exc:  # a library's own error on a file it cannot read
        answer = {"status": "failed", "reason": f"the file could not be read ({type(exc).__name__})"}
    try:
        sys.stdout.write(json.dumps(answer))
    except MemoryError:
        sys.stdout.write(json.dumps({"status": "memory"}))
    sys.stdout.flush()


def run_with_budget(
    data: bytes,
    media_type: str,
    params: dict[str, str],
    limits: ExtractionLimits,
    parse: str = DEFAULT_PARSE,
) -> ExtractedDocument:
    """Run ``parse`` ("module:function", called as ``(data, media_type, params, limits)``) in a child
    interpreter that is killed once the time budget is spent.

    ExtractionFailed for what the parser refused, for a parse over the budget ("took longer than N s")
    and for one that needed more memory than allowed.
    """
    header = {
        "sys_path": [p for p in sys.path if p],
        "parse": parse,
        "media_type": media_type,
        "params": params,
        "limits": dataclasses.asdict(limits),
    }
    child = subprocess.Popen(
        # -S: no site processing; the parent's sys.path (site directories, .pth entries, Lambda layers
        # included) is the child's whole path, so both import exactly the same modules.
        [sys.executable, "-I", "-S", "-c", _BOOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a kill reaches nothing of the worker's
    )
    try:
        out, err = child.communicate(json.dumps(header).encode() + b"\n" + data, limits.time_budget_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise ExtractionFailed(
            f"extracting the file took longer than {limits.time_budget_seconds:g} s (the time budget)"
        ) from None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "status" not in answer:
        # What the child said on its way out is for the operators, not for the document's error.
        logger.warning(
            "extraction child exited with %s: %s", child.returncode, err[-2000:].decode(errors="replace")
        )
        if child.returncode == -signal.SIGXCPU:
            raise ExtractionFailed(
                f"extracting the file took longer than {limits.time_budget_seconds:g} s (the time budget)"
            )
        raise ExtractionFailed(
            f"extracting the file failed: the parser stopped unexpectedly (exit code {child.returncode}); "
            f"it may have needed more than {limits.max_memory_mb} MB of memory"
        )
    if answer["status"] == "ok":
        return _decode(answer)
    if answer["status"] == "memory":
        raise ExtractionFailed(
            f"extracting the file needed more than {limits.max_memory_mb} MB of memory (the limit)"
        )
    raise ExtractionFailed(str(answer.get("reason") or "the file could not be read"))
