"""The webhook on its own secret (Token and EncodingAESKey only), and the one secret of old.

With ``WECHAT_WEBHOOK_SECRET_ID`` set, the internet-facing webhook never reads the apps
secret, which holds every AppSecret: these run the real handler with the apps secret it names
made unreadable, so any read of it would show as a 503.
"""

from __future__ import annotations

import json

import pytest

from devtools.wechat.player import WeChatPlayer, apigw_event, text_xml
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, APPID_B
from wxtoken.deadline import Deadline
from wxtoken.refresh import RefreshRequest, Trigger
from wxtoken.wechat.messages import parse_xml

TOKEN = "wxtokenlocal"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WEBHOOK_SECRET_ID = "wxtoken/webhook"
IAM_USER = "arn:aws:iam::123456789012:user/app"


@pytest.fixture
def player() -> WeChatPlayer:
    return WeChatPlayer(APPID_A, TOKEN, AES_KEY)


def call(handler, event) -> dict:
    context = FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6)
    return handler.lambda_handler(event, context)


@pytest.fixture
def split_webhook(system, monkeypatch):
    """Given: the apps secret holds AppSecrets only (no Token), the webhook secret holds app A's
    Token and EncodingAESKey and lists app B bare, and the webhook names an apps secret it
    cannot read."""
    secrets = system.aws.client("secretsmanager")
    secrets.create_secret(
        Name=WEBHOOK_SECRET_ID,
        SecretString=json.dumps({APPID_A: {"token": TOKEN, "encoding_aes_key": AES_KEY}, APPID_B: {}}),
    )
    monkeypatch.setenv("WECHAT_WEBHOOK_SECRET_ID", WEBHOOK_SECRET_ID)
    monkeypatch.setenv("WECHAT_APPS_SECRET_ID", "wxtoken/apps-the-webhook-may-not-read")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wxtoken-webhook")
    return load_handler("webhook")


def test_url_verification_uses_the_token_of_the_webhook_secret(split_webhook, player):
    response = call(split_webhook, apigw_event("GET", f"/wechat/{APPID_A}", player.verification("echo-42")))
    assert (response["statusCode"], response["body"]) == (200, "echo-42")


def test_a_safe_mode_message_is_decrypted_with_the_key_of_the_webhook_secret(split_webhook, player):
    query, body = player.message(text_xml("split hello"), encrypted=True)
    response = call(split_webhook, apigw_event("POST", f"/wechat/{APPID_A}", query, body))

    assert response["statusCode"] == 200
    assert parse_xml(player.decrypt_reply(response["body"]))["Content"] == "split hello"


def test_the_token_api_serves_an_app_listed_bare_in_the_webhook_secret(split_webhook, system):
    system.refresher().run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(10))

    response = call(split_webhook, apigw_event("GET", f"/token/{APPID_B}", iam_user_arn=IAM_USER))

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["access_token"] == system.stored(APPID_B).value


def test_the_token_api_refuses_an_app_the_webhook_secret_does_not_list(split_webhook, system):
    # Given: the apps secret knows wx9999…, the webhook secret does not
    system.put_apps({**system.apps, "wx9999999999999999": {"app_secret": "s9"}})
    response = call(split_webhook, apigw_event("GET", "/token/wx9999999999999999", iam_user_arn=IAM_USER))
    assert response["statusCode"] == 404


def test_an_unfilled_webhook_secret_answers_503_so_wechat_retries_and_the_alarm_fires(
    split_webhook, system, player, caplog
):
    system.aws.client("secretsmanager").put_secret_value(SecretId=WEBHOOK_SECRET_ID, SecretString="{}")
    handler = load_handler("webhook")  # a fresh container: the secret is read again

    response = call(handler, apigw_event("GET", f"/wechat/{APPID_A}", player.verification()))

    assert response["statusCode"] == 503
    details = [str(getattr(record, "detail", "")) for record in caplog.records]
    assert any("PutWebhookSecretCommand" in detail for detail in details)  # the log says what to do


def test_one_secret_with_every_field_still_serves_both_functions(system, monkeypatch, player):
    # Given: the form of before the split, one apps secret with AppSecret, Token and key
    everything = {**system.apps[APPID_A], "token": TOKEN, "encoding_aes_key": AES_KEY}
    system.put_apps({**system.apps, APPID_A: everything})
    monkeypatch.delenv("WECHAT_WEBHOOK_SECRET_ID", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wxtoken-webhook")

    # When: the refresh function runs, then the webhook is called back and asked for a token
    refresh = load_handler("refresh_token")
    result = refresh.lambda_handler({"force": True}, FakeLambdaContext())
    webhook = load_handler("webhook")
    verified = call(webhook, apigw_event("GET", f"/wechat/{APPID_A}", player.verification("echo-1")))
    token = call(webhook, apigw_event("GET", f"/token/{APPID_A}", iam_user_arn=IAM_USER))

    # Then
    assert sorted(result["refreshed"]) == [APPID_A, APPID_B]
    assert (verified["statusCode"], verified["body"]) == (200, "echo-1")
    assert json.loads(token["body"])["access_token"] == system.stored(APPID_A).value
