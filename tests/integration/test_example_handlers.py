"""The shipped example, functions/webhook/handlers.py: echo text, welcome new followers.

This file is the example's, and only this file: when you replace handlers.py, adapt these
tests to your handlers or delete the file (docs/webhook-handlers.md). wxtoken's own tests
run on their own router (tests/fixtures/routers.py) and pass whatever handlers.py holds.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from devtools.wechat.player import WeChatPlayer, apigw_event, event_xml, text_xml
from tests.fixtures.lambda_context import FakeLambdaContext
from tests.fixtures.webhook import AES_KEY, TOKEN, webhook_on
from tests.fixtures.wechat import APPID_A
from wxtoken.wechat.messages import parse_xml

HANDLERS = Path(__file__).parents[2] / "functions" / "webhook" / "handlers.py"
PATH = f"/wechat/{APPID_A}"


def example_handlers() -> ModuleType:
    """functions/webhook/handlers.py, freshly imported: a router of its own per test."""
    spec = importlib.util.spec_from_file_location("example_handlers", HANDLERS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def webhook(system, monkeypatch):
    """The webhook function running the example's router, on app A (safe mode possible)."""
    return webhook_on(system, monkeypatch, example_handlers().router)


def post(webhook, xml: str, *, encrypted: bool = False) -> str:
    player = WeChatPlayer(APPID_A, TOKEN, AES_KEY)
    query, body = player.message(xml, encrypted=encrypted)
    response = webhook.lambda_handler(
        apigw_event("POST", PATH, query, body),
        FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6),
    )
    assert response["statusCode"] == 200, response
    return player.decrypt_reply(response["body"]) if encrypted else response["body"]


def test_text_is_echoed(webhook):
    reply = parse_xml(post(webhook, text_xml("hello 你好")))
    assert (reply["MsgType"], reply["Content"]) == ("text", "hello 你好")


def test_text_is_echoed_in_safe_mode(webhook):
    assert parse_xml(post(webhook, text_xml("secret"), encrypted=True))["Content"] == "secret"


def test_a_new_follower_is_welcomed_by_the_apps_name(webhook):
    reply = parse_xml(post(webhook, event_xml("subscribe", event_key="qrscene_42")))
    assert reply["Content"].startswith(f"Welcome to {APPID_A}!")


def test_other_events_get_success(webhook):
    assert post(webhook, event_xml("CLICK", event_key="MENU_1")) == "success"
