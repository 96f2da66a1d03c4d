"""Refresh Lambda: the only writer of WeChat access tokens (and jsapi tickets).

Invoked by the 100-minute schedule, the 1-minute guard, a person forcing a refresh, and
readers asking for a compare-and-refresh; payloads in :mod:`wxtoken.refresh.events`.
Returns ``{"refreshed": [...], "skipped": [...], "failed": [...]}``; when any app failed it
raises after all apps ran, so Lambda's retries and the on-failure destination fire.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wxtoken.coldstart import settle_imports
from wxtoken.config import Settings
from wxtoken.deadline import Deadline
from wxtoken.errors import RefreshFailedError
from wxtoken.observability import logger, observed_handler
from wxtoken.refresh import Refresher
from wxtoken.refresh.events import parse_refresh_event
from wxtoken.refresh.wiring import build_refresher


@cache
def refresher() -> Refresher:
    """Built on the first invocation of a container and kept while it is warm."""
    return build_refresher(Settings.from_env())


@observed_handler()  # never logs the event (events can carry a rejected token), nor traces the response
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_refresh_event(event)
    report = refresher().run(request, Deadline.from_context(context))
    result = report.as_dict()
    logger.info(
        "refresh run finished",
        extra={
            "trigger": request.trigger.value,
            "refreshed": len(report.refreshed),
            "skipped": len(report.skipped),
            "failed": len(report.failed),
        },
    )
    if report.failed:
        raise RefreshFailedError(json.dumps(result))
    return result


# Last, after every import: they live as long as the container (wxtoken.coldstart says why).
settle_imports()
