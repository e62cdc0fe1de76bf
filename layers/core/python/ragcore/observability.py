"""Logger shared by every function (JSON lines; service name from POWERTOOLS_SERVICE_NAME)."""

from aws_lambda_powertools import Logger

logger = Logger()
