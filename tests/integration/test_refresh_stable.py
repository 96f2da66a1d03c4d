"""stable_token mode: normal calls return the current token; forced ones are rationed."""

from __future__ import annotations

import pytest

from tests.fixtures.wechat import APPID_A, APPID_B
from wxtoken.deadline import Deadline
from wxtoken.refresh import FORCE_REFRESH_DAILY_LIMIT, RefreshRequest, Trigger

STABLE = {"WECHAT_TOKEN_API": "stable_token"}


def run(system, trigger, appids=(APPID_B,)):
    request = RefreshRequest(trigger, system.clock(), tuple(appids))
    return system.refresher(**STABLE).run(request, Deadline.after(30))


def test_normal_call_that_returns_the_stored_token_stores_nothing(system):
    assert run(system, Trigger.SCHEDULED).refreshed == [APPID_B]
    stored = system.stored(APPID_B)
    system.clock.advance(3600)

    report = run(system, Trigger.SCHEDULED)

    assert report.refreshed == []
    assert "already stored" in report.skipped[0]["reason"]
    assert system.stored(APPID_B) == stored


def test_schedule_failure_is_caught_by_the_guard_in_stable_mode_too(system):
    run(system, Trigger.SCHEDULED)
    system.clock.advance(system.settings.schedule_period_seconds)
    from devtools.wechat.standin import HTTPStatus

    system.wechat.fail_next("stable_token", HTTPStatus(503), times=10)
    assert run(system, Trigger.SCHEDULED).failed
    system.wechat.clear_faults()

    for minute in range(20):  # the guard acts with < 240 s left: minute 17
        token = system.stored(APPID_B)
        assert system.wechat.is_valid(APPID_B, token.value), f"lapsed at minute {minute}"
        run(system, Trigger.GUARD)
        system.clock.advance(60)
    assert system.stored(APPID_B).expires_at - system.clock() > 90 * 60


def test_forced_refresh_uses_force_refresh_and_retires_the_old_token(system):
    run(system, Trigger.SCHEDULED)
    old = system.stored(APPID_B)
    system.clock.advance(60)

    assert run(system, Trigger.FORCE).refreshed == [APPID_B]

    assert system.stored(APPID_B).value != old.value
    assert not system.wechat.is_valid(APPID_B, old.value)
    assert system.wechat.calls("stable_token", APPID_B)[-1].params["force_refresh"] is True


def test_forced_refreshes_closer_than_30_seconds_are_refused_before_calling_wechat(system):
    run(system, Trigger.FORCE)
    calls = system.wechat.token_calls(APPID_B)
    system.clock.advance(10)

    report = run(system, Trigger.FORCE)

    assert report.failed[0]["error"].startswith("ForceRefreshRefusedError")
    assert "Try again in 20s" in report.failed[0]["error"]
    assert system.wechat.token_calls(APPID_B) == calls


def _well_inside_a_wechat_day(clock) -> None:
    """Moves ``clock`` (it starts at the real time) past 00:00 Beijing time when WeChat's day
    ends within half an hour: 21 forced refreshes 31 s apart take 11 minutes, and the count
    resets at midnight (the test failed when run at 15:50 UTC)."""
    into_day = (clock() + 8 * 3600) % 86400
    if into_day > 86400 - 1800:
        clock.advance(86400 - into_day + 60)


def test_the_21st_forced_refresh_of_a_day_is_refused_before_burning_quota(system):
    _well_inside_a_wechat_day(system.clock)
    for _ in range(FORCE_REFRESH_DAILY_LIMIT):
        system.clock.advance(31)
        assert run(system, Trigger.FORCE).refreshed == [APPID_B]
    calls = system.wechat.token_calls(APPID_B)
    system.clock.advance(31)

    report = run(system, Trigger.FORCE)

    assert "20 forced stable_token refreshes" in report.failed[0]["error"]
    assert system.wechat.token_calls(APPID_B) == calls
    # and a normal refresh still works
    assert not run(system, Trigger.SCHEDULED, appids=(APPID_A,)).failed


@pytest.mark.parametrize("trigger", [Trigger.SCHEDULED, Trigger.GUARD])
def test_normal_refreshes_never_spend_the_force_quota(system, trigger):
    run(system, trigger)
    system.clock.advance(7200)
    run(system, trigger)
    assert all(c.params["force_refresh"] is False for c in system.wechat.calls("stable_token"))
