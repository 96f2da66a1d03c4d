"""The Redis users the template creates (issue 9, finding 8), on a real redis-server.

The stack's cache used to have no AUTH or ACL, so "the refresh function is the only writer"
was a convention: the webhook, which runs business code and faces the internet, could
overwrite any token. The template now creates one user per function; this test applies the
template's exact access strings to a redis-server (7.x, like ElastiCache) and runs both
functions under them, each with its credentials in a Secrets Manager secret (moto), as deployed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from devtools.sam.template import CloudFormationLoader
from devtools.wechat.player import WeChatPlayer, apigw_event, text_xml
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.redis_server import RedisServer, spawn_redis_server
from tests.fixtures.wechat import APPID_A, APPID_B, SECRET_A, SECRET_B
from wxtoken.store.redis_store import record_key

TEMPLATE = Path(__file__).parents[2] / "template.yaml"
TOKEN = "wxtokenlocal"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
USERS = {"refresh": "RefreshRedisUser", "webhook": "WebhookRedisUser"}


def access_string(resource: str) -> str:
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506
    return str(template["Resources"][resource]["Properties"]["AccessString"])


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, dict[str, str]]]:
    """A redis-server whose users are the template's; the default user is off, as deployed."""
    server = spawn_redis_server(tmp_path_factory.mktemp("redis-acl"))
    passwords = {name: secrets.token_hex(16) for name in USERS}
    with server.client() as admin:
        for name, resource in USERS.items():
            admin.execute_command(
                "ACL",
                "SETUSER",
                f"wx-{name}",
                "reset",
                f">{passwords[name]}",
                *access_string(resource).split(),
            )
    try:
        yield server, passwords
    finally:
        server.stop()


@pytest.fixture
def acl_system(acl_server, aws, wechat, clock, monkeypatch) -> dict[str, Any]:
    server, passwords = acl_server
    with server.client() as admin:
        admin.flushall()
    sm = aws.client("secretsmanager")
    apps = {
        APPID_A: {"app_secret": SECRET_A, "token": TOKEN, "encoding_aes_key": AES_KEY},
        APPID_B: {"app_secret": SECRET_B},
    }
    sm.create_secret(Name="wxtoken/apps", SecretString=json.dumps(apps))
    for name, password in passwords.items():
        sm.create_secret(
            Name=f"wxtoken/redis-{name}",
            SecretString=json.dumps({"username": f"wx-{name}", "password": password}),
        )
    env = {
        "WECHAT_APPS_SECRET_ID": "wxtoken/apps",
        "TOKEN_STORE": "redis",
        "REDIS_URL": f"redis://127.0.0.1:{server.port}/0",  # no credentials in the URL
        "WECHAT_API_BASE": wechat.base_url,
        "AWS_LAMBDA_FUNCTION_NAME": "wxtoken-test",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {"server": server, "passwords": passwords, "monkeypatch": monkeypatch, "wechat": wechat}


def as_function(acl_system: dict[str, Any], name: str, function: str) -> Any:
    acl_system["monkeypatch"].setenv("REDIS_AUTH_SECRET_ID", f"wxtoken/redis-{name}")
    return load_handler(function)


def as_user(acl_system: dict[str, Any], name: str) -> redis.Redis:
    server = acl_system["server"]
    return redis.Redis(port=server.port, username=f"wx-{name}", password=acl_system["passwords"][name])


def test_both_functions_work_under_their_own_users(acl_system):
    refresh = as_function(acl_system, "refresh", "refresh_token")
    report = refresh.lambda_handler({"action": "scheduled"}, FakeLambdaContext())
    assert sorted(report["refreshed"]) == [APPID_A, APPID_B], report

    webhook = as_function(acl_system, "webhook", "webhook")
    player = WeChatPlayer(APPID_A, TOKEN, AES_KEY)
    query, body = player.message(text_xml("hello"), encrypted=True)
    event = apigw_event("POST", f"/wechat/{APPID_A}", query, body)
    first = webhook.lambda_handler(event, FakeLambdaContext())
    retry = webhook.lambda_handler(event, FakeLambdaContext())  # dedup: its own keys
    token = webhook.lambda_handler(
        apigw_event("GET", f"/token/{APPID_B}", iam_user_arn="arn:aws:iam::123456789012:user/app"),
        FakeLambdaContext(),
    )

    assert first["statusCode"] == 200
    assert first["body"] != "success"
    assert retry["statusCode"] == 200
    # the dedup records were written, under the prefix the webhook user may write
    with acl_system["server"].client() as admin:
        dedup_keys = admin.keys("wxtoken-dedup#*")
    assert dedup_keys
    assert token["statusCode"] == 200
    stored = json.loads(as_user(acl_system, "refresh").get(record_key(APPID_B, "access_token")))
    assert json.loads(token["body"])["access_token"] == stored["access_token"]
    assert acl_system["wechat"].is_valid(APPID_B, stored["access_token"])


def test_the_webhook_user_cannot_write_a_token(acl_system):
    refresh = as_function(acl_system, "refresh", "refresh_token")
    refresh.lambda_handler({"action": "scheduled"}, FakeLambdaContext())
    webhook_user = as_user(acl_system, "webhook")
    key = record_key(APPID_A, "access_token")
    stored = webhook_user.get(key)
    assert stored is not None  # it can read

    with pytest.raises(redis.exceptions.NoPermissionError):
        webhook_user.set(key, '{"access_token":"forged","expires_at":9999999999,"fetched_at":9999999999}')
    with pytest.raises(redis.exceptions.NoPermissionError):
        webhook_user.delete(key)
    with pytest.raises(redis.exceptions.NoPermissionError):
        webhook_user.eval("return redis.call('SET', KEYS[1], 'forged')", 1, key)
    with pytest.raises(redis.exceptions.NoPermissionError):
        webhook_user.set("unrelated-key", "x")
    assert webhook_user.get(key) == stored


def test_the_default_user_of_a_stack_cache_is_off():
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506
    default = template["Resources"]["RedisDisabledDefaultUser"]["Properties"]
    assert default["UserName"] == "default"
    assert default["AccessString"].split()[0] == "off"
    group = template["Resources"]["RedisUserGroup"]["Properties"]["UserIds"]
    assert len(group) == 3
    assert template["Resources"]["RedisCache"]["Properties"]["UserGroupId"] == {"Ref": "RedisUserGroup"}
