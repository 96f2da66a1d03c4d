"""Open Platform on the refresh side, judged at the WeChat stand-in: the component token from
the last ticket, authorizers imported from the list and kept valid minute by minute, spread
over the cycle, authorization events, a lost ticket, a revoked refresh token.

The ticket pushes and authorization events are stored as the webhook stores them (its own
tests push them through the handler); here the refresh function's guard and schedule run on
the DynamoDB store (moto) against the stand-in over a real socket.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import requests
import yaml

from devtools.wechat import samples
from devtools.wechat.component import ComponentPush, OpenPlatform
from devtools.wechat.player import apigw_event
from devtools.wechat.standin import Delay, Drop, Lost
from tests.fixtures.aws import TOKEN_TABLE, create_token_table
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.integration.conftest import APPS_SECRET_ID, System
from tests.integration.scenarios import capture_logs
from wxtoken.apps import AppsSource
from wxtoken.config import Settings
from wxtoken.deadline import Deadline
from wxtoken.refresh import Refresher, RefreshRequest, Trigger
from wxtoken.refresh.platform_rules import AUTHORIZER_CYCLE_SECONDS, AUTHORIZER_MARGIN_SECONDS
from wxtoken.refresh.wiring import build_refresher
from wxtoken.store import open_store
from wxtoken.store.base import Credential, PlatformStore, RecordName, TokenStore
from wxtoken.wechat.messages import parse_xml

COMPONENT = "wx3333333333333333"
COMPONENT_SECRET = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"  # pragma: allowlist secret
PUSH_TOKEN = "componentpushtoken"
MINUTE = 60
HOUR = 3600
# A token fetched now is due again within 7200 - 600 s (its last slot before the margin):
# every authorizer comes due once in this many guard runs.
ALL_DUE_WITHIN_MINUTES = (7200 - AUTHORIZER_MARGIN_SECONDS) // MINUTE + 2


class Platform:
    """The refresh system with one third-party platform configured, on DynamoDB."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.wechat = system.wechat
        self.clock = system.clock
        self.open: OpenPlatform = system.wechat.open_platform
        self.open.add_component(COMPONENT, COMPONENT_SECRET, PUSH_TOKEN, samples.AES_KEY)
        system.put_apps(
            {
                **system.apps,
                COMPONENT: {
                    "kind": "component",
                    "app_secret": COMPONENT_SECRET,
                    "token": PUSH_TOKEN,
                    "encoding_aes_key": samples.AES_KEY,
                },
            }
        )
        self.store: TokenStore = open_store(system.settings, clock=self.clock)
        platform = self.store.platform_store()
        assert platform is not None
        self.queue: PlatformStore = platform
        self._refresher: Refresher | None = None

    def refresher(self) -> Refresher:
        if self._refresher is None:
            settings = Settings.from_env(self.system.env)
            self._refresher = build_refresher(
                settings, clock=self.clock, apps=AppsSource(APPS_SECRET_ID, max_age=0)
            )
        return self._refresher

    def run(self, trigger: Trigger = Trigger.GUARD, seconds: float = 55.0, **kwargs: Any) -> dict[str, Any]:
        request = RefreshRequest(trigger, self.clock.now(), **kwargs)
        return self.refresher().run(request, Deadline.after(seconds)).as_dict()

    def deliver(self, push: ComponentPush) -> None:
        """Store a push as the webhook does (its tests take it through the handler)."""
        xml = parse_xml(push.xml)
        created = float(xml["CreateTime"])
        if push.info_type == "component_verify_ticket":
            record = {
                "ticket": xml["ComponentVerifyTicket"],
                "expires_at": created + 43200,
                "fetched_at": created,
            }
            self.store.write_if_newer(COMPONENT, RecordName.COMPONENT_VERIFY_TICKET, record, 43200)
            return
        event: dict[str, Any] = {"event": push.info_type, "component_appid": COMPONENT, "fetched_at": created}
        if "AuthorizationCode" in xml:
            event["authorization_code"] = xml["AuthorizationCode"]
        self.queue.post_event(xml["AuthorizerAppid"], COMPONENT, event)

    def stored(self, appid: str, name: RecordName = RecordName.ACCESS_TOKEN) -> Credential | None:
        raw = self.store.read(appid, name)
        return Credential.from_record(name, raw) if raw else None

    def valid(self, appid: str) -> bool:
        token = self.stored(appid)
        return token is not None and self.open.is_authorizer_token_valid(appid, token.value)

    def invalid(self, appids: list[str]) -> list[str]:
        """The authorizers whose stored token WeChat would refuse now (one BatchGetItem per
        100, as a reader in another language would read them)."""
        client = self.system.aws.client("dynamodb")
        stored: dict[str, str] = {}
        for start in range(0, len(appids), 100):
            keys = [{"name": {"S": f"{appid}/access_token"}} for appid in appids[start : start + 100]]
            answer = client.batch_get_item(RequestItems={TOKEN_TABLE: {"Keys": keys, "ConsistentRead": True}})
            for item in answer["Responses"][TOKEN_TABLE]:
                stored[item["name"]["S"].split("/")[0]] = json.loads(item["value"]["S"])["access_token"]
        return [a for a in appids if a not in stored or not self.open.is_authorizer_token_valid(a, stored[a])]

    def settle(self, seconds: float = 5.0) -> None:
        """Wait (real time) until WeChat has finished every request it received: the fake
        clock moves a minute in an instant, a late answer still takes its real time."""
        until = time.monotonic() + seconds
        while any(not call.done for call in self.wechat.calls()) and time.monotonic() < until:
            time.sleep(0.05)

    def minute(self) -> dict[str, Any]:
        """A minute passes; WeChat pushes a ticket every 10; the guard runs."""
        self.clock.advance(MINUTE)
        if int(self.clock.now() // MINUTE) % 10 == 0:
            self.deliver(self.open.push_ticket(COMPONENT))
        return self.run()


@pytest.fixture
def platform(aws, wechat, clock, monkeypatch) -> Platform:
    env = {
        "WECHAT_APPS_SECRET_ID": APPS_SECRET_ID,
        "TOKEN_STORE": "dynamodb",
        "TOKEN_TABLE": create_token_table(aws),
        "WECHAT_API_BASE": wechat.base_url,
        "WECHAT_READ_TIMEOUT": "0.5",
        "WECHAT_CONNECT_TIMEOUT": "0.5",
        "WECHAT_MAX_ATTEMPTS": "3",
        "APPS_SECRET_CACHE_SECONDS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    aws.client("secretsmanager").create_secret(Name=APPS_SECRET_ID, SecretString="{}")
    return Platform(System("dynamodb", env, wechat, clock, aws))


def authorizer_calls(platform: Platform) -> list[Any]:
    return platform.wechat.calls("authorizer_token")


# --- the component token -----------------------------------------------------------------


def test_component_token_is_fetched_with_the_last_ticket_and_valid_at_wechat(platform):
    # Given WeChat pushed a ticket to the webhook
    platform.deliver(platform.open.push_ticket(COMPONENT))
    # When the guard runs
    result = platform.run()
    # Then the component token is stored where readers find it, and WeChat accepts it
    token = platform.stored(COMPONENT, RecordName.COMPONENT_ACCESS_TOKEN)
    assert token is not None
    assert platform.open.component_token_state(COMPONENT, token.value) == "valid"
    assert result["platforms"][COMPONENT]["component_refreshed"] is True
    assert not result["failed"]
    raw = json.loads(platform.system.raw(COMPONENT, RecordName.COMPONENT_ACCESS_TOKEN) or "{}")
    assert set(raw) == {"access_token", "expires_at", "fetched_at"}
    # And the next guard run a minute later leaves it alone (one call per cycle)
    platform.clock.advance(MINUTE)
    platform.run()
    assert len(platform.wechat.calls("component_token")) == 1


def test_a_lost_ticket_restarts_pushes_fails_the_run_and_says_what_to_check(platform):
    # Given WeChat stopped pushing and no ticket was ever stored
    platform.open.stop_ticket_pushes(COMPONENT)
    # When the guard runs
    with capture_logs() as logs:
        result = platform.run()
    # Then the component's failure is reported (the run fails: every authorizer needs it),
    # WeChat is asked to push again, and the log says where the pushes must go
    assert any(f["appid"] == COMPONENT and "ComponentTicketError" in f["error"] for f in result["failed"])
    assert len(platform.wechat.calls("start_push_ticket")) == 1
    assert "/open/<component_appid>/events" in logs.text
    # And the push WeChat sends after the restart is enough for the next run
    (push,) = platform.open.take_pushes(COMPONENT)
    platform.deliver(push)
    platform.clock.advance(MINUTE)
    result = platform.run()
    assert not result["failed"]
    token = platform.stored(COMPONENT, RecordName.COMPONENT_ACCESS_TOKEN)
    assert token is not None
    assert platform.open.component_token_state(COMPONENT, token.value) == "valid"
    # And the restart is not asked for again every minute while tickets are missing
    platform.clock.advance(MINUTE)
    platform.run()
    assert len(platform.wechat.calls("start_push_ticket")) == 1


# --- authorizers -----------------------------------------------------------------------------


def test_the_first_run_imports_every_authorizer_from_the_list_and_each_token_is_valid(platform, monkeypatch):
    # Given a platform whose accounts authorized it before wxtoken (three pages of the list:
    # its pages are 500 at WeChat, 50 here to keep the test quick)
    monkeypatch.setattr("wxtoken.wechat.component_api.AUTHORIZER_LIST_PAGE", 50)
    platform.deliver(platform.open.push_ticket(COMPONENT))
    appids = platform.open.add_authorizers(COMPONENT, 120)
    # When the guard runs (the import and the first refreshes may take a few runs)
    platform.run()
    for _ in range(10):  # one run usually does it; a slow machine may need more
        if all(platform.stored(appid) for appid in appids):
            break
        platform.clock.advance(MINUTE)
        platform.run()
    # Then every authorizer's token is stored and valid at WeChat, its refresh token kept
    assert not platform.invalid(appids)
    assert all(platform.store.read(appid, RecordName.AUTHORIZER_REFRESH_TOKEN) for appid in appids)
    assert len(platform.wechat.calls("get_authorizer_list")) == 3
    # And each was fetched once
    assert Counter(call.appid for call in authorizer_calls(platform)) == Counter(dict.fromkeys(appids, 1))


def test_authorizer_tokens_stay_valid_every_minute_spread_over_the_cycle(platform):
    # Given 60 authorizers imported, and WeChat pushing tickets every 10 minutes
    platform.deliver(platform.open.push_ticket(COMPONENT))
    appids = platform.open.add_authorizers(COMPONENT, 60)
    platform.run()
    first_cycle_ends = platform.clock.now() + AUTHORIZER_CYCLE_SECONDS + 10 * MINUTE
    calls_before = len(authorizer_calls(platform))
    per_minute: list[int] = []
    # When four hours pass, the guard running every minute
    for _ in range(4 * 60):
        before = len(authorizer_calls(platform))
        result = platform.minute()
        assert not result["failed"], result["failed"]
        # Then at every minute every stored token is valid at WeChat
        invalid = platform.invalid(appids)
        assert not invalid, f"{len(invalid)} invalid at {platform.clock.now()}"
        if platform.clock.now() > first_cycle_ends:
            per_minute.append(len(authorizer_calls(platform)) - before)
    # And after the first cycle no minute carries more than a tenth of the authorizers
    assert max(per_minute) <= len(appids) / 10
    # And each authorizer is called once per 100-minute cycle (4 h: 2 or 3 refreshes each)
    calls = Counter(call.appid for call in authorizer_calls(platform)[calls_before:])
    assert set(calls.values()) <= {2, 3}
    assert sum(calls.values()) <= len(appids) * (4 * HOUR / AUTHORIZER_CYCLE_SECONDS + 1)


def test_authorized_and_unauthorized_events_are_acted_on_by_the_next_run(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    platform.run()
    authorizer = "wx5555555555555555"
    # Given an account authorizes the platform (the webhook queued the push)
    platform.deliver(platform.open.authorize(COMPONENT, authorizer))
    # When the guard runs
    platform.clock.advance(MINUTE)
    result = platform.run()
    # Then its token is stored and valid at WeChat, and its refresh token kept
    assert platform.valid(authorizer)
    kept = platform.store.read(authorizer, RecordName.AUTHORIZER_REFRESH_TOKEN)
    assert kept is not None
    assert kept["refresh_token"] == platform.open.refresh_token(COMPONENT, authorizer)
    assert result["platforms"][COMPONENT]["events"] == 1
    # And the event is not acted on twice
    platform.clock.advance(MINUTE)
    assert platform.run()["platforms"][COMPONENT]["events"] == 0
    assert len(platform.wechat.calls("query_auth")) == 1
    # When it withdraws the authorization
    platform.deliver(platform.open.unauthorize(COMPONENT, authorizer))
    platform.clock.advance(MINUTE)
    platform.run()
    # Then its tokens are gone within the minute and it is no longer refreshed
    assert platform.stored(authorizer) is None
    assert platform.store.read(authorizer, RecordName.AUTHORIZER_REFRESH_TOKEN) is None
    calls = len(authorizer_calls(platform))
    for _ in range(3):
        platform.clock.advance(HOUR)
        platform.deliver(platform.open.push_ticket(COMPONENT))
        platform.run()
    assert len(authorizer_calls(platform)) == calls


def test_a_revoked_refresh_token_is_recovered_from_the_list_once(platform):
    # Given an authorizer whose refresh token WeChat replaced (the new one is only in the list)
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (appid, other) = platform.open.add_authorizers(COMPONENT, 2)
    platform.run()
    assert platform.valid(appid)
    current = platform.open.revoke_refresh_token(appid)
    # When its refresh comes due
    for _ in range(ALL_DUE_WITHIN_MINUTES):
        platform.minute()
    # Then its token stayed valid: the refused refresh token was replaced by the listed one
    assert platform.valid(appid)
    assert platform.valid(other)
    kept = platform.store.read(appid, RecordName.AUTHORIZER_REFRESH_TOKEN)
    assert kept is not None
    assert kept["refresh_token"] == current


def test_a_refresh_token_gone_from_the_list_is_alarmed_and_others_are_unharmed(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (gone, other) = platform.open.add_authorizers(COMPONENT, 2)
    platform.run()
    # Given WeChat refuses one authorizer's refresh token and lists no other
    platform.open.revoke_refresh_token(gone)
    with platform.open._lock:  # the account left without an unauthorized push reaching us
        platform.open._components[COMPONENT].authorizers.pop(gone)
    # When the cycle goes round
    lost = 0
    for _ in range(ALL_DUE_WITHIN_MINUTES):
        result = platform.minute()
        lost += result["platforms"][COMPONENT]["refresh_tokens_lost"]
        # Then the run itself never fails for one account, and the other stays valid
        assert not result["failed"]
        assert platform.valid(other)
    # (alarmed again at each hourly retry, until the account authorizes again)
    assert lost >= 1
    # And the list was read for it once (after the import's read)
    assert len(platform.wechat.calls("get_authorizer_list")) == 2


def test_a_reader_compare_and_refresh_of_an_authorizer_goes_through_its_platform(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (appid,) = platform.open.add_authorizers(COMPONENT, 1)
    platform.run()
    stale = platform.stored(appid)
    assert stale is not None
    # When a reader reports the stored token rejected (the refresh function's payload)
    result = platform.run(Trigger.COMPARE, appids=(appid,), invalid_token=stale.value)
    # Then the authorizer's token is replaced and valid, like an app's
    assert result["refreshed"] == [appid]
    fresh = platform.stored(appid)
    assert fresh is not None
    assert fresh.value != stale.value
    assert platform.valid(appid)


def test_no_secret_of_the_platform_reaches_the_logs_or_the_result(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (appid,) = platform.open.add_authorizers(COMPONENT, 1)
    with capture_logs() as logs:
        result = platform.run()
    refresh_token = platform.open.refresh_token(COMPONENT, appid)
    component_token = platform.stored(COMPONENT, RecordName.COMPONENT_ACCESS_TOKEN)
    token = platform.stored(appid)
    assert component_token is not None
    assert token is not None
    for secret in (COMPONENT_SECRET, refresh_token, component_token.value, token.value):
        assert secret not in logs.text
        assert secret not in json.dumps(result)


def test_the_refresh_handler_runs_the_platform_from_the_guard_event(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (appid,) = platform.open.add_authorizers(COMPONENT, 1)
    app = load_handler("refresh_token")
    with open("events/guard.json") as f:
        event = json.load(f)
    result = app.lambda_handler(event, FakeLambdaContext())
    assert result["platforms"][COMPONENT]["authorizers_refreshed"] == 1
    assert platform.valid(appid)


def test_every_platform_metric_the_template_reads_is_emitted(platform, capsys):
    from tests.integration.scenarios import emf_points
    from tests.integration.test_observability import (
        TEMPLATE,
        CloudFormationLoader,
        alarm_metrics,
        dashboard_metrics,
    )
    from wxtoken.observability import NAMESPACE, PLATFORM_METRIC_NAMES, metrics

    # Given a platform with a lost refresh token among its authorizers
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (gone, _other) = platform.open.add_authorizers(COMPONENT, 2)
    platform.run()
    platform.open.revoke_refresh_token(gone)
    with platform.open._lock:
        platform.open._components[COMPONENT].authorizers.pop(gone)
    # When the guard runs through the cycle (each run's metrics flushed as the handler does)
    for _ in range(ALL_DUE_WITHIN_MINUTES):
        platform.minute()
        metrics.flush_metrics()
    # Then every Open Platform metric the dashboard and the alarms read was emitted, dimensionless
    points = [p for p in emf_points(capsys.readouterr().out) if p.namespace == NAMESPACE]
    emitted = {(p.name, p.dimensions) for p in points}
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506
    wanted = [
        w for w in dashboard_metrics(template) + alarm_metrics(template) if w[0] in PLATFORM_METRIC_NAMES
    ]
    assert {w[0] for w in wanted} == PLATFORM_METRIC_NAMES
    missing = [
        (metric, sorted(dims), where) for metric, dims, where in wanted if (metric, dims) not in emitted
    ]
    assert not missing, f"read by the template, never emitted: {missing}"


def test_authorizers_get_jsapi_tickets_when_their_platform_asks_for_them(platform):
    # Given a platform whose entry asks for jsapi tickets for its authorizers
    apps = dict(platform.system.apps)
    apps[COMPONENT] = {**apps[COMPONENT], "jsapi_ticket": True}
    platform.system.put_apps(apps)
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (appid,) = platform.open.add_authorizers(COMPONENT, 1)
    # When the guard runs
    platform.run()
    # Then the authorizer's ticket is stored beside its token, fetched with that token
    ticket = platform.stored(appid, RecordName.JSAPI_TICKET)
    token = platform.stored(appid)
    assert ticket is not None
    assert token is not None
    (call,) = platform.wechat.calls("getticket", appid=appid)
    assert call.errcode == 0
    assert ticket.fetched_at >= token.fetched_at


def test_rotated_refresh_tokens_are_kept_and_tokens_stay_valid(platform):
    # Given WeChat hands out a new refresh token with every authorizer token
    platform.open.rotate_refresh_tokens = True
    platform.deliver(platform.open.push_ticket(COMPONENT))
    appids = platform.open.add_authorizers(COMPONENT, 5)
    platform.run()
    # When two cycles pass
    for _ in range(2 * ALL_DUE_WITHIN_MINUTES):
        assert not platform.minute()["failed"]
        # Then every token stays valid at WeChat
        assert not platform.invalid(appids)
    # And the refresh token kept is the one WeChat accepts now (the rotated one)
    for appid in appids:
        kept = platform.store.read(appid, RecordName.AUTHORIZER_REFRESH_TOKEN)
        assert kept is not None
        assert kept["refresh_token"] == platform.open.refresh_token(COMPONENT, appid)


# One late answer (WeChat mints, the answer misses the 0.5 s read timeout, the replay's token
# is stored, and the late attempt may still mint after it: the stored token is kept suspect and
# replaced a minute later), or one lost answer (replayed at once). Two losses in a row retire
# the stored token at once, for any SDK (WeChat keeps only the newest previous token): the
# guard then replaces it within a minute (tests/integration/test_lost_mint.py, for apps).
@pytest.mark.parametrize(("fault", "times"), [(Delay(0.8), 1), (Lost(Drop()), 1)], ids=["slow", "lost"])
def test_a_slow_or_lost_authorizer_token_answer_never_leaves_an_invalid_token(platform, fault, times):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (appid,) = platform.open.add_authorizers(COMPONENT, 1)
    platform.run()
    assert platform.valid(appid)
    # Given WeChat mints but its answer is late (past the 0.5 s read timeout) or lost
    platform.wechat.fail_next("authorizer_token", fault, times=times, appid=appid)
    # When the account's refresh comes due and the guard goes on every minute
    for _ in range(ALL_DUE_WITHIN_MINUTES + 10):
        platform.minute()
        platform.settle()  # a late answer is late in real time: let WeChat finish its minute
        # Then its stored token is valid at WeChat every minute
        assert platform.valid(appid), platform.clock.now()
    assert len(platform.wechat.calls("authorizer_token", appid=appid)) >= 1 + times


def test_an_expired_authorization_code_is_recovered_from_the_list(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    platform.run()
    authorizer = "wx6666666666666666"
    # Given the authorized push was queued, but no run came for 11 minutes (the code lives 10)
    platform.deliver(platform.open.authorize(COMPONENT, authorizer))
    platform.clock.advance(11 * MINUTE)
    # When the guard runs, and the next
    with capture_logs() as logs:
        platform.run()
        platform.minute()
    # Then the account was found in api_get_authorizer_list and its token is valid
    assert platform.valid(authorizer)
    assert "AuthorizationCode" not in logs.text
    kept = platform.store.read(authorizer, RecordName.AUTHORIZER_REFRESH_TOKEN)
    assert kept is not None
    assert kept["refresh_token"] == platform.open.refresh_token(COMPONENT, authorizer)


def test_a_component_token_refused_at_wechat_is_replaced_and_authorizers_still_refresh(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    (appid,) = platform.open.add_authorizers(COMPONENT, 1)
    platform.run()
    stale = platform.stored(COMPONENT, RecordName.COMPONENT_ACCESS_TOKEN)
    assert stale is not None
    # Given another program fetched two component tokens with the platform's secret (the
    # stored one is neither the newest nor the newest previous: WeChat refuses it at once)
    ticket = platform.open.current_ticket(COMPONENT)
    for _ in range(2):
        answer = requests.post(
            f"{platform.wechat.base_url}/cgi-bin/component/api_component_token",
            json={
                "component_appid": COMPONENT,
                "component_appsecret": COMPONENT_SECRET,
                "component_verify_ticket": ticket,
            },
            timeout=5,
        ).json()
        assert "component_access_token" in answer
    assert platform.open.component_token_state(COMPONENT, stale.value) != "valid"
    # When the authorizer's refresh comes due
    for _ in range(ALL_DUE_WITHIN_MINUTES):
        result = platform.minute()
        assert not result["failed"]
    # Then its token is valid, and the component token was replaced by one WeChat accepts
    assert platform.valid(appid)
    fresh = platform.stored(COMPONENT, RecordName.COMPONENT_ACCESS_TOKEN)
    assert fresh is not None
    assert platform.open.component_token_state(COMPONENT, fresh.value) == "valid"


def test_a_queue_entry_left_after_unauthorized_leaves_quietly(platform):
    platform.deliver(platform.open.push_ticket(COMPONENT))
    platform.run()
    authorizer = "wx7777777777777777"
    platform.deliver(platform.open.authorize(COMPONENT, authorizer))
    platform.clock.advance(MINUTE)
    platform.run()
    platform.deliver(platform.open.unauthorize(COMPONENT, authorizer))
    platform.clock.advance(MINUTE)
    platform.run()
    # Given a run that raced the unauthorized push put the account back in the queue
    now = platform.clock.now()
    platform.queue.schedule(
        authorizer,
        COMPONENT,
        now,
        {"component_appid": COMPONENT, "due_at": now, "failures": 0, "recovered_at": 0.0, "fetched_at": now},
    )
    # When the guard runs
    platform.clock.advance(MINUTE)
    result = platform.run()
    # Then the entry leaves the queue without an alarm, and no token comes back
    summary = result["platforms"][COMPONENT]
    assert summary["refresh_tokens_lost"] == 0
    assert summary["authorizers_failed"] == 0
    assert platform.queue.due(COMPONENT, platform.clock.now() + 30 * 86400, 10) == []
    assert platform.stored(authorizer) is None


def test_pushes_through_the_webhook_then_the_guard_serve_an_authorizer_like_an_app(platform, monkeypatch):
    # Given the deployed pair of functions on one store: WeChat pushes a ticket and an
    # authorization to the webhook (encrypted, as WeChat sends them)
    webhook = load_handler("webhook")
    refresh = load_handler("refresh_token")

    def push(pushed: ComponentPush) -> None:
        event = apigw_event("POST", f"/open/{COMPONENT}/events", query=pushed.query, body=pushed.body)
        response = webhook.lambda_handler(event, FakeLambdaContext())
        assert (response["statusCode"], response["body"]) == (200, "success")

    authorizer = "wx8888888888888888"
    push(platform.open.push_ticket(COMPONENT))
    push(platform.open.authorize(COMPONENT, authorizer))
    # When the guard runs (the refresh function, from its schedule's event)
    with open("events/guard.json") as f:
        result = refresh.lambda_handler(json.load(f), FakeLambdaContext())
    assert not result["failed"]
    # Then the token API serves the authorizer's token, and WeChat accepts it
    event = apigw_event("GET", f"/token/{authorizer}", iam_user_arn="arn:aws:iam::123456789012:user/app")
    response = webhook.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    served = json.loads(response["body"])["access_token"]
    assert platform.open.is_authorizer_token_valid(authorizer, served)
    # And an appid wxtoken keeps nothing for is still unknown
    event = apigw_event("GET", "/token/wx9999999999999999", iam_user_arn="arn:aws:iam::123456789012:user/app")
    assert webhook.lambda_handler(event, FakeLambdaContext())["statusCode"] == 404
