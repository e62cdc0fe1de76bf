"""Logger and metrics shared by every function.

Logs are JSON lines (service name from POWERTOOLS_SERVICE_NAME); metrics are CloudWatch Embedded Metric
Format lines in the namespace of POWERTOOLS_METRICS_NAMESPACE, "RagPlatform" when unset.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics(namespace="RagPlatform")

__all__ = ["MetricUnit", "logger", "metrics"]
