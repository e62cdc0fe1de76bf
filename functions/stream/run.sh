#!/bin/sh
# The stream function's handler, started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap).
# The adapter waits for GET $AWS_LWA_READINESS_CHECK_PATH (/api/v1/health) on $AWS_LWA_PORT, then forwards
# each invocation to the app over HTTP and streams the response back (AWS_LWA_INVOKE_MODE=response_stream).
# The layers (ragcore, its dependencies, the embedding model) are under /opt/python.
cd "$(dirname "$0")" || exit 1
export PYTHONPATH="/opt/python${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m uvicorn app:app \
    --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" \
    --lifespan off --no-access-log --timeout-keep-alive 75
