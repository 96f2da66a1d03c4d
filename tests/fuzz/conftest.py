"""The webhook Lambda on a real store, for fuzzing, and the Hypothesis profiles that size it.

Profiles (pick one with ``HYPOTHESIS_PROFILE``; the fuzz tests apply it themselves, so the
rest of the suite keeps its own settings):

- ``ci`` (default, what ``make test`` runs): 150 examples per test, no deadline (about 30 s
  for the whole file on a 2-vCPU machine);
- ``fuzz`` (``make fuzz``): 10,000 examples per test.

No deadline: an example is a whole Lambda invocation, and the dedup store round trip
(DynamoDB on moto, or Redis) varies with the machine. One store and one loaded handler serve
every example of a test, as one warm container serves many requests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from devtools.wechat.player import WeChatPlayer
from tests.fixtures.aws import create_dedup_table, create_token_table
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, APPID_B, SECRET_A, SECRET_B

TOKEN = "wxtokenlocal"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPS_SECRET_ID = "wxtoken/apps"
DEDUP_TABLE = "wxtoken-dedup"
# A third-party platform (kind: component) with a Token of its own and the same key.
COMPONENT = "wx3333333333333333"
COMPONENT_TOKEN = "componentpushtoken"

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    # One webhook per test serves every example, as a warm container serves many requests.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("fuzz", settings.get_profile("ci"), max_examples=10_000)
PROFILES = ("ci", "fuzz")


def active_profile() -> settings:
    """The profile ``HYPOTHESIS_PROFILE`` names, if it is one of :data:`PROFILES`; else ``ci``."""
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    return settings.get_profile(name if name in PROFILES else "ci")


Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def webhook(request: pytest.FixtureRequest, aws: Any, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``invoke(event) -> response`` of the webhook function, with app A (Token and
    EncodingAESKey), app B (neither) and a third-party platform (:data:`COMPONENT`) in the
    apps secret.

    On SSM with dedup in DynamoDB (moto), unless a test asks for ``"redis"`` or ``"dynamodb"`` with
    ``@pytest.mark.parametrize("webhook", [...], indirect=True)``: requests refused before
    their handler runs never reach the store, so only the accepted ones are run on both.
    Every invocation asserts what must hold for any input: an answer, never a 5xx, and
    ``X-Content-Type-Options: nosniff`` on every answer.
    """
    store = getattr(request, "param", "ssm")
    env = {
        "WECHAT_APPS_SECRET_ID": APPS_SECRET_ID,
        "TOKEN_STORE": store,
        "AWS_LAMBDA_FUNCTION_NAME": "wxtoken-webhook",
    }
    if store == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    elif store == "dynamodb":  # dedup in the token table
        env["TOKEN_TABLE"] = create_token_table(aws)
    else:
        create_dedup_table(aws, DEDUP_TABLE)
        env["DEDUP_TABLE"] = DEDUP_TABLE
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    apps = {
        APPID_A: {"app_secret": SECRET_A, "token": TOKEN, "encoding_aes_key": AES_KEY},
        APPID_B: {"app_secret": SECRET_B},
        COMPONENT: {
            "kind": "component",
            "app_secret": SECRET_B,
            "token": COMPONENT_TOKEN,
            "encoding_aes_key": AES_KEY,
        },
    }
    aws.client("secretsmanager").create_secret(Name=APPS_SECRET_ID, SecretString=json.dumps(apps))
    handler = load_handler("webhook")
    context = FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = handler.lambda_handler(event, context)
        assert isinstance(response, dict), response
        assert 200 <= response["statusCode"] < 500, response
        # Every answer tells browsers not to sniff it, the 404 of a route it does not serve too.
        assert response["headers"]["X-Content-Type-Options"] == "nosniff", response
        return response

    return invoke


@pytest.fixture
def player() -> WeChatPlayer:
    return WeChatPlayer(APPID_A, TOKEN, AES_KEY)
