"""The refresh function as Lambda runs it, fed the same events/ files as `sam local invoke`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, APPID_B
from wxtoken.errors import ConfigError, InvalidEventError, RefreshFailedError

EVENTS = Path(__file__).parents[2] / "events"


def event(name: str, **overrides):
    return {**json.loads((EVENTS / name).read_text()), **overrides}


@pytest.fixture
def handler(system):
    return load_handler("refresh_token")


def test_scheduled_event_refreshes_every_app(system, handler):
    result = handler.lambda_handler(event("scheduled.json"), FakeLambdaContext())
    assert sorted(result["refreshed"]) == [APPID_A, APPID_B]
    assert result["failed"] == []


def test_the_scheduled_sample_refreshes_every_time_it_runs_as_the_schedule_does(system, handler):
    # Given tokens the sample scheduled run (the one `sam local invoke` sends) just stored
    handler.lambda_handler(event("scheduled.json"), FakeLambdaContext())
    first = system.stored(APPID_A).value
    # When it runs again, as the schedule's next firing would
    result = handler.lambda_handler(event("scheduled.json"), FakeLambdaContext())
    # Then every app is refreshed again: the sample means "the schedule fires now"
    assert sorted(result["refreshed"]) == [APPID_A, APPID_B]
    assert system.stored(APPID_A).value != first


def test_a_retried_scheduled_run_skips_apps_refreshed_after_it_fired(system, handler):
    # Given tokens stored after the retried run's scheduled_time (a fixed past time)
    handler.lambda_handler(event("scheduled.json"), FakeLambdaContext())
    calls = system.wechat.token_calls()
    # When Lambda retries that firing, which carries its original scheduled_time
    result = handler.lambda_handler(event("scheduled_retry.json"), FakeLambdaContext())
    # Then no app is refreshed twice for one firing
    assert result["refreshed"] == []
    assert sorted(skip["appid"] for skip in result["skipped"]) == [APPID_A, APPID_B]
    assert system.wechat.token_calls() == calls


def test_eventbridge_rule_event_refreshes_every_app(system, handler):
    result = handler.lambda_handler(event("eventbridge_rule_scheduled.json", time=None), FakeLambdaContext())
    assert sorted(result["refreshed"]) == [APPID_A, APPID_B]


def test_guard_event_after_a_refresh_calls_wechat_for_nothing(system, handler):
    handler.lambda_handler(event("force_all.json"), FakeLambdaContext())
    calls = system.wechat.token_calls()

    result = handler.lambda_handler(event("guard.json"), FakeLambdaContext())

    assert result["refreshed"] == []
    assert len(result["skipped"]) == 2
    assert system.wechat.token_calls() == calls


def test_force_one_event_refreshes_that_app_only(system, handler):
    handler.lambda_handler(event("scheduled.json"), FakeLambdaContext())
    before_b = system.stored(APPID_B)

    result = handler.lambda_handler(event("force_one.json"), FakeLambdaContext())

    assert result["refreshed"] == [APPID_A]
    assert system.stored(APPID_B) == before_b


def test_compare_and_refresh_event_with_a_stale_token_calls_wechat_for_nothing(system, handler):
    handler.lambda_handler(event("force_all.json"), FakeLambdaContext())
    calls = system.wechat.token_calls()

    result = handler.lambda_handler(event("compare_and_refresh.json"), FakeLambdaContext())

    assert result["refreshed"] == []
    assert system.wechat.token_calls() == calls


def test_compare_and_refresh_event_with_the_stored_token_refreshes(system, handler):
    handler.lambda_handler(event("force_all.json"), FakeLambdaContext())
    seen = system.stored(APPID_A).value

    result = handler.lambda_handler(
        event("compare_and_refresh.json", invalid_token=seen), FakeLambdaContext()
    )

    assert result["refreshed"] == [APPID_A]


def test_a_failed_app_fails_the_invocation_after_the_others_ran(system, handler):
    system.put_apps({APPID_A: {"app_secret": "wrong"}, APPID_B: system.apps[APPID_B]})

    with pytest.raises(RefreshFailedError) as raised:
        handler.lambda_handler(event("force_all.json"), FakeLambdaContext())

    report = json.loads(str(raised.value))
    assert report["refreshed"] == [APPID_B]
    assert report["failed"][0]["appid"] == APPID_A
    assert system.stored(APPID_B) is not None


def test_unknown_payload_is_refused_with_the_usage(system, handler):
    with pytest.raises(InvalidEventError, match="expected"):
        handler.lambda_handler({"hello": "world"}, FakeLambdaContext())


def test_missing_configuration_names_the_variable(monkeypatch):
    monkeypatch.delenv("WECHAT_APPS_SECRET_ID", raising=False)
    handler = load_handler("refresh_token")
    with pytest.raises(ConfigError, match="WECHAT_APPS_SECRET_ID"):
        handler.lambda_handler({"action": "guard"}, FakeLambdaContext())
