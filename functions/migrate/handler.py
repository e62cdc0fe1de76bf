"""Migrate function: applies pending migrations (run by a CDK Trigger on every deploy)."""

from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore.migrations import apply_migrations
from ragcore.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    applied = apply_migrations()
    logger.info("migrations applied", extra={"applied": applied})
    return {"applied": applied}
