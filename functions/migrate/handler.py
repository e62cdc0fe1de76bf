"""Migrate function: applies pending migrations (run by a CDK Trigger on every deploy)."""

from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore.config import reset_settings
from ragcore.migrations import apply_migrations
from ragcore.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # The owner and application secrets rotate: read them again rather than trust a warm copy.
    reset_settings()
    applied = apply_migrations()
    logger.info("migrations applied", extra={"applied": applied})
    return {"applied": applied}
