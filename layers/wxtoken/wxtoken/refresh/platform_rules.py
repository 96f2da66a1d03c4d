"""Open Platform's refresh decisions, as pure functions of (stored state, now).

When each authorizer's token is refreshed, how a failure backs off, when the ticket counts
as lost, when the authorizers are imported again. Tested with tables of cases in
``tests/unit/test_platform_rules.py``; :mod:`wxtoken.refresh.platform` acts on them.
"""

from __future__ import annotations

import zlib

from wxtoken.store.base import Credential
from wxtoken.store.platform_records import AuthorizerImport

# Every authorizer is refreshed once per cycle, at its own slot in it: the slot is a stable
# hash of its appid, so slots spread evenly over the cycle and no minute carries more than
# about 1/100 of the refreshes (the bound is a tenth). 6,000 s is the 100-minute
# schedule's period: an authorizer token lives 7,200 s (api_authorizer_token: expires_in).
AUTHORIZER_CYCLE_SECONDS = 6000
# A token is due by its last slot at least this long before it expires: ten guard runs to
# retry a failure before readers would see an expired token.
AUTHORIZER_MARGIN_SECONDS = 600
# Failed refreshes back off 1, 2, 4, 8 minutes, then every 10 (inside the margin above,
# the first four retries all come before the token expires).
_RETRY_FIRST_SECONDS = 60
_RETRY_CAP_SECONDS = 600
# A refresh token that stays refused after the lookup in the list is tried again hourly
# (an account may authorize again; the daily import also brings it back).
LOST_RETRY_SECONDS = 3600
# WeChat pushes component_verify_ticket every 10 minutes (valid 12 h); none for 20 minutes
# means pushes stopped: ask for them again (api_start_push_ticket), at most every 10 minutes.
TICKET_STALE_SECONDS = 1200
PUSH_RESTART_INTERVAL_SECONDS = 600
# The component_verify_ticket's lifetime (component_verify_ticket.html: 有效期为12小时).
TICKET_LIFETIME_SECONDS = 43200
# api_get_authorizer_list is read again daily (issue 13: "on the first run … and daily").
IMPORT_INTERVAL_SECONDS = 86400
# A refresh token is looked up in the list at most once a day per authorizer.
RECOVERY_INTERVAL_SECONDS = 86400
# Pages of api_get_authorizer_list one run reads at most (20 x 500 = 10,000 accounts); a pass
# over more resumes at the next run.
IMPORT_PAGES_PER_RUN = 20


def slot_offset(appid: str) -> int:
    """Seconds into the cycle at which ``appid`` is refreshed (the same in every process:
    CRC-32, not Python's salted ``hash``)."""
    return zlib.crc32(appid.encode()) % AUTHORIZER_CYCLE_SECONDS


def authorizer_due_at(appid: str, token: Credential, now: float) -> float:
    """When ``token`` is next refreshed: the authorizer's last slot at least the margin
    before it expires, and never before ``now``.

    A 7,200 s token is due between 600 s and 6,600 s after it was fetched; once refreshed at
    its slot, an authorizer stays on it, one WeChat call per cycle.
    """
    latest = token.expires_at - AUTHORIZER_MARGIN_SECONDS
    due = latest - ((latest - slot_offset(appid)) % AUTHORIZER_CYCLE_SECONDS)
    return max(due, now)


def retry_due_at(failures: int, now: float) -> float:
    """When to try again after ``failures`` refreshes failed in a row (≥ 1)."""
    return now + min(_RETRY_CAP_SECONDS, _RETRY_FIRST_SECONDS << min(max(0, failures - 1), 16))


def ticket_age(ticket: Credential | None, now: float) -> float | None:
    """Seconds since the last ticket push was stored (``None``: never)."""
    return None if ticket is None else max(0.0, now - ticket.fetched_at)


def push_restart_due(ticket: Credential | None, last_restart_at: float | None, now: float) -> bool:
    """Whether to call api_start_push_ticket: no ticket for 20 minutes, and no restart asked
    for in the last 10."""
    age = ticket_age(ticket, now)
    if age is not None and age < TICKET_STALE_SECONDS:
        return False
    return last_restart_at is None or now - last_restart_at >= PUSH_RESTART_INTERVAL_SECONDS


def import_due(state: AuthorizerImport | None, now: float) -> bool:
    """Whether to read api_get_authorizer_list now: never read, a pass to resume, the last
    full pass a day old, or a refused refresh token waiting for a pass that began after it."""
    return (
        state is None
        or state.offset > 0
        or now - state.completed_at >= IMPORT_INTERVAL_SECONDS
        or state.requested_at > state.pass_started_at
    )


def listed_since(state: AuthorizerImport | None, refused_at: float) -> bool:
    """Whether a full pass over the list began at or after ``refused_at``: it saw the refresh
    token WeChat holds now, so a token still refused after it is lost."""
    return state is not None and refused_at > 0 and state.pass_started_at >= refused_at
