"""The Docker-free local stack: `python -m infra.local` runs the whole platform on one machine.

One process tree holds embedded PostgreSQL (pgserver), moto's SQS server (or the endpoint that
AWS_ENDPOINT_URL names), a gateway that turns HTTP requests into API Gateway REST proxy events, and an
SQS poller that feeds the ingest function real SQS batch events. Routes, functions, queues and the
functions' environment are all read from template-local.yaml, so the local stack cannot drift from it.
"""
