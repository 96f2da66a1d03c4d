"""The refresh decisions, as pure functions of (stored state, request, now).

Whether and why to refresh, when to probe, when the jsapi ticket is due, how much of
WeChat's forced-refresh quota is left, and how ``fetched_at`` orders records: no I/O here.
:class:`~wxtoken.refresh.Refresher` reads the store, calls these, and acts; the unit tests
pin them with tables of cases (``tests/unit/test_refresh_decisions.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import StrEnum

from wxtoken.errors import ForceRefreshRefusedError
from wxtoken.frozen import Frozen
from wxtoken.store.base import Credential, ForceQuota, MintIntent

# WeChat's limits on stable_token force_refresh (getStableAccessToken: 每天限用20次, 间隔至少30s).
FORCE_REFRESH_DAILY_LIMIT = 20
FORCE_REFRESH_MIN_INTERVAL = 30.0
# WeChat's day (for its daily quotas) is Beijing time.
WECHAT_TZ = timezone(timedelta(hours=8))


class Trigger(StrEnum):
    """What asked for a refresh (the payloads in :mod:`wxtoken.refresh.events`)."""

    SCHEDULED = "scheduled"
    GUARD = "guard"
    FORCE = "force"
    COMPARE = "compare"


class RefreshRequest(Frozen):
    """One request to refresh: its trigger, when it was made (a scheduled run's fire time
    survives Lambda's retries), the apps it names (``None``: every app) and, for a
    compare-and-refresh, the token a reader saw rejected."""

    _hidden = frozenset({"invalid_token"})

    trigger: Trigger
    requested_at: float
    appids: tuple[str, ...] | None = None  # None: every app in the secret
    invalid_token: str | None = None


class TokenState(Frozen):
    """What the store holds for one app's token, as the refresher decides on it.

    ``raw`` is the record exactly as stored (what the write compares against); ``damaged``
    says it could not be read as a token; ``suspect`` that a call which may have minted a
    newer token (so WeChat retires the stored one within 5 minutes) never stored its answer.
    """

    _hidden = frozenset({"raw", "intent_raw"})

    raw: str | None
    credential: Credential | None
    damaged: bool = False
    suspect: bool = False
    intent: MintIntent | None = None
    intent_raw: str | None = None


def reason_to_refresh(
    request: RefreshRequest, state: TokenState, now: float, guard_margin_seconds: float
) -> str | None:
    """Why ``request`` must refresh the token in ``state`` at ``now``, or ``None``.

    Whatever the trigger, a damaged record, no token, an expired token and a suspect token
    are replaced: they are what readers would otherwise get 40001 or 503 for. Then the guard
    refreshes a token with less than its margin left; a compare-and-refresh a token that is
    still the rejected one; a scheduled or forced run one fetched before it was asked for.
    """
    stored = state.credential
    if state.damaged:
        return "stored record is damaged"
    if stored is None:
        return "no token stored"
    if stored.seconds_left(now) <= 0:
        return "stored token expired"
    if state.suspect:
        return "a token call's answer was lost: WeChat retires the stored token within 5 minutes"
    match request.trigger:
        case Trigger.GUARD:
            if stored.seconds_left(now) < guard_margin_seconds:
                return f"stored token expires in {int(stored.seconds_left(now))}s"
            return None
        case Trigger.COMPARE:
            return "stored token was rejected by WeChat" if stored.value == request.invalid_token else None
        case Trigger.SCHEDULED | Trigger.FORCE:
            return None if stored.fetched_at >= request.requested_at else request.trigger.value
    return None  # pragma: no cover - every trigger is matched above


def probe_due(appid: str, requested_at: float, period_seconds: int) -> bool:
    """Whether the guard run asked for at ``requested_at`` probes ``appid`` (stateless).

    The guard fires every minute; an app is probed every ``period_seconds`` (rounded to
    whole minutes, 0 = never), on minutes staggered by appid so that many apps do not all
    call WeChat in the same run.
    """
    if period_seconds <= 0:
        return False
    every = max(1, round(period_seconds / 60))
    offset = sum(appid.encode()) % every
    return (int(requested_at // 60) + offset) % every == 0


def ticket_due(
    ticket: Credential | None,
    token: Credential,
    request: RefreshRequest,
    now: float,
    guard_margin_seconds: float,
) -> bool:
    """Whether the jsapi ticket must be fetched again: none (or damaged), older than the
    stored token (a ticket pairs with the token readers see), running low like a token the
    guard would replace, or older than a forced refresh."""
    return (
        ticket is None
        or ticket.fetched_at < token.fetched_at
        or ticket.seconds_left(now) < guard_margin_seconds
        or (request.trigger is Trigger.FORCE and ticket.fetched_at < request.requested_at)
    )


def next_force_quota(appid: str, quota: ForceQuota | None, now: float) -> ForceQuota:
    """The forced-refresh counter after one more forced stable_token call at ``now``.

    Raises :class:`ForceRefreshRefusedError` *before* WeChat is called when it would be the
    21st of WeChat's day (Beijing time) or within 30 s of the last (WeChat would ignore it).
    """
    today = datetime.fromtimestamp(now, WECHAT_TZ).strftime("%Y-%m-%d")
    count = 1
    if quota is not None and quota.day == today:
        if quota.count >= FORCE_REFRESH_DAILY_LIMIT:
            raise ForceRefreshRefusedError(
                f"{appid} has used WeChat's {FORCE_REFRESH_DAILY_LIMIT} forced stable_token "
                "refreshes for today; the count resets at 00:00 Beijing time. A normal "
                'refresh ({"action": "scheduled"}) still works.'
            )
        since = now - quota.last_at
        if since < FORCE_REFRESH_MIN_INTERVAL:
            raise ForceRefreshRefusedError(
                f"{appid} was force-refreshed {since:.0f}s ago; WeChat ignores forced refreshes "
                f"less than {FORCE_REFRESH_MIN_INTERVAL:.0f}s apart. Try again in "
                f"{FORCE_REFRESH_MIN_INTERVAL - since:.0f}s."
            )
        count = quota.count + 1
    return ForceQuota(day=today, count=count, last_at=now, fetched_at=now)


def fetched_at_after(now: float, *previous: Credential | MintIntent | None) -> float:
    """``now``, but strictly after every given record's ``fetched_at`` (by 1 ms, the
    precision kept): containers' clocks differ, and a record must never look older than
    the one it replaces."""
    return max([now, *(p.fetched_at + 0.001 for p in previous if p is not None)])
