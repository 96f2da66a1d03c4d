"""The webhook's Open Platform routes (issue 13), as Lambda runs them, with pushes and messages
made by the WeChat stand-in exactly as WeChat sends them (signed and encrypted with the
platform's Token and EncodingAESKey), on every store.

- ``POST /open/{component_appid}/events``: ticket pushes are stored (the newest wins),
  authorization events are handed to the refresher (DynamoDB's platform queues), and anything
  foreign or badly signed writes nothing;
- ``GET|POST /open/{component_appid}/{authorizer_appid}``: an authorizer's messages reach the
  same router as a direct app's, with the authorizer in the handler's context.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devtools.wechat.component import ComponentPush, OpenPlatform
from devtools.wechat.player import WeChatPlayer, apigw_event, text_xml
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.webhook import AES_KEY, COMPONENT, COMPONENT_SECRET, COMPONENT_TOKEN, component_webhook_on
from wxtoken.store.base import PlatformStore, RecordName
from wxtoken.webhook import HandlerContext
from wxtoken.wechat.messages import parse_xml
from wxtoken.wechat.replies import TextReply

EVENTS = Path(__file__).parents[2] / "events"
AUTHORIZER = "wx4444444444444444"
AUTHORIZER_2 = "wx5555555555555555"
OTHER_COMPONENT = "wx6666666666666666"
PUSH_PATH = f"/open/{COMPONENT}/events"
MESSAGE_PATH = f"/open/{COMPONENT}/{AUTHORIZER}"
TWELVE_HOURS = 43200


@pytest.fixture
def webhook(system, monkeypatch):
    # Pushes made after clock.advance() carry a timestamp ahead of the real time the
    # webhook checks them against; an hour of window covers every test here.
    monkeypatch.setenv("WEBHOOK_TIMESTAMP_WINDOW_SECONDS", "3600")
    return component_webhook_on(system, monkeypatch)


@pytest.fixture
def platform(webhook, wechat) -> OpenPlatform:
    return wechat.open_platform


@pytest.fixture
def player(platform) -> WeChatPlayer:
    """WeChat's side of the platform: signs and encrypts with the component's keys."""
    return platform.player(COMPONENT)


def invoke(handler, event: dict[str, Any]) -> dict[str, Any]:
    return handler.lambda_handler(
        event, FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6)
    )


def deliver(handler, push: ComponentPush, path: str = PUSH_PATH) -> dict[str, Any]:
    return invoke(handler, apigw_event("POST", path, push.query, push.body))


def platform_store(system) -> PlatformStore | None:
    return system.store().platform_store()


def stored_ticket(system, component: str = COMPONENT) -> dict[str, Any] | None:
    return system.store().read(component, RecordName.COMPONENT_VERIFY_TICKET)


# --- the 授权事件接收URL: component_verify_ticket --------------------------------------------


def test_a_ticket_push_is_stored_and_answered_success(webhook, platform, system):
    # Given WeChat's 10-minute timer fires
    push = platform.push_ticket(COMPONENT)
    created = int(parse_xml(push.xml)["CreateTime"])

    # When its push reaches the webhook
    response = deliver(webhook, push)

    # Then WeChat reads "success", and the ticket is stored for 12 h from CreateTime
    assert (response["statusCode"], response["body"]) == (200, "success")
    assert response["headers"]["Content-Type"] == "text/plain"
    assert stored_ticket(system) == {
        "ticket": push.ticket,
        "expires_at": created + TWELVE_HOURS,
        "fetched_at": created,
    }
    # the same JSON every other reader parses, straight from the backend
    assert json.loads(system.raw(COMPONENT, RecordName.COMPONENT_VERIFY_TICKET))["ticket"] == push.ticket


def test_an_older_ticket_push_never_overwrites_a_newer_one(webhook, platform, system, clock):
    older = platform.push_ticket(COMPONENT)
    clock.advance(600)
    newer = platform.push_ticket(COMPONENT)

    # WeChat's retry of the older push arrives after the newer one
    assert deliver(webhook, newer)["body"] == "success"
    assert deliver(webhook, older)["body"] == "success"

    assert stored_ticket(system)["ticket"] == newer.ticket


def test_a_retried_ticket_push_is_answered_success_and_changes_nothing(webhook, platform, system):
    push = platform.push_ticket(COMPONENT)
    first = deliver(webhook, push)
    stored = system.raw(COMPONENT, RecordName.COMPONENT_VERIFY_TICKET)

    again = deliver(webhook, push)

    assert (first["body"], again["body"]) == ("success", "success")
    assert system.raw(COMPONENT, RecordName.COMPONENT_VERIFY_TICKET) == stored


def test_a_push_of_another_component_is_refused_and_writes_nothing(webhook, wechat, system):
    # Another platform, same Token and EncodingAESKey (one vendor, two platforms): its
    # ciphertext names its own appid, so it can never pass for COMPONENT's.
    wechat.open_platform.add_component(OTHER_COMPONENT, COMPONENT_SECRET, COMPONENT_TOKEN, AES_KEY)
    push = wechat.open_platform.push_ticket(OTHER_COMPONENT)

    response = deliver(webhook, push)

    assert response["statusCode"] == 400
    assert stored_ticket(system) is None
    assert stored_ticket(system, OTHER_COMPONENT) is None


def test_a_push_whose_inner_appid_is_another_component_writes_nothing(webhook, player, system):
    xml = (
        f"<xml><AppId><![CDATA[{OTHER_COMPONENT}]]></AppId><CreateTime>{int(system.clock())}</CreateTime>"
        "<InfoType><![CDATA[component_verify_ticket]]></InfoType>"
        "<ComponentVerifyTicket><![CDATA[ticket@@@forged]]></ComponentVerifyTicket></xml>"
    )
    query, body = player.component_push(xml)

    response = invoke(webhook, apigw_event("POST", PUSH_PATH, query, body))

    assert response["statusCode"] == 400
    assert stored_ticket(system) is None
    assert stored_ticket(system, OTHER_COMPONENT) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: {**q, "msg_signature": "0" * 40},
        lambda q: {k: v for k, v in q.items() if k != "msg_signature"},
        lambda q: {**q, "signature": "0" * 40},
        lambda q: {**q, "nonce": q["nonce"] + "1"},
    ],
    ids=["wrong-msg-signature", "no-msg-signature", "wrong-signature", "tampered-nonce"],
)
def test_a_badly_signed_push_gets_403_and_writes_nothing(webhook, platform, system, tamper):
    push = platform.push_ticket(COMPONENT)

    response = invoke(webhook, apigw_event("POST", PUSH_PATH, tamper(push.query), push.body))

    assert (response["statusCode"], response["body"]) == (403, "forbidden")
    assert stored_ticket(system) is None


def test_a_plain_push_is_refused(webhook, platform, system):
    # WeChat encrypts every push to a platform: a plain one is signed by the URL alone.
    push = platform.push_ticket(COMPONENT)
    query = {k: v for k, v in push.query.items() if k not in ("encrypt_type", "msg_signature")}

    response = invoke(webhook, apigw_event("POST", PUSH_PATH, query, push.xml))

    assert response["statusCode"] == 400
    assert stored_ticket(system) is None


def test_a_push_for_an_unknown_component_gets_404(webhook, wechat, system):
    wechat.open_platform.add_component(OTHER_COMPONENT, COMPONENT_SECRET, COMPONENT_TOKEN, AES_KEY)
    push = wechat.open_platform.push_ticket(OTHER_COMPONENT)

    response = deliver(webhook, push, f"/open/{OTHER_COMPONENT}/events")

    assert response["statusCode"] == 404
    assert stored_ticket(system, OTHER_COMPONENT) is None


def test_a_direct_app_is_no_component(webhook, system):
    # App A has a Token and key too, but it is an app: its appid in /open/ is unknown there.
    from tests.fixtures.wechat import APPID_A

    push_player = WeChatPlayer(APPID_A, COMPONENT_TOKEN, AES_KEY)
    query, body = push_player.component_push(f"<xml><AppId>{APPID_A}</AppId></xml>")
    response = invoke(webhook, apigw_event("POST", f"/open/{APPID_A}/events", query, body))
    assert response["statusCode"] == 404


def test_an_unknown_info_type_is_answered_success_and_writes_nothing(webhook, player, system, caplog):
    xml = (
        f"<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>{int(system.clock())}</CreateTime>"
        "<InfoType><![CDATA[notify_third_fasteregister]]></InfoType></xml>"
    )
    query, body = player.component_push(xml)

    response = invoke(webhook, apigw_event("POST", PUSH_PATH, query, body))

    assert (response["statusCode"], response["body"]) == (200, "success")
    assert stored_ticket(system) is None
    [ignored] = [r for r in caplog.records if r.getMessage() == "component push ignored"]
    assert ignored.levelname == "INFO"


def test_the_store_down_gets_503_so_wechat_retries(webhook, platform, system, monkeypatch):
    if system.kind != "redis":
        pytest.skip("a dead store is simplest to have on Redis: a URL nothing listens on")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    handler = component_webhook_on(system, monkeypatch)

    response = deliver(handler, platform.push_ticket(COMPONENT))

    assert response["statusCode"] == 503


# --- the 授权事件接收URL: authorization events -----------------------------------------------


def _authorization_pushes(platform: OpenPlatform) -> dict[str, ComponentPush]:
    return {
        "authorized": platform.authorize(COMPONENT, AUTHORIZER),
        "updateauthorized": platform.update_authorization(COMPONENT, AUTHORIZER, func_info=(1, 2)),
        "unauthorized": platform.unauthorize(COMPONENT, AUTHORIZER),
    }


@pytest.mark.parametrize("info_type", ["authorized", "updateauthorized", "unauthorized"])
def test_an_authorization_event_is_posted_for_the_refresher(webhook, platform, system, clock, info_type):
    platforms = platform_store(system)
    if platforms is None:
        pytest.skip(f"{system.kind}: no platform queues here (yet: DynamoDB's land on branch dyn)")
    push = _authorization_pushes(platform)[info_type]
    fields = parse_xml(push.xml)

    response = deliver(webhook, push)

    assert (response["statusCode"], response["body"]) == (200, "success")
    expected: dict[str, Any] = {
        "event": info_type,
        "component_appid": COMPONENT,
        "fetched_at": int(fields["CreateTime"]),
    }
    if info_type != "unauthorized":
        expected["authorization_code"] = push.authorization_code
        expected["code_expires_at"] = int(fields["AuthorizationCodeExpiredTime"])
    record = system.store().read(AUTHORIZER, RecordName.AUTHORIZATION_EVENT)
    assert record is not None
    assert {k: record.get(k) for k in (*expected, "authorization_code")} == {
        "authorization_code": None,
        **expected,
    }
    assert AUTHORIZER in platforms.pending_events(COMPONENT, 10)


def test_an_older_authorization_event_does_not_replace_a_newer(webhook, platform, system, clock):
    if platform_store(system) is None:
        pytest.skip(f"{system.kind}: no platform queues here (yet: DynamoDB's land on branch dyn)")
    authorized = platform.authorize(COMPONENT, AUTHORIZER)
    clock.advance(60)
    unauthorized = platform.unauthorize(COMPONENT, AUTHORIZER)

    assert deliver(webhook, unauthorized)["body"] == "success"
    assert deliver(webhook, authorized)["body"] == "success"  # WeChat's late retry

    assert system.store().read(AUTHORIZER, RecordName.AUTHORIZATION_EVENT)["event"] == "unauthorized"


def test_authorization_events_need_a_store_with_platform_queues(webhook, platform, system, caplog):
    if platform_store(system) is not None:
        pytest.skip(f"{system.kind} has platform queues")
    push = platform.authorize(COMPONENT, AUTHORIZER)

    response = deliver(webhook, push)

    # 503: WeChat retries, the 5xx alarm fires, and the log says what to do
    assert response["statusCode"] == 503
    [logged] = [r for r in caplog.records if r.getMessage() == "dependency unavailable"]
    assert logged.error == "ConfigError"
    assert "Open Platform needs TOKEN_STORE=dynamodb" in logged.detail
    assert system.store().read(AUTHORIZER, RecordName.AUTHORIZATION_EVENT) is None
    # tickets still work there: they are plain records
    assert deliver(webhook, platform.push_ticket(COMPONENT))["body"] == "success"


# --- the 消息与事件接收URL: an authorizer's messages -------------------------------------------


def _image_xml(msg_id: int) -> str:
    return text_xml("x", msg_id=msg_id).replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[image]]>")


@pytest.fixture
def seen(webhook) -> list[tuple[str, int | None]]:
    """(context.appid, MsgId) of every image the router's handler ran for."""
    calls: list[tuple[str, int | None]] = []

    @webhook.router.message("image")
    def record(message, context: HandlerContext):
        calls.append((context.appid, message.msg_id))
        return TextReply(f"{context.appid} #{len(calls)}")

    return calls


def test_an_authorizer_message_reaches_the_router_with_the_authorizer_appid(webhook, player, seen):
    query, body = player.message(_image_xml(4242), encrypted=True)

    response = invoke(webhook, apigw_event("POST", MESSAGE_PATH, query, body))

    assert response["statusCode"] == 200
    assert seen == [(AUTHORIZER, 4242)]
    # encrypted with the component's key, the component appid closing it (player.decrypt_reply
    # checks the MsgSignature with the component's Token)
    assert "Encrypt" in parse_xml(response["body"])
    assert parse_xml(player.decrypt_reply(response["body"]))["Content"] == f"{AUTHORIZER} #1"


def test_an_authorizer_text_gets_the_echo_reply(webhook, player):
    query, body = player.message(text_xml("你好, authorizer"), encrypted=True)
    response = invoke(webhook, apigw_event("POST", MESSAGE_PATH, query, body))
    assert parse_xml(player.decrypt_reply(response["body"]))["Content"] == "你好, authorizer"


def test_a_retried_authorizer_message_runs_the_handler_once(webhook, player, seen):
    answers = []
    for _ in range(3):  # WeChat's retries carry the same MsgId
        query, body = player.message(_image_xml(777), encrypted=True)
        answers.append(
            parse_xml(
                player.decrypt_reply(invoke(webhook, apigw_event("POST", MESSAGE_PATH, query, body))["body"])
            )["Content"]
        )

    assert seen == [(AUTHORIZER, 777)]
    assert answers == [f"{AUTHORIZER} #1"] * 3


def test_the_same_msg_id_for_two_authorizers_is_two_deliveries(webhook, player, seen):
    for authorizer in (AUTHORIZER, AUTHORIZER_2):
        query, body = player.message(_image_xml(777), encrypted=True)
        assert (
            invoke(webhook, apigw_event("POST", f"/open/{COMPONENT}/{authorizer}", query, body))["statusCode"]
            == 200
        )

    assert seen == [(AUTHORIZER, 777), (AUTHORIZER_2, 777)]


def test_a_request_replayed_to_another_authorizer_is_refused(webhook, player, seen):
    # Neither the signature nor the ciphertext names the authorizer: only the URL does.
    query, body = player.message(_image_xml(9001), encrypted=True)
    first = invoke(webhook, apigw_event("POST", MESSAGE_PATH, query, body))

    replayed = invoke(webhook, apigw_event("POST", f"/open/{COMPONENT}/{AUTHORIZER_2}", query, body))

    assert first["statusCode"] == 200
    assert replayed["statusCode"] == 403
    assert seen == [(AUTHORIZER, 9001)]


def test_an_authorizer_url_is_verified_with_the_component_token(webhook, player):
    response = invoke(webhook, apigw_event("GET", MESSAGE_PATH, player.verification("echo-open")))
    assert (response["statusCode"], response["body"]) == (200, "echo-open")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/open/{COMPONENT}/not-an-appid", 400),
        (f"/open/{COMPONENT}/wx123", 400),
        (f"/open/{OTHER_COMPONENT}/{AUTHORIZER}", 404),
    ],
    ids=["not-an-appid", "too-short", "unknown-component"],
)
def test_bad_authorizer_urls_get_4xx(webhook, player, seen, path, status):
    query, body = player.message(_image_xml(1), encrypted=True)
    assert invoke(webhook, apigw_event("POST", path, query, body))["statusCode"] == status
    assert invoke(webhook, apigw_event("GET", path, player.verification()))["statusCode"] == status
    assert seen == []


def test_a_plain_authorizer_message_is_refused(webhook, player, seen):
    query, body = player.message(_image_xml(2))
    response = invoke(webhook, apigw_event("POST", MESSAGE_PATH, query, body))
    assert response["statusCode"] == 400
    assert seen == []


def test_a_message_signed_with_another_token_gets_403(webhook, seen):
    intruder = WeChatPlayer(COMPONENT, "anothertoken", AES_KEY)
    query, body = intruder.message(_image_xml(3), encrypted=True)
    assert invoke(webhook, apigw_event("POST", MESSAGE_PATH, query, body))["statusCode"] == 403
    assert seen == []


# --- logs ------------------------------------------------------------------------------------


def test_tickets_codes_and_keys_stay_out_of_the_logs(webhook, platform, player, system, capsys, caplog):
    ticket = platform.push_ticket(COMPONENT)
    authorized = platform.authorize(COMPONENT, AUTHORIZER)
    deliver(webhook, ticket)
    deliver(webhook, authorized)  # posted, or refused with a 503 on a store without queues
    query, body = player.message(text_xml("my private words"), encrypted=True)
    invoke(webhook, apigw_event("POST", MESSAGE_PATH, query, body))
    invoke(webhook, apigw_event("POST", PUSH_PATH, {**ticket.query, "msg_signature": "0" * 40}, ticket.body))

    # Every record whole, its extra fields included (the JSON lines carry them too)
    logs = "".join(capsys.readouterr()) + "".join(repr(vars(r)) for r in caplog.records)
    assert "verify ticket stored" in logs  # the logs were captured at all
    assert "request refused" in logs
    secrets = {
        "ticket": ticket.ticket,
        "authorization code": authorized.authorization_code,
        "message": "my private words",
        "token": COMPONENT_TOKEN,
        "aes key": AES_KEY,
        "component secret": COMPONENT_SECRET,
    }
    for what, value in secrets.items():
        assert value, what
        assert value not in logs, what


# --- events/ for sam local invoke --------------------------------------------------------------


@pytest.mark.parametrize("name", ["webhook_component_ticket.json", "webhook_authorizer_text.json"])
def test_open_platform_event_files_run_through_the_handler(webhook, monkeypatch, system, name):
    # Signed once with a fixed timestamp, like the other events/webhook_*.json files.
    monkeypatch.setenv("WEBHOOK_TIMESTAMP_WINDOW_SECONDS", "315360000")
    handler = load_handler("webhook")
    response = invoke(handler, json.loads((EVENTS / name).read_text()))
    assert response["statusCode"] == 200
    assert response["body"]
