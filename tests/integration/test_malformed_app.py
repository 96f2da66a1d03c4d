"""One malformed app in the apps secret (issue 9, finding 4) harms nothing beyond itself.

Before: one bad entry made the whole secret invalid — every refresh run raised before touching
any app, the webhook and the token API answered 500 for every app, and the error echoed the
bad key verbatim. Now the good apps are refreshed and served as usual, the bad one fails alone
with a clear error, a metric and an alarm, and no value of the secret is repeated anywhere.
"""

from __future__ import annotations

import json

import pytest

from devtools.wechat.player import WeChatPlayer, apigw_event, text_xml
from tests.fixtures.aws import create_dedup_table
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, APPID_B
from tests.integration.scenarios import capture_logs, discard_pending_metrics, emf_points

TOKEN = "wxtokenlocal"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID_C = "wx3333333333333333"
PASTED_KEY = "PASTEDsecretVALUE0123456789abcdef"  # a secret pasted where an appid belongs
BAD_ENTRIES = {
    "aes-key-42-chars": {
        APPID_C: {"app_secret": "cSecretValue42", "token": TOKEN, "encoding_aes_key": AES_KEY[:42]}
    },
    "token-with-dash": {
        APPID_C: {"app_secret": "cSecretValue42", "token": "tok-en", "encoding_aes_key": AES_KEY}
    },
    "key-not-an-appid": {PASTED_KEY: {"app_secret": "cSecretValue42"}},
}


@pytest.fixture(params=list(BAD_ENTRIES), ids=list(BAD_ENTRIES))
def bad(request, system, monkeypatch):
    good = {
        APPID_A: {**system.apps[APPID_A], "token": TOKEN, "encoding_aes_key": AES_KEY},
        APPID_B: system.apps[APPID_B],
    }
    system.put_apps({**good, **BAD_ENTRIES[request.param]})
    if system.dedup_table:
        create_dedup_table(system.aws, "wxtoken-dedup")
        monkeypatch.setenv("DEDUP_TABLE", "wxtoken-dedup")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wxtoken-webhook")
    return request.param


def refresh(payload):
    from wxtoken.errors import RefreshFailedError

    handler = load_handler("refresh_token")
    try:
        return handler.lambda_handler(payload, FakeLambdaContext())
    except RefreshFailedError as exc:
        return json.loads(str(exc))


def test_good_apps_are_refreshed_and_served_and_the_bad_one_fails_alone(system, bad, capsys):
    discard_pending_metrics()
    capsys.readouterr()
    with capture_logs() as logs:
        report = refresh({"action": "scheduled"})
        webhook = load_handler("webhook")
        player = WeChatPlayer(APPID_A, TOKEN, AES_KEY)
        query, body = player.message(text_xml("hello"), encrypted=True)
        good = webhook.lambda_handler(
            apigw_event("POST", f"/wechat/{APPID_A}", query, body), FakeLambdaContext()
        )
        token_api = webhook.lambda_handler(
            apigw_event("GET", f"/token/{APPID_B}", iam_user_arn="arn:aws:iam::123456789012:user/app"),
            FakeLambdaContext(),
        )
        c_player = WeChatPlayer(APPID_C, TOKEN, AES_KEY)
        c_query, c_body = c_player.message(text_xml("hello"))
        bad_answer = webhook.lambda_handler(
            apigw_event("POST", f"/wechat/{APPID_C}", c_query, c_body), FakeLambdaContext()
        )
    out = capsys.readouterr()

    assert sorted(report["refreshed"]) == [APPID_A, APPID_B], report
    assert len(report["failed"]) == 1, report
    failure = report["failed"][0]
    assert failure["error"].startswith("ConfigError"), failure
    assert failure["appid"] == ("entry #3" if bad == "key-not-an-appid" else APPID_C)
    for appid in (APPID_A, APPID_B):
        assert system.wechat.is_valid(appid, system.stored(appid).value)

    assert good["statusCode"] == 200
    assert good["body"] != "success"  # the echo reply, encrypted
    assert token_api["statusCode"] == 200
    assert json.loads(token_api["body"])["access_token"] == system.stored(APPID_B).value
    # the misconfigured app: a clear 503 (its entry is there but unusable), an unknown one 404
    assert bad_answer["statusCode"] == (404 if bad == "key-not-an-appid" else 503)

    invalid = [p for p in emf_points(out.out) if p.name == "AppsSecretInvalidEntries"]
    assert invalid
    assert invalid[-1].value == [1.0] or invalid[-1].value == 1.0
    text = json.dumps(report) + out.out + out.err + logs.text
    for value in (PASTED_KEY, "cSecretValue42", AES_KEY[:42], "tok-en"):
        assert value not in text, value
