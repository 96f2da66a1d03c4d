"""The one Logger (and, later, Metrics and Tracer) every module imports.

Created once per container; powertools reads POWERTOOLS_SERVICE_NAME and
POWERTOOLS_LOG_LEVEL from the environment the template sets.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="wxtoken")
