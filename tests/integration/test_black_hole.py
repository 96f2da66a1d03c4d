"""Every call on the webhook's path fails in time, with a typed error, against a dead dependency.

The dependency is a TCP black hole on 127.0.0.1 (tests/fixtures/black_hole.py) of both
kinds: a connection that never completes, and one that completes and is never answered.
AWS clients reach it through ``AWS_ENDPOINT_URL``, Redis through its URL. Nothing leaves
the loopback interface.

Timings belong in benchmarks, so the bounds here are not measurements but what the
configured timeouts allow (:mod:`wxtoken.budget`, each under WeChat's 5 s), plus
:data:`CLIENT_BUILD_SLACK` for building a boto3 client on a busy machine. Each test
records its seconds-to-fail as the ``seconds_to_fail`` property (``--junitxml``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.wechat.player import WeChatPlayer, apigw_event, text_xml
from tests.fixtures.aws import AWS, point_boto3_at
from tests.fixtures.black_hole import BlackHole
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, SECRET_A
from wxtoken import budget
from wxtoken.apps import AppsSource
from wxtoken.budget import WECHAT_ANSWER_SECONDS, CallBudget
from wxtoken.client import LambdaRefreshRequester
from wxtoken.config import Settings, StoreKind
from wxtoken.errors import ConfigError, RefreshRequestError, StoreError, WxTokenError
from wxtoken.store import open_store
from wxtoken.store.base import RecordName
from wxtoken.store.dynamodb_store import DynamoDBTokenStore
from wxtoken.store.redis_store import RedisTokenStore
from wxtoken.store.ssm_store import SSMTokenStore
from wxtoken.webhook.dedup import dynamodb_deduplicator, store_deduplicator

EVENTS = Path(__file__).parents[2] / "events"
APPS_SECRET_ID = "wxtoken/apps"
TOKEN = "wxtokenlocal"
# Building a boto3 client (session, endpoint rules) takes a few hundred milliseconds on a
# loaded machine; it is part of a cold start, not of any timeout.
CLIENT_BUILD_SLACK = 0.5


@pytest.fixture(params=["connect", "read"], ids=["never-connects", "never-answers"])
def hole(request: pytest.FixtureRequest) -> Iterator[BlackHole]:
    black_hole = BlackHole.open(request.param)
    try:
        yield black_hole
    finally:
        black_hole.close()


@pytest.fixture
def aws_at_hole(hole: BlackHole, monkeypatch: pytest.MonkeyPatch) -> BlackHole:
    """boto3 anywhere in this process sends every AWS call into the black hole."""
    point_boto3_at(hole.url(), monkeypatch)
    return hole


def timed[T](call: Callable[[], T]) -> tuple[float, T | BaseException]:
    started = time.monotonic()
    try:
        outcome: T | BaseException = call()
    except Exception as exc:
        outcome = exc
    return time.monotonic() - started, outcome


def assert_fails_in_time(
    call: Callable[[], object],
    error: type[WxTokenError],
    limit: CallBudget,
    record_property: Callable[[str, object], None],
) -> None:
    elapsed, outcome = timed(call)
    record_property("seconds_to_fail", round(elapsed, 2))
    assert isinstance(outcome, error), outcome
    assert elapsed < limit.worst_case_seconds + CLIENT_BUILD_SLACK, elapsed


# --- the budget itself ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["SECRET", "DEDUP", "TOKEN_STORE", "REFRESH_INVOKE"])
def test_no_single_call_can_outlast_wechats_five_seconds(name):
    limit: CallBudget = getattr(budget, name)
    assert limit.black_hole_seconds <= limit.worst_case_seconds < WECHAT_ANSWER_SECONDS


def test_message_path_against_dead_dependencies_fits_wechats_five_seconds():
    # Given the apps secret cached (a dead one ends the request with a 503 before anything
    # else is tried), a dead dedup store and a dead token store that the business handler
    # reads: both fail in turn, and a second is left for the network and a cold start.
    spent = budget.DEDUP.black_hole_seconds + budget.TOKEN_STORE.black_hole_seconds
    assert spent < WECHAT_ANSWER_SECONDS - 1.0
    assert budget.SECRET.black_hole_seconds < WECHAT_ANSWER_SECONDS - 1.0


# --- each call -----------------------------------------------------------------------


def test_apps_secret_read_fails_with_config_error(aws_at_hole, record_property):
    apps = AppsSource(APPS_SECRET_ID)
    assert_fails_in_time(apps.all, ConfigError, budget.SECRET, record_property)


def test_redis_auth_secret_read_fails_with_store_error(aws_at_hole, record_property):
    settings = Settings(
        apps_secret_id=APPS_SECRET_ID,
        token_store=StoreKind.REDIS,
        redis_url="redis://127.0.0.1:1/0",  # never reached: the secret comes first
        redis_auth_secret_id="wxtoken/redis-auth",
    )
    assert_fails_in_time(lambda: open_store(settings), StoreError, budget.SECRET, record_property)


def test_ssm_store_read_fails_with_store_error(aws_at_hole, record_property):
    store = SSMTokenStore.from_settings(Settings(apps_secret_id=APPS_SECRET_ID))
    read = lambda: store.read(APPID_A, RecordName.ACCESS_TOKEN)  # noqa: E731
    assert_fails_in_time(read, StoreError, budget.TOKEN_STORE, record_property)


DYNAMODB_SETTINGS = Settings(
    apps_secret_id=APPS_SECRET_ID, token_store=StoreKind.DYNAMODB, token_table="wxtoken-tokens"
)


def test_dynamodb_store_read_fails_with_store_error(aws_at_hole, record_property):
    store = DynamoDBTokenStore.from_settings(DYNAMODB_SETTINGS)
    read = lambda: store.read(APPID_A, RecordName.ACCESS_TOKEN)  # noqa: E731
    assert_fails_in_time(read, StoreError, budget.TOKEN_STORE, record_property)


def test_redis_store_read_fails_with_store_error(hole, record_property):
    store = RedisTokenStore.from_url(f"redis://127.0.0.1:{hole.port}/0")
    try:
        read = lambda: store.read(APPID_A, RecordName.ACCESS_TOKEN)  # noqa: E731
        assert_fails_in_time(read, StoreError, budget.TOKEN_STORE, record_property)
    finally:
        store.client.close()


def test_refresh_invoke_fails_with_refresh_request_error(aws_at_hole, record_property):
    # the webhook's budget (the one its TokenClient is built with); other readers wait longer
    requester = LambdaRefreshRequester("wxtoken-RefreshTokenFunction", budget=budget.REFRESH_INVOKE)
    ask = lambda: requester.compare_and_refresh(APPID_A, "rejected-token")  # noqa: E731
    assert_fails_in_time(ask, RefreshRequestError, budget.REFRESH_INVOKE, record_property)


@pytest.mark.parametrize("backend", ["table", "redis", "token-table"])
def test_dead_dedup_store_hands_the_message_to_the_handler_in_time(
    aws_at_hole, backend, monkeypatch, record_property
):
    # Dedup failing is not an error: the message is handled without dedup (a rare double
    # reply beats a lost message), so the handler's answer must come back in time.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wxtoken-webhook")
    store = None
    if backend == "table":
        dedup = dynamodb_deduplicator("wxtoken-dedup", expires_after_seconds=60)
        limit = budget.DEDUP
    elif backend == "token-table":  # TOKEN_STORE=dynamodb: dedup items in the token table
        table_store = DynamoDBTokenStore.from_settings(DYNAMODB_SETTINGS)
        dedup = store_deduplicator(table_store.dedup_backend(), expires_after_seconds=60)
        limit = budget.DEDUP
    else:
        store = RedisTokenStore.from_url(f"redis://127.0.0.1:{aws_at_hole.port}/0")
        dedup = store_deduplicator(store.dedup_backend(), expires_after_seconds=60)
        limit = budget.TOKEN_STORE
    dedup.register_context(FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6))
    ran: list[str] = []
    try:
        elapsed, outcome = timed(lambda: dedup.once(f"{APPID_A}:1", lambda: ran.append("x") or "answer"))
    finally:
        if store is not None:
            store.client.close()
    record_property("seconds_to_fail", round(elapsed, 2))
    assert outcome == "answer"
    assert ran == ["x"]
    assert elapsed < limit.worst_case_seconds + CLIENT_BUILD_SLACK, elapsed


# --- the whole webhook ---------------------------------------------------------------


def invoke_in_time(
    handler: Any, event: dict[str, Any], record_property: Callable[[str, object], None]
) -> dict:
    context = FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6)
    elapsed, response = timed(lambda: handler.lambda_handler(event, context))
    record_property("seconds_to_answer", round(elapsed, 2))
    assert isinstance(response, dict), f"an exception escaped the handler: {response!r}"
    assert elapsed < WECHAT_ANSWER_SECONDS, elapsed
    return response


def _webhook_env(monkeypatch: pytest.MonkeyPatch, store: str, redis_url: str | None) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wxtoken-webhook")
    monkeypatch.setenv("WECHAT_APPS_SECRET_ID", APPS_SECRET_ID)
    monkeypatch.setenv("TOKEN_STORE", store)
    monkeypatch.delenv("REDIS_AUTH_SECRET_ID", raising=False)
    monkeypatch.delenv("TOKEN_TABLE", raising=False)
    if redis_url:
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.delenv("DEDUP_TABLE", raising=False)
    elif store == "dynamodb":  # dedup in the token table
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.delenv("DEDUP_TABLE", raising=False)
        monkeypatch.setenv("TOKEN_TABLE", "wxtoken-tokens")
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setenv("DEDUP_TABLE", "wxtoken-dedup")


@pytest.mark.parametrize("store", ["ssm", "redis", "dynamodb"])
@pytest.mark.parametrize("event_file", ["webhook_text.json", "webhook_token_api.json"])
def test_webhook_with_every_dependency_dead_answers_503_in_time(
    aws_at_hole, monkeypatch, store, event_file, record_property
):
    # Given Secrets Manager, DynamoDB, SSM and Redis all black holes (and, for Redis, an AUTH
    # secret read on the cold start before anything else)
    redis_url = f"redis://127.0.0.1:{aws_at_hole.port}/0" if store == "redis" else None
    _webhook_env(monkeypatch, store, redis_url)
    if store == "redis":
        monkeypatch.setenv("REDIS_AUTH_SECRET_ID", "wxtoken/redis-auth")
    handler = load_handler("webhook")
    event = json.loads((EVENTS / event_file).read_text())

    # When WeChat (or a reader of the token API) calls, Then it gets a 503 in time
    response = invoke_in_time(handler, event, record_property)
    assert response["statusCode"] == 503
    assert response["body"] == "service unavailable"


@pytest.fixture
def apps_only_in_moto(aws: AWS, aws_at_hole: BlackHole, monkeypatch: pytest.MonkeyPatch) -> BlackHole:
    """Secrets Manager answers (moto); every other AWS service is the black hole."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_at_hole.url())
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws.endpoint_url)
    apps = {APPID_A: {"app_secret": SECRET_A, "token": TOKEN}}
    aws.client("secretsmanager").create_secret(Name=APPS_SECRET_ID, SecretString=json.dumps(apps))
    return aws_at_hole


@pytest.mark.parametrize("store", ["ssm", "redis", "dynamodb"])
def test_webhook_with_dead_stores_still_answers_the_message(
    apps_only_in_moto, monkeypatch, store, record_property
):
    # Given the apps secret readable, and the dedup store and token store black holes
    hole = apps_only_in_moto
    _webhook_env(monkeypatch, store, f"redis://127.0.0.1:{hole.port}/0" if store == "redis" else None)
    handler = load_handler("webhook")
    player = WeChatPlayer(APPID_A, TOKEN)
    query, body = player.message(text_xml("still here"))

    # When WeChat delivers a text message
    response = invoke_in_time(
        handler, apigw_event("POST", f"/wechat/{APPID_A}", query, body), record_property
    )

    # Then the echo handler answers it, without dedup
    assert response["statusCode"] == 200
    assert "still here" in response["body"]


@pytest.mark.parametrize("store", ["ssm", "redis", "dynamodb"])
def test_token_api_with_a_dead_store_answers_503_in_time(
    apps_only_in_moto, monkeypatch, store, record_property
):
    hole = apps_only_in_moto
    _webhook_env(monkeypatch, store, f"redis://127.0.0.1:{hole.port}/0" if store == "redis" else None)
    handler = load_handler("webhook")
    event = json.loads((EVENTS / "webhook_token_api.json").read_text())

    response = invoke_in_time(handler, event, record_property)

    assert response["statusCode"] == 503
