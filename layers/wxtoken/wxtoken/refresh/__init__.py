"""The writer: who refreshes which token, when, and how only one of them calls WeChat.

- :mod:`.refresher` the refresh path (lease, mint intent, WeChat, compare-and-set, probe)
- :mod:`.rules` the decisions, as pure functions
- :mod:`.events` the payloads the refresh function accepts
- :mod:`.wiring` how the refresher is built from settings
- :mod:`.in_process` a reader's compare-and-refresh without the refresh function
"""

from wxtoken.refresh.refresher import PROBE_PATH, Refresher, RefreshReport
from wxtoken.refresh.rules import (
    FORCE_REFRESH_DAILY_LIMIT,
    FORCE_REFRESH_MIN_INTERVAL,
    WECHAT_TZ,
    RefreshRequest,
    TokenState,
    Trigger,
    probe_due,
    reason_to_refresh,
)

__all__ = [
    "FORCE_REFRESH_DAILY_LIMIT",
    "FORCE_REFRESH_MIN_INTERVAL",
    "PROBE_PATH",
    "WECHAT_TZ",
    "RefreshReport",
    "RefreshRequest",
    "Refresher",
    "TokenState",
    "Trigger",
    "probe_due",
    "reason_to_refresh",
]
