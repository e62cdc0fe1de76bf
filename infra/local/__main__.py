"""`python -m infra.local`: run the platform locally until SIGINT or SIGTERM.

Environment: PORT (8080), DATA_DIR (.local), SHUTDOWN_GRACE_SECONDS (10: how long running invocations
may finish after SIGTERM before they are abandoned to the reaper), and optionally AWS_ENDPOINT_URL
(LocalStack or AWS instead of the built-in moto), JWT_SECRET, DATABASE_URL + MIGRATION_DATABASE_URL (an
external PostgreSQL), and any variable of the template's function environment (EMBEDDING_PROVIDER, ...).
PG_PORT also serves the embedded PostgreSQL on 127.0.0.1:PG_PORT, for functions run in containers by
`sam local`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from .stack import LocalStack, StackConfig


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # moto logs every SQS call and pgserver every pg_ctl run: keep the console for what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logging.getLogger("infra.local").info("%s received, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    stack = LocalStack(StackConfig.from_environ(os.environ))
    try:
        url = stack.start()
    except Exception as exc:
        logging.getLogger("infra.local").exception("the local stack could not start: %s", exc)
        return 1
    print(f"RAG platform ready on {url} (web console: {url}/, API: {url}/api/v1)", flush=True)
    try:
        while not stop.wait(1):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        stack.stop()
    if stack.abandoned_invocations:
        # A thread still inside native code (onnxruntime's thread pool) when the interpreter finalizes
        # makes the C++ runtime abort ("terminate called without an active exception", exit 134).
        # Everything that holds state is stopped by now (PostgreSQL included), so leave without
        # finalizing: the abandoned work is what the reaper picks up at the next start.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
