"""Reaper function: run on a schedule, re-sends or fails documents stranded in pending/processing."""

from aws_lambda_powertools.utilities.typing import LambdaContext
from ragcore.observability import MetricUnit, logger, metrics, tracer
from ragcore.reaper import reap


@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    report = reap()
    metrics.add_metric(name="DocumentsRequeued", unit=MetricUnit.Count, value=len(report.requeued))
    metrics.add_metric(name="DocumentsReaped", unit=MetricUnit.Count, value=len(report.failed))
    logger.info(
        "reaper run",
        extra={
            "requeued": len(report.requeued),
            "failed": len(report.failed),
            "unsent": len(report.unsent),
            "purged_throttle_rows": report.purged_throttle_rows,
        },
    )
    return {"requeued": len(report.requeued), "failed": len(report.failed), "unsent": len(report.unsent)}
