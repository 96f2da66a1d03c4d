"""The payloads the refresh function accepts, turned into a :class:`RefreshRequest`.

| payload                                              | meaning                           |
|------------------------------------------------------|-----------------------------------|
| ``{"action": "scheduled", "scheduled_time": "…"}``   | the 100-minute schedule: every app |
| EventBridge rule "Scheduled Event"                   | the same (aws-cn fallback)        |
| ``{"action": "guard"}``                              | refresh apps whose token runs low |
| ``{"force": true}`` / ``{"force": true, "appid": …}``| forced refresh now                |
| ``{"appid": …, "invalid_token": …}``                 | compare-and-refresh               |

``scheduled_time`` (EventBridge Scheduler fills it in) survives Lambda's retries of the same
event, so a retried run skips the apps that were refreshed after the schedule fired.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wxtoken.errors import InvalidEventError
from wxtoken.refresh.rules import RefreshRequest, Trigger

USAGE = (
    'expected {"action": "scheduled"}, {"action": "guard"}, {"force": true[, "appid": "wx…"]} '
    'or {"appid": "wx…", "invalid_token": "…"}'
)


def parse_refresh_event(event: Any, clock: Callable[[], float] = time.time) -> RefreshRequest:
    now = clock()
    if not isinstance(event, dict):
        raise InvalidEventError(f"the payload is not a JSON object: {USAGE}")
    appid = event.get("appid")
    if appid is not None and (not isinstance(appid, str) or not appid.startswith("wx")):
        raise InvalidEventError(f'"appid" must be an appid string starting with "wx": {USAGE}')
    appids = (appid,) if appid else None

    if event.get("force") is True:
        return RefreshRequest(Trigger.FORCE, now, appids)
    if "invalid_token" in event:
        token = event.get("invalid_token")
        if not appid or not isinstance(token, str) or not token:
            raise InvalidEventError(f"compare-and-refresh needs both appid and invalid_token: {USAGE}")
        return RefreshRequest(Trigger.COMPARE, now, appids, invalid_token=token)
    action = event.get("action")
    if action == "guard":
        return RefreshRequest(Trigger.GUARD, now, appids)
    if action == "scheduled":
        return RefreshRequest(Trigger.SCHEDULED, _event_time(event.get("scheduled_time"), now), appids)
    if event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events":
        return RefreshRequest(Trigger.SCHEDULED, _event_time(event.get("time"), now))
    raise InvalidEventError(f"unknown refresh payload: {USAGE}")


def _event_time(raw: Any, now: float) -> float:
    """When the schedule fired; ``now`` if absent, unparseable or in the future."""
    if not isinstance(raw, str) or not raw:
        return now
    try:
        fired = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now
    return min(fired, now)
