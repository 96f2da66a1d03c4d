"""Someone else fetches a token with the same AppSecret (issue 9, finding 2).

The most reported cause of 40001 in every WeChat SDK's tracker. WeChat retires the stored token
5 minutes after the outside fetch, and only WeChat knows: the guard's probe asks it. Judged at
the stand-in, minute by minute: the stored token is invalid for at most the probe period after
the grace ends, the rejection is counted and the log says what to do.
"""

from __future__ import annotations

import pytest

from tests.fixtures.wechat import APPID_A, APPID_B
from tests.integration.scenarios import capture_logs, discard_pending_metrics, emf_points
from wxtoken.deadline import Deadline
from wxtoken.refresh import PROBE_PATH, RefreshRequest, Trigger


def guard(refresher, system):
    return refresher.run(RefreshRequest(Trigger.GUARD, system.clock()), Deadline.after(30))


@pytest.mark.parametrize("probe_seconds", [60, 120])
@pytest.mark.parametrize("fetch_minute", [0, 1])
def test_an_outside_fetch_is_caught_by_the_probe(system, capsys, probe_seconds, fetch_minute):
    refresher = system.refresher(PROBE_PERIOD_SECONDS=str(probe_seconds))
    refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))
    system.clock.advance(20 * 60)
    discard_pending_metrics()
    capsys.readouterr()

    invalid = []
    with capture_logs() as logs:
        for minute in range(20):
            if minute == fetch_minute:
                system.wechat.outside_fetch(APPID_B)  # a legacy script, a colleague's test
            report = guard(refresher, system)
            assert report.failed == [], report
            if not system.wechat.is_valid(APPID_B, system.stored(APPID_B).value):
                invalid.append(minute)
            assert system.wechat.is_valid(APPID_A, system.stored(APPID_A).value)
            system.clock.advance(60)

    # Before: nothing noticed, and the stored token stayed dead until the next scheduled run
    # (~90 minutes here). Now: dead at most until the next probe after the 5-minute grace.
    assert len(invalid) <= probe_seconds // 60, invalid
    rejected = [p for p in emf_points(capsys.readouterr().out) if p.name == "StoredTokenRejected"]
    assert {p.label("appid") for p in rejected if p.label("appid")} == {APPID_B}
    assert "another program is fetching access tokens with this AppSecret" in logs.text


def test_the_probe_costs_one_call_per_app_per_period(system):
    refresher = system.refresher(PROBE_PERIOD_SECONDS="120")
    refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))
    system.wechat.reset_calls()

    for _ in range(60):  # an hour of the guard
        guard(refresher, system)
        system.clock.advance(60)

    probes = [c for c in system.wechat.calls("api") if c.path == PROBE_PATH]
    per_app = {appid: sum(1 for c in probes if c.appid == appid) for appid in (APPID_A, APPID_B)}
    # 30 an hour: 720 per app per day
    assert per_app == {APPID_A: 30, APPID_B: 30}
    assert system.wechat.token_calls() == 0  # a healthy token is never replaced by the probe


def test_probe_disabled_makes_no_calls(system):
    refresher = system.refresher(PROBE_PERIOD_SECONDS="0")
    refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))
    system.wechat.reset_calls()
    for _ in range(5):
        guard(refresher, system)
        system.clock.advance(60)
    assert system.wechat.calls("api") == []


def test_a_probe_that_cannot_reach_wechat_changes_nothing(system):
    from devtools.wechat.standin import HTTPStatus

    refresher = system.refresher(PROBE_PERIOD_SECONDS="60")
    refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))
    before = system.stored(APPID_B)
    system.wechat.fail_always("api", HTTPStatus(502))

    report = guard(refresher, system)

    assert report.failed == [], report
    assert report.refreshed == [], report
    assert system.stored(APPID_B) == before


def test_a_failed_replacement_after_the_probe_is_reported_not_raised(system):
    """Review finding: the probe's compare-and-refresh ran outside the per-app guard, so its
    failure crashed the whole run and every app's report was lost."""
    from devtools.wechat.standin import ErrCode

    refresher = system.refresher(PROBE_PERIOD_SECONDS="60")
    refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))
    system.clock.advance(20 * 60)
    system.wechat.outside_fetch(APPID_B)
    system.clock.advance(301)
    system.wechat.fail_always("token", ErrCode(45009), appid=APPID_B)

    report = guard(refresher, system)

    assert [f["appid"] for f in report.failed] == [APPID_B], report
    assert report.failed[0]["error"].startswith("QuotaExceededError")
    assert system.wechat.is_valid(APPID_A, system.stored(APPID_A).value)
