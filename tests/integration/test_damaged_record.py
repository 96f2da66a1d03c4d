"""A damaged token record (issue 9, finding 3): replaced by the next run, a 503 for readers.

A hand edit, a truncated write or ``expires_at: Infinity`` used to make every refresh —
even ``{"force": true}`` — fail before it wrote, and the token API answer 500: the app was
blocked forever. Written straight into the backend, as a person or a bug would.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, APPID_B
from wxtoken.client import TokenClient
from wxtoken.deadline import Deadline
from wxtoken.errors import TokenUnavailableError
from wxtoken.refresh import RefreshRequest, Trigger
from wxtoken.store.base import RecordName

DAMAGED = {
    "not-json": "access_token=abc",
    "truncated": '{"access_token": "abc", "expires_at": 17',
    "expires-infinity": '{"access_token":"abc","expires_at":Infinity,"fetched_at":1700000000.0}',
    "fetched-infinity": '{"access_token":"abc","expires_at":1700007200,"fetched_at":Infinity}',
    "fetched-nan": '{"access_token":"abc","expires_at":1700007200,"fetched_at":NaN}',
    "expires-huge": '{"access_token":"abc","expires_at":1e400,"fetched_at":1700000000.0}',
    "not-an-object": '["abc", 1700007200]',
    "token-not-a-string": '{"access_token":12345,"expires_at":1700007200,"fetched_at":1700000000.0}',
    "missing-field": '{"access_token":"abc","fetched_at":1700000000.0}',
    "expires-a-string": '{"access_token":"abc","expires_at":"soon","fetched_at":1700000000.0}',
    "fetched-in-the-year-2286": '{"access_token":"abc","expires_at":9999999999,"fetched_at":9999999999.0}',
}


def damage(system, appid: str, raw: str) -> None:
    """Put ``raw`` as the token record, bypassing wxtoken (the console, redis-cli)."""
    system.put_raw(appid, RecordName.ACCESS_TOKEN, raw)


def run(system, trigger: Trigger, appids=None):
    request = RefreshRequest(trigger, system.clock(), tuple(appids) if appids else None)
    return system.refresher().run(request, Deadline.after(30))


@pytest.mark.parametrize("raw", list(DAMAGED.values()), ids=list(DAMAGED))
@pytest.mark.parametrize("trigger", [Trigger.GUARD, Trigger.SCHEDULED, Trigger.FORCE])
def test_a_damaged_record_is_replaced_by_the_next_run(system, raw, trigger):
    run(system, Trigger.SCHEDULED)
    damage(system, APPID_B, raw)
    system.clock.advance(1)

    report = run(system, trigger)

    assert report.failed == [], report
    assert APPID_B in report.refreshed
    stored = system.stored(APPID_B)
    assert system.wechat.is_valid(APPID_B, stored.value)
    assert set(json.loads(system.raw(APPID_B))) == {"access_token", "expires_at", "fetched_at"}
    # the healthy app was left alone by the guard
    if trigger is Trigger.GUARD:
        assert APPID_A not in report.refreshed


@pytest.mark.parametrize("raw", list(DAMAGED.values()), ids=list(DAMAGED))
def test_readers_get_a_clear_503_for_a_damaged_record(system, monkeypatch, raw):
    damage(system, APPID_A, raw)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wxtoken-webhook")
    from devtools.wechat.player import apigw_event

    webhook = load_handler("webhook")
    event = apigw_event("GET", f"/token/{APPID_A}", iam_user_arn="arn:aws:iam::123456789012:user/app")
    response = webhook.lambda_handler(event, FakeLambdaContext(function_name="wxtoken-webhook"))

    assert response["statusCode"] == 503, response
    assert "abc" not in response["body"]

    client = TokenClient.from_settings(system.settings)
    with pytest.raises(TokenUnavailableError, match="damaged"):
        client.access_token(APPID_A)


def test_a_damaged_ticket_is_replaced_too(system):
    run(system, Trigger.SCHEDULED)
    system.put_raw(APPID_A, RecordName.JSAPI_TICKET, "{oops")
    system.clock.advance(1)

    report = run(system, Trigger.GUARD)

    assert report.failed == [], report
    assert system.stored(APPID_A, RecordName.JSAPI_TICKET) is not None
