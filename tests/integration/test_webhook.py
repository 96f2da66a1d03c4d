"""The webhook as Lambda runs it: API Gateway v2 events from a player that signs like WeChat."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from devtools.wechat.player import WeChatPlayer, apigw_event, event_xml, text_xml
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.routers import WELCOME
from tests.fixtures.webhook import AES_KEY, TOKEN, webhook_on
from tests.fixtures.wechat import APPID_A, APPID_B
from wxtoken.deadline import Deadline
from wxtoken.refresh import RefreshRequest, Trigger
from wxtoken.webhook import HandlerContext, MessageRouter
from wxtoken.wechat.messages import TextMessage, parse_xml
from wxtoken.wechat.signature import sha1_signature

EVENTS = Path(__file__).parents[2] / "events"
PATH = f"/wechat/{APPID_A}"


@pytest.fixture
def player() -> WeChatPlayer:
    return WeChatPlayer(APPID_A, TOKEN, AES_KEY)


@pytest.fixture
def webhook(system, monkeypatch):
    """The webhook function on a system whose app A has a Token and EncodingAESKey."""
    return webhook_on(system, monkeypatch)


def invoke(handler, event):
    response = handler.lambda_handler(
        event, FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6)
    )
    assert response["statusCode"] < 500, response
    return response


def test_url_verification_answers_echostr_unchanged(webhook, player):
    response = invoke(webhook, apigw_event("GET", PATH, player.verification("abc123-echo")))
    assert response["statusCode"] == 200
    assert response["body"] == "abc123-echo"
    assert response["headers"]["Content-Type"].startswith("text/plain")


def test_plain_text_message_gets_the_echo_reply(webhook, player):
    query, body = player.message(text_xml("hello 你好 ]]> <b>"))
    response = invoke(webhook, apigw_event("POST", PATH, query, body))

    assert response["statusCode"] == 200
    reply = parse_xml(response["body"])
    assert reply["MsgType"] == "text"
    assert reply["Content"] == "hello 你好 ]]> <b>"
    assert (reply["ToUserName"], reply["FromUserName"]) == ("oUSER", "gh_account")


def test_safe_mode_message_gets_an_encrypted_echo_reply(webhook, player):
    query, body = player.message(text_xml("secret hello"), encrypted=True)
    response = invoke(webhook, apigw_event("POST", PATH, query, body))

    assert response["statusCode"] == 200
    assert "secret hello" not in response["body"]
    assert parse_xml(player.decrypt_reply(response["body"]))["Content"] == "secret hello"


def test_subscribe_event_gets_the_welcome_text(webhook, player):
    query, body = player.message(event_xml("subscribe", event_key="qrscene_42"))
    response = invoke(webhook, apigw_event("POST", PATH, query, body))
    assert parse_xml(response["body"])["Content"] == WELCOME


def test_other_messages_get_success(webhook, player):
    query, body = player.message(event_xml("CLICK", event_key="MENU_1"))
    response = invoke(webhook, apigw_event("POST", PATH, query, body))
    assert response["body"] == "success"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: {**q, "signature": "0" * 40},
        lambda q: {k: v for k, v in q.items() if k != "signature"},
        lambda q: {**q, "timestamp": str(int(time.time()) - 3600)},
        lambda q: {**q, "nonce": q["nonce"] + "1"},
    ],
    ids=["wrong-signature", "no-signature", "stale-timestamp", "tampered-nonce"],
)
def test_bad_signatures_are_refused_with_403(webhook, player, tamper):
    query, body = player.message(text_xml("hi"))
    response = invoke(webhook, apigw_event("POST", PATH, tamper(query), body))
    assert response["statusCode"] == 403
    assert response["body"] == "forbidden"


def test_safe_mode_checks_msg_signature_too(webhook, player):
    query, body = player.message(text_xml("hi"), encrypted=True)
    response = invoke(webhook, apigw_event("POST", PATH, {**query, "msg_signature": "0" * 40}, body))
    assert response["statusCode"] == 403


def test_unknown_appid_gets_404(webhook, player):
    query, body = player.message(text_xml("hi"))
    response = invoke(webhook, apigw_event("POST", "/wechat/wx9999999999999999", query, body))
    assert response["statusCode"] == 404


def test_app_without_a_token_gets_404(webhook, player):
    other = WeChatPlayer(APPID_B, TOKEN)
    response = invoke(webhook, apigw_event("GET", f"/wechat/{APPID_B}", other.verification()))
    assert response["statusCode"] == 404


def test_oversized_body_gets_413(webhook, player):
    query, _ = player.message(text_xml("hi"))
    response = invoke(webhook, apigw_event("POST", PATH, query, "<xml>" + "a" * (1024 * 1024 + 1) + "</xml>"))
    assert response["statusCode"] == 413


@pytest.mark.parametrize(
    "body",
    [
        "not xml at all",
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        "<xml><Content>&lol2;</Content></xml>",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>',
        "<xml><ToUserName>a</ToUserName></xml>",
    ],
    ids=["garbage", "billion-laughs", "external-entity", "missing-fields"],
)
def test_malformed_and_hostile_xml_gets_400(webhook, player, body):
    query, _ = player.message(text_xml("hi"))
    response = invoke(webhook, apigw_event("POST", PATH, query, body))
    assert response["statusCode"] == 400
    assert response["body"] == "bad request"


@pytest.mark.parametrize(
    "encrypt",
    ["!!!not-base64!!!", "QUJD", "A" * 64],
    ids=["bad-base64", "short", "bad-padding"],
)
def test_bad_ciphertexts_get_the_same_400(webhook, player, encrypt):
    from wxtoken.wechat.signature import sha1_signature

    query = player.query()
    query.update(
        encrypt_type="aes",
        msg_signature=sha1_signature(TOKEN, query["timestamp"], query["nonce"], encrypt),
    )
    body = f"<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    response = invoke(webhook, apigw_event("POST", PATH, query, body))
    assert response["statusCode"] == 400
    assert response["body"] == "bad request"


def test_ciphertext_for_another_appid_gets_400(webhook):
    intruder = WeChatPlayer("wx9999999999999999", TOKEN, AES_KEY)
    query, body = intruder.message(text_xml("hi"), encrypted=True)
    response = invoke(webhook, apigw_event("POST", PATH, query, body))
    assert response["statusCode"] == 400


def test_wechat_retries_run_the_handler_once_and_get_the_same_answer(webhook, player):
    calls = []
    router = webhook.router  # the test's own router, loaded with the function (load_handler)

    @router.message("image")
    def count(message):
        calls.append(message.msg_id)
        from wxtoken.wechat.replies import TextReply

        return TextReply(f"image {len(calls)}")

    xml = text_xml("x", msg_id=777).replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[image]]>")
    answers = []
    for _ in range(3):  # WeChat's retries carry the same MsgId
        query, body = player.message(xml)
        answers.append(invoke(webhook, apigw_event("POST", PATH, query, body))["body"])

    assert calls == [777]
    assert len({parse_xml(a)["Content"] for a in answers}) == 1


def test_a_slow_handler_is_answered_success_in_time(webhook, player, monkeypatch):
    monkeypatch.setenv("WEBHOOK_HANDLER_TIMEOUT_SECONDS", "0.2")
    slow = load_handler("webhook")
    router = slow.router

    finished = threading.Event()
    stopped = threading.Event()

    @router.message("voice")
    def sleepy(message):
        try:
            time.sleep(3.0)
            finished.set()
        except Exception:  # a handler's own catch-all cannot keep it running past its time
            finished.set()
        except BaseException:
            stopped.set()
            raise

    xml = text_xml("x", msg_id=888).replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[voice]]>")
    query, body = player.message(xml)
    response = invoke(slow, apigw_event("POST", PATH, query, body))

    # WeChat got its answer; the handler, inline on the main thread as on Lambda, was stopped
    # where it stood (Lambda freezes the process after the answer: it could not go on anyway)
    assert response["body"] == "success"
    assert stopped.is_set()
    assert not finished.wait(timeout=3.5)


def test_token_api_returns_the_stored_token_with_no_store(webhook, system):
    system.refresher().run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(10))
    event = apigw_event("GET", f"/token/{APPID_A}", iam_user_arn="arn:aws:iam::123456789012:user/app")

    response = invoke(webhook, event)

    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "no-store"
    payload = json.loads(response["body"])
    assert payload["access_token"] == system.stored(APPID_A).value
    assert payload["expires_at"] == system.stored(APPID_A).expires_at


def test_token_api_refuses_a_request_without_an_iam_identity(webhook, system):
    response = invoke(webhook, apigw_event("GET", f"/token/{APPID_A}"))
    assert response["statusCode"] == 403


@pytest.mark.parametrize(
    "name",
    ["webhook_verify.json", "webhook_text.json", "webhook_text_safe_mode.json", "webhook_subscribe.json"],
)
def test_event_files_run_through_the_handler(webhook, monkeypatch, name):
    # The files are signed once, with a fixed timestamp: env.json widens the window for
    # `sam local invoke`, and so does this test.
    monkeypatch.setenv("WEBHOOK_TIMESTAMP_WINDOW_SECONDS", "315360000")
    handler = load_handler("webhook")
    response = invoke(handler, json.loads((EVENTS / name).read_text()))
    assert response["statusCode"] == 200
    assert response["body"]


def test_compatible_mode_uses_the_encrypted_part(webhook, player):
    # Compatible mode: WeChat sends the plaintext fields AND Encrypt; only the latter counts.
    query, envelope = player.message(text_xml("the real one"), encrypted=True)
    encrypt = parse_xml(envelope)["Encrypt"]
    body = text_xml("a decoy").replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")

    response = invoke(webhook, apigw_event("POST", PATH, query, body))

    assert parse_xml(player.decrypt_reply(response["body"]))["Content"] == "the real one"


def test_a_retry_reaching_another_container_gets_the_first_answer(webhook, player, system):
    containers = [webhook, load_handler("webhook")]  # two cold starts sharing the dedup store
    calls = []
    for container in containers:
        router = container.router

        @router.message("image")
        def count(message, _calls=calls):
            from wxtoken.wechat.replies import TextReply

            _calls.append(message.msg_id)
            return TextReply(f"answer {len(_calls)}")

    xml = text_xml("x", msg_id=999).replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[image]]>")
    answers = []
    for container in containers:
        query, body = player.message(xml)
        answers.append(
            parse_xml(invoke(container, apigw_event("POST", PATH, query, body))["body"])["Content"]
        )

    assert calls == [999]
    assert answers == ["answer 1", "answer 1"]


def test_message_bodies_and_secrets_stay_out_of_the_logs(webhook, player, system, capsys, caplog):
    query, body = player.message(text_xml("my private words"), encrypted=True)
    invoke(webhook, apigw_event("POST", PATH, query, body))
    invoke(webhook, apigw_event("POST", PATH, {**query, "msg_signature": "0" * 40}, body))

    logs = "".join(capsys.readouterr()) + caplog.text
    assert "request refused" in logs  # the logs were captured at all
    for secret in ("my private words", TOKEN, AES_KEY, system.apps[APPID_A]["app_secret"]):
        assert secret not in logs


def test_token_api_event_file_runs_through_the_handler(webhook, system):
    system.refresher().run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(10))
    response = invoke(webhook, json.loads((EVENTS / "webhook_token_api.json").read_text()))
    assert json.loads(response["body"])["access_token"] == system.stored(APPID_A).value


# --- input WeChat never sends: a 4xx, never a 5xx ---------------------------------------------
def _event_with(method: str, query: dict[str, str], body: str | None = None, path: str = PATH) -> dict:
    """An API Gateway event carrying ``query`` and ``body`` exactly as given (lone surrogates
    included: a Lambda event is JSON, whose ``\\ud800`` escapes decode to them)."""
    event = apigw_event(method, path, None, body)
    event["queryStringParameters"] = query
    return event


ODD_TIMESTAMPS = {
    "superscript-two": "²",  # str.isdigit() says yes, int() says ValueError
    "circled-digit": "①",
    "arabic-indic": "١٢٣",  # int() reads it as 123
    "fullwidth": "１７００００００００",
    "5000-nines": "9" * 5000,  # past int()'s 4300-digit limit: ValueError
    "lone-surrogate": "\ud800",
    "negative": "-1",
    "space": " 1700000000",
    "decimal": "1700000000.5",
    "empty": "",
}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("timestamp", list(ODD_TIMESTAMPS.values()), ids=list(ODD_TIMESTAMPS))
def test_unsigned_requests_with_a_timestamp_wechat_never_sends_get_403(webhook, method, timestamp):
    query = {"signature": "0" * 40, "timestamp": timestamp, "nonce": "123", "echostr": "x"}

    response = invoke(webhook, _event_with(method, query, text_xml("hi") if method == "POST" else None))

    assert response["statusCode"] == 403, response
    assert response["body"] == "forbidden"


@pytest.mark.parametrize(
    "digits", [str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"), str.maketrans("0123456789", "０１２３４５６７８９")]
)
def test_a_request_signed_over_a_timestamp_in_other_digits_gets_403(webhook, digits):
    # A fresh timestamp, signed with the Token, but written in digits WeChat never uses: int()
    # reads them, so without the ASCII check this would be accepted.
    timestamp = str(int(time.time())).translate(digits)
    query = {"signature": sha1_signature(TOKEN, timestamp, "123"), "timestamp": timestamp, "nonce": "123"}

    response = invoke(webhook, _event_with("POST", query, text_xml("hi", msg_id=31)))

    assert response["statusCode"] == 403, response


@pytest.mark.parametrize(
    "spoil",
    [
        lambda q: {**q, "nonce": "\ud800"},
        lambda q: {**q, "signature": "\udc80" * 40},
        lambda q: {**q, "encrypt_type": "aes", "msg_signature": "\ud800"},
        lambda q: {**q, "nonce": "x" * 6000},
    ],
    ids=["surrogate-nonce", "surrogate-signature", "surrogate-msg-signature", "long-nonce"],
)
def test_unsigned_requests_with_odd_query_values_get_403(webhook, player, spoil):
    query, body = player.message(text_xml("hi"))

    response = invoke(webhook, _event_with("POST", spoil({**query, "signature": "0" * 40}), body))

    assert response["statusCode"] == 403, response


def test_a_signed_body_with_a_lone_surrogate_gets_400(webhook, player):
    # API Gateway sends a body that is not UTF-8 base64-encoded; one that arrives as JSON text
    # with a lone surrogate cannot be WeChat's either.
    query, _ = player.message(text_xml("hi"))

    body = text_xml("@@", msg_id=32).replace("@@", "\udc80")

    response = invoke(webhook, _event_with("POST", query, body))

    assert response["statusCode"] == 400, response


def test_an_unsigned_body_with_a_lone_surrogate_gets_403(webhook, player):
    query, _ = player.message(text_xml("hi"))

    body = text_xml("@@").replace("@@", "\udc80")

    response = invoke(webhook, _event_with("POST", {**query, "signature": "0" * 40}, body))

    assert response["statusCode"] == 403, response


def test_a_signed_url_check_with_an_unencodable_echostr_gets_400(webhook, player):
    query = player.verification("echo\ud800")

    response = invoke(webhook, _event_with("GET", query))

    assert response["statusCode"] == 400, response


def test_an_appid_of_thousands_of_characters_gets_404_and_a_short_log_line(webhook, player, caplog):
    appid = "wx" + "A" * 6000

    response = invoke(webhook, apigw_event("POST", f"/wechat/{appid}", player.query(), text_xml("hi")))

    assert response["statusCode"] == 404
    # (the records themselves: the JSON lines powertools prints may go to an earlier test's capture)
    [refused] = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert refused.appid.startswith("wxAAA")
    assert len(refused.appid) <= 64
    assert len(refused.path) <= 64


# --- no content sniffing ------------------------------------------------------------------------
def test_the_echostr_answer_tells_browsers_not_to_sniff_it(webhook, player):
    # echostr is whatever the caller chose, reflected as is: a browser that sniffed
    # "<html><script>…" out of text/plain would run it on the API's origin.
    response = invoke(webhook, apigw_event("GET", PATH, player.verification("<html><script>x</script>")))

    assert response["statusCode"] == 200
    assert response["body"] == "<html><script>x</script>"
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("xml", "encrypted"),
    [
        (text_xml("<html>", msg_id=41), False),  # an XML reply echoing the user's text
        (text_xml("<html>", msg_id=42), True),  # an encrypted reply
        (event_xml("CLICK", event_key="MENU_1"), False),  # success
    ],
    ids=["plain-reply", "safe-reply", "success"],
)
def test_message_answers_tell_browsers_not_to_sniff_them(webhook, player, xml, encrypted):
    query, body = player.message(xml, encrypted=encrypted)

    response = invoke(webhook, apigw_event("POST", PATH, query, body))

    assert response["statusCode"] == 200
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (apigw_event("GET", PATH, {"timestamp": "1", "nonce": "1", "signature": "0" * 40}), 403),
        (apigw_event("GET", "/wechat/wx9999999999999999"), 404),
        (apigw_event("GET", f"/token/{APPID_A}"), 403),
    ],
    ids=["forbidden", "unknown-app", "token-api-without-iam"],
)
def test_refusals_tell_browsers_not_to_sniff_them(webhook, event, status):
    response = invoke(webhook, event)

    assert response["statusCode"] == status
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"


def test_a_bad_request_tells_browsers_not_to_sniff_it(webhook, player):
    query, _ = player.message(text_xml("hi"))

    response = invoke(webhook, apigw_event("POST", PATH, query, "<not xml"))

    assert response["statusCode"] == 400
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"


# --- plain mode: a signature is good for one body -------------------------------------------------
def _counting_image_handler(container, calls: list[int]) -> None:
    @container.router.message("image")
    def count(message):
        from wxtoken.wechat.replies import TextReply

        calls.append(message.msg_id)
        return TextReply(f"answer {len(calls)}")


def _image_xml(content: str, msg_id: int) -> str:
    return text_xml(content, msg_id=msg_id).replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[image]]>")


def test_a_plain_mode_signature_replayed_with_another_body_gets_403_and_runs_no_handler(webhook, player):
    # Given WeChat's signed plain-mode delivery, handled by one container
    containers = [webhook, load_handler("webhook")]  # the replay reaches another: the store decides
    calls: list[int] = []
    for container in containers:
        _counting_image_handler(container, calls)
    query, body = player.message(_image_xml("genuine", msg_id=5001))
    assert invoke(containers[0], apigw_event("POST", PATH, query, body))["statusCode"] == 200

    # When someone who saw its URL sends the same timestamp, nonce and signature with a body
    # of their own (plain mode signs no body), inside the timestamp window
    forged = invoke(containers[1], apigw_event("POST", PATH, query, _image_xml("forged", msg_id=5002)))

    # Then it is refused, and the handler never sees it
    assert forged["statusCode"] == 403
    assert forged["body"] == "forbidden"
    assert calls == [5001]


def test_a_plain_mode_retry_with_the_same_signature_and_body_gets_the_same_answer(webhook, player):
    containers = [webhook, load_handler("webhook")]
    calls: list[int] = []
    for container in containers:
        _counting_image_handler(container, calls)
    query, body = player.message(_image_xml("once", msg_id=5003))

    answers = [invoke(c, apigw_event("POST", PATH, query, body)) for c in (*containers, containers[0])]

    assert [a["statusCode"] for a in answers] == [200, 200, 200]
    assert {parse_xml(a["body"])["Content"] for a in answers} == {"answer 1"}
    assert calls == [5003]


def test_a_safe_mode_signature_replayed_in_plain_mode_with_a_forged_body_gets_403(webhook, player):
    # A safe-mode URL carries the same (Token, timestamp, nonce) signature as a plain one;
    # dropping encrypt_type and msg_signature must not turn it into a plain-mode pass.
    calls: list[int] = []
    _counting_image_handler(webhook, calls)
    query, body = player.message(_image_xml("genuine", msg_id=5004), encrypted=True)
    assert invoke(webhook, apigw_event("POST", PATH, query, body))["statusCode"] == 200
    plain = {k: v for k, v in query.items() if k not in ("encrypt_type", "msg_signature")}

    forged = invoke(webhook, apigw_event("POST", PATH, plain, _image_xml("forged", msg_id=5005)))

    assert forged["statusCode"] == 403
    assert calls == [5004]


def test_a_safe_mode_retry_with_the_same_signature_gets_the_same_answer(webhook, player):
    calls: list[int] = []
    _counting_image_handler(webhook, calls)
    query, body = player.message(_image_xml("twice", msg_id=5006), encrypted=True)

    answers = [invoke(webhook, apigw_event("POST", PATH, query, body)) for _ in range(2)]

    assert {parse_xml(player.decrypt_reply(a["body"]))["Content"] for a in answers} == {"answer 1"}
    assert calls == [5006]


def test_with_the_dedup_store_down_a_plain_message_is_still_answered(webhook, player, system, request):
    # The signature binding fails open, like the message dedup: with the store down a
    # message is better answered (and a replay let through) than WeChat's users told
    # "该公众号暂时无法提供服务".
    calls: list[int] = []
    _counting_image_handler(webhook, calls)
    if system.kind in {"ssm", "dynamodb"}:  # dedup in the DedupTable, or in the token table
        table = "wxtoken-dedup" if system.dedup_table else system.env["TOKEN_TABLE"]
        system.aws.client("dynamodb").delete_table(TableName=table)
    else:
        request.getfixturevalue("redis_server").kill()  # redis_url restarts it for the next test
    query, body = player.message(_image_xml("store down", msg_id=5007))

    response = invoke(webhook, apigw_event("POST", PATH, query, body))

    assert response["statusCode"] == 200
    assert parse_xml(response["body"])["Content"] == "answer 1"
    assert calls == [5007]


@pytest.mark.parametrize("system", ["redis"], indirect=True)
def test_dedup_and_the_token_api_share_one_store_pool(webhook, system, player):
    """Issue 11: the webhook used to open a second store (a second pool, a second AUTH) just
    to reach its Redis client for dedup. One store per container now: one pool, in which
    dedup keeps one connection for itself (issue 12: its answers' replies are read with the
    next claim) and the token API uses another; sequential requests open no more."""
    import redis

    system.refresher().run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(10))
    admin = redis.Redis.from_url(system.env["REDIS_URL"])
    before = int(admin.info("stats")["total_connections_received"])

    for n in range(3):
        query, body = player.message(text_xml(f"one store {n}", msg_id=900 + n), encrypted=True)
        assert invoke(webhook, apigw_event("POST", PATH, query, body))["statusCode"] == 200
        event = apigw_event("GET", f"/token/{APPID_A}", iam_user_arn="arn:aws:iam::123456789012:user/app")
        assert invoke(webhook, event)["statusCode"] == 200

    # the admin connection was opened by the first INFO; the webhook's one pool opened two
    assert int(admin.info("stats")["total_connections_received"]) - before == 2


# --- handlers that take a context ------------------------------------------------------------------
def test_a_handler_with_a_context_calls_wechat_back_for_the_sender(system, player, monkeypatch):
    # Given a stored token, and a handler that takes (message, context) and sends the sender a
    # customer-service message through the context's token client
    system.refresher().run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(10))
    monkeypatch.setenv("WEBHOOK_HANDLER_TIMEOUT_SECONDS", "3")
    router = MessageRouter()
    seen: list[tuple[str, str, float]] = []

    @router.message("text")
    def later(message: TextMessage, context: HandlerContext) -> None:
        seen.append((context.appid, context.openid, context.deadline.remaining()))
        context.call(
            "POST",
            "/cgi-bin/message/custom/send",
            json={"touser": context.openid, "msgtype": "text", "text": {"content": "done"}},
        )

    handler = webhook_on(system, monkeypatch, router)

    # When WeChat delivers a text message from oUSER
    query, body = player.message(text_xml("slow job"))
    response = invoke(handler, apigw_event("POST", PATH, query, body))

    # Then WeChat got success, and the stand-in got the call for that user, with the app's token
    assert response["body"] == "success"
    [(appid, openid, remaining)] = seen
    assert (appid, openid) == (APPID_A, "oUSER")
    assert 0 < remaining <= 3
    [call] = [c for c in system.wechat.calls("api") if c.path == "/cgi-bin/message/custom/send"]
    assert call.appid == APPID_A
    assert call.params["touser"] == "oUSER"
    assert call.params["text"] == {"content": "done"}


@pytest.mark.parametrize("returned", ["plain text", {"Content": "x"}, 42], ids=["str", "dict", "int"])
def test_a_handler_returning_something_not_a_reply_costs_the_reply_not_the_answer(webhook, player, returned):
    # Given a handler that returns what no WeChat reply is
    @webhook.router.message("voice")
    def wrong(message):
        return returned

    xml = text_xml("x", msg_id=889).replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[voice]]>")
    query, body = player.message(xml)

    response = invoke(webhook, apigw_event("POST", PATH, query, body))

    # Then WeChat gets "success" (a 500 would make it retry the same message), not a crash
    assert response["statusCode"] == 200
    assert response["body"] == "success"
