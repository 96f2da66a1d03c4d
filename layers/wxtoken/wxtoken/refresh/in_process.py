"""The compare-and-refresh run in the reader's own process (no refresh function named).

Part of the writer: a reader loads it only when ``REFRESH_FUNCTION_NAME`` is unset, and then
needs the apps secret and an allow-listed egress IP itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wxtoken.deadline import Deadline
from wxtoken.errors import RefreshRequestError
from wxtoken.refresh.refresher import Refresher
from wxtoken.refresh.rules import RefreshRequest, Trigger

_IN_PROCESS_REFRESH_SECONDS = 20.0


class InProcessRefreshRequester:
    """Runs the compare-and-refresh in this process (when no refresh function is named)."""

    def __init__(self, refresher: Refresher, *, clock: Callable[[], float] = time.time) -> None:
        self._refresher = refresher
        self._clock = clock

    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        request = RefreshRequest(Trigger.COMPARE, self._clock(), (appid,), invalid_token=invalid_token)
        report = self._refresher.run(request, Deadline.after(_IN_PROCESS_REFRESH_SECONDS))
        errors = [failure["error"] for failure in report.failed if failure["appid"] == appid]
        if errors:
            raise RefreshRequestError(f"the compare-and-refresh of {appid} failed: {'; '.join(errors)}")
