"""Every documented payload (and the events/ files) parses; anything else is refused clearly."""

import json
from pathlib import Path

import pytest

from wxtoken.errors import InvalidEventError
from wxtoken.refresh import Trigger
from wxtoken.refresh.events import parse_refresh_event

EVENTS = Path(__file__).parents[2] / "events"
NOW = 1_800_000_000.0


def parse(event):
    return parse_refresh_event(event, clock=lambda: NOW)


@pytest.mark.parametrize(
    ("filename", "trigger", "appids"),
    [
        ("scheduled.json", Trigger.SCHEDULED, None),
        ("scheduled_retry.json", Trigger.SCHEDULED, None),
        ("eventbridge_rule_scheduled.json", Trigger.SCHEDULED, None),
        ("guard.json", Trigger.GUARD, None),
        ("force_all.json", Trigger.FORCE, None),
        ("force_one.json", Trigger.FORCE, ("wx1111111111111111",)),
        ("compare_and_refresh.json", Trigger.COMPARE, ("wx1111111111111111",)),
    ],
)
def test_event_files_parse_to_their_trigger(filename, trigger, appids):
    request = parse(json.loads((EVENTS / filename).read_text()))
    assert request.trigger is trigger
    assert request.appids == appids


def test_the_scheduled_sample_fires_now_and_the_retry_sample_at_its_past_time():
    # events/scheduled.json is the schedule firing now; scheduled_retry.json a retry of a
    # firing at a past time (what deployed schedules send: <aws.scheduler.scheduled-time>).
    assert parse(json.loads((EVENTS / "scheduled.json").read_text())).requested_at == NOW
    assert parse(json.loads((EVENTS / "scheduled_retry.json").read_text())).requested_at < NOW


def test_scheduled_time_in_the_past_is_kept_and_future_is_clamped():
    past = parse({"action": "scheduled", "scheduled_time": "2026-11-23T08:00:00Z"})
    assert past.requested_at == 1_795_420_800.0
    future = parse({"action": "scheduled", "scheduled_time": "2099-01-01T00:00:00Z"})
    assert future.requested_at == NOW


@pytest.mark.parametrize(
    "event",
    [
        [],
        {},
        {"action": "refresh-everything"},
        {"force": "yes"},
        {"appid": "wx1111111111111111", "invalid_token": ""},
        {"invalid_token": "abc"},
        {"force": True, "appid": 42},
    ],
)
def test_unknown_payloads_are_refused_with_the_usage(event):
    with pytest.raises(InvalidEventError, match="expected"):
        parse(event)
