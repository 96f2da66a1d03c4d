"""The refresh decisions as pure functions of (request, stored state, now): tables of cases."""

from __future__ import annotations

import pytest

from wxtoken.errors import ForceRefreshRefusedError
from wxtoken.refresh.refresher import RefreshReport
from wxtoken.refresh.rules import (
    RefreshRequest,
    TokenState,
    Trigger,
    fetched_at_after,
    next_force_quota,
    probe_due,
    reason_to_refresh,
    ticket_due,
)
from wxtoken.store.base import Credential, ForceQuota, MintIntent

NOW = 1_800_000_000.0
GOOD = Credential("tok", expires_at=int(NOW) + 3600, fetched_at=NOW - 3600)
LOW = Credential("tok", expires_at=int(NOW) + 100, fetched_at=NOW - 7100)
EXPIRED = Credential("tok", expires_at=int(NOW) - 1, fetched_at=NOW - 7300)


def state(credential=GOOD, **kwargs) -> TokenState:
    return TokenState(raw="{}", credential=credential, **kwargs)


@pytest.mark.parametrize(
    ("trigger", "stored", "invalid_token", "requested_at", "expected"),
    [
        (Trigger.GUARD, state(), None, NOW, None),
        (Trigger.GUARD, state(LOW), None, NOW, "stored token expires in 100s"),
        (Trigger.GUARD, state(EXPIRED), None, NOW, "stored token expired"),
        (Trigger.GUARD, state(None), None, NOW, "no token stored"),
        (Trigger.GUARD, TokenState(raw="not json", credential=None, damaged=True), None, NOW, "damaged"),
        (Trigger.GUARD, state(suspect=True), None, NOW, "answer was lost"),
        (Trigger.COMPARE, state(), "tok", NOW, "rejected by WeChat"),
        (Trigger.COMPARE, state(), "another", NOW, None),
        (Trigger.COMPARE, state(suspect=True), "another", NOW, "answer was lost"),
        (Trigger.SCHEDULED, state(), None, NOW, "scheduled"),
        (Trigger.SCHEDULED, state(), None, NOW - 7200, None),  # a retry: refreshed since it fired
        (Trigger.FORCE, state(), None, NOW, "force"),
        (Trigger.FORCE, TokenState(raw="{", credential=None, damaged=True), None, NOW - 7200, "damaged"),
    ],
)
def test_reason_to_refresh(trigger, stored, invalid_token, requested_at, expected):
    request = RefreshRequest(trigger, requested_at, None, invalid_token)
    reason = reason_to_refresh(request, stored, NOW, guard_margin_seconds=240)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None
        assert expected in reason


@pytest.mark.parametrize(
    ("intent", "stored", "suspect"),
    [
        (MintIntent(NOW, settled=False, fetched_at=NOW), GOOD, True),  # stored before the mint
        (MintIntent(NOW, settled=True, fetched_at=NOW), GOOD, False),  # WeChat refused: no mint
        (MintIntent(NOW - 7200, settled=False, fetched_at=NOW - 7200), GOOD, False),  # resolved
        (MintIntent(NOW, settled=False, fetched_at=NOW), None, True),
        (MintIntent(GOOD.fetched_at, settled=False, fetched_at=GOOD.fetched_at), GOOD, True),  # a tie
    ],
)
def test_a_mint_intent_leaves_the_stored_token_suspect_until_resolved(intent, stored, suspect):
    assert intent.leaves_suspect(stored) is suspect


@pytest.mark.parametrize(("period", "probed_minutes"), [(60, 60), (120, 30), (300, 12), (0, 0)])
def test_probe_due_spreads_one_probe_per_period(period, probed_minutes):
    minutes = [NOW + 60 * m for m in range(60)]
    assert sum(probe_due("wx1111111111111111", at, period) for at in minutes) == probed_minutes


def test_probes_of_many_apps_are_staggered():
    appids = [f"wx{n:016d}" for n in range(40)]
    per_minute = [sum(probe_due(a, NOW + 60 * m, 300) for a in appids) for m in range(5)]
    assert sum(per_minute) == 40
    assert max(per_minute) < 40  # not all in one run


TICKET_GOOD = Credential("ticket", expires_at=int(NOW) + 3600, fetched_at=GOOD.fetched_at + 1)


@pytest.mark.parametrize(
    ("ticket", "trigger", "requested_at", "due"),
    [
        (None, Trigger.GUARD, NOW, True),  # none, or damaged
        (TICKET_GOOD, Trigger.GUARD, NOW, False),
        (
            Credential("t", int(NOW) + 3600, GOOD.fetched_at - 1),
            Trigger.GUARD,
            NOW,
            True,
        ),  # older than the token
        (Credential("t", int(NOW) + 100, GOOD.fetched_at + 1), Trigger.GUARD, NOW, True),  # running low
        (TICKET_GOOD, Trigger.FORCE, NOW, True),  # fetched before the forced refresh was asked for
        (TICKET_GOOD, Trigger.FORCE, GOOD.fetched_at, False),
    ],
)
def test_ticket_due(ticket, trigger, requested_at, due):
    request = RefreshRequest(trigger, requested_at)
    assert ticket_due(ticket, GOOD, request, NOW, guard_margin_seconds=240) is due


# 2026-11-30 12:00 Beijing time, and the same day's quota record
NOON = 1_796_011_200.0
TODAY = "2026-11-30"


@pytest.mark.parametrize(
    ("quota", "now", "count", "refused"),
    [
        (None, NOON, 1, None),
        (ForceQuota(TODAY, 5, NOON - 60, NOON - 60), NOON, 6, None),
        (ForceQuota(TODAY, 19, NOON - 60, NOON - 60), NOON, 20, None),
        (ForceQuota(TODAY, 20, NOON - 60, NOON - 60), NOON, None, "20 forced"),
        (ForceQuota(TODAY, 3, NOON - 10, NOON - 10), NOON, None, "10s ago"),
        (ForceQuota(TODAY, 3, NOON - 30, NOON - 30), NOON, 4, None),  # exactly 30 s: allowed
        (ForceQuota("2026-11-29", 20, NOON - 60, NOON - 60), NOON, 1, None),  # a new Beijing day
        # 00:00 Beijing time is 16:00 UTC: 23:59:59 UTC+8 is still the old day
        (ForceQuota(TODAY, 20, NOON, NOON), NOON + 12 * 3600 - 1, None, "20 forced"),
        (ForceQuota(TODAY, 20, NOON, NOON), NOON + 12 * 3600, 1, None),
    ],
)
def test_next_force_quota(quota, now, count, refused):
    if refused:
        with pytest.raises(ForceRefreshRefusedError, match=refused):
            next_force_quota("wx1111111111111111", quota, now)
        return
    after = next_force_quota("wx1111111111111111", quota, now)
    assert after.count == count
    assert after.last_at == now


@pytest.mark.parametrize(
    ("now", "previous", "expected"),
    [
        (NOW, [], NOW),
        (NOW, [GOOD], NOW),  # the clock is ahead of the record
        (NOW - 7200, [GOOD], GOOD.fetched_at + 0.001),  # a clock behind the record's writer
        (NOW, [None, MintIntent(NOW + 5, settled=False, fetched_at=NOW + 5)], NOW + 5.001),
    ],
)
def test_fetched_at_is_strictly_after_every_previous_record(now, previous, expected):
    assert fetched_at_after(now, *previous) == pytest.approx(expected)


def test_a_refresh_report_compares_by_value_and_takes_its_fields_by_name():
    # As the dataclass it was: the refresh function's result, and what tests compare.
    failure = {"appid": "wx2", "error": "e"}
    report = RefreshReport(refreshed=["wx1"], failed=[failure])
    assert report == RefreshReport(["wx1"], [], [failure])
    assert report != RefreshReport(refreshed=["wx1"])
    assert report.as_dict() == {"refreshed": ["wx1"], "skipped": [], "failed": [failure]}
    assert RefreshReport().platforms == {}
