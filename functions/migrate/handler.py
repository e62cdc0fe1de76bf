"""Migrate function: applies pending migrations (run by a CDK Trigger on every deploy), on a schedule
maintains the per-tenant vector indexes, and on an operator's request sets an organisation's quota
overrides (it alone holds the schema owner's credentials and talks to the database directly, not through
RDS Proxy)."""

from dataclasses import asdict

from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore import quotas
from ragcore.config import get_settings, reset_settings
from ragcore.migrations import apply_migrations
from ragcore.observability import logger, tracer
from ragcore.retrieval.tenant_index import maintain_tenant_indexes

TENANT_INDEXES_TASK = "tenant_indexes"
# {"task": "set_quota", "org_id": "...", "limits": {"documents": 500, "queries_per_day": null}}
SET_QUOTA_TASK = "set_quota"


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # The owner and application secrets rotate: read them again rather than trust a warm copy.
    reset_settings()
    if isinstance(event, dict) and event.get("task") == TENANT_INDEXES_TASK:
        report = maintain_tenant_indexes()
        result = {key: [str(v) for v in value] if isinstance(value, list) else value
                  for key, value in asdict(report).items()}  # fmt: skip
        logger.info("tenant indexes maintained", extra=result)
        return result
    if isinstance(event, dict) and event.get("task") == SET_QUOTA_TASK:
        try:
            stored = quotas.set_overrides(
                get_settings().migration_database_url, event.get("org_id", ""), event.get("limits")
            )
        except ValueError as exc:  # a malformed org id or limit: said plainly, nothing changed
            return {"error": str(exc)}
        logger.info("quota overrides set", extra=stored)
        return stored
    applied = apply_migrations()
    logger.info("migrations applied", extra={"applied": applied})
    return {"applied": applied}
