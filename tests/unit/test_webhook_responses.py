"""The webhook function's answers, whole: status, headers, body, and the log line and metric
of every refusal and 503, for each of its three routes.

These pin the response dicts API Gateway turns into HTTP, byte for byte, so that the way
``functions/webhook/app.py`` dispatches can change without changing what a caller sees. The
webhook itself is a stand-in (no secret, no store, no crypto): what is pinned is app.py's part,
the route, the event's fields it reads and the answer it shapes.
"""

from __future__ import annotations

import logging
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from devtools.wechat.player import apigw_event
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from wxtoken.errors import (
    BadRequest,
    ConfigError,
    MalformedMessage,
    PayloadTooLarge,
    SignatureMismatch,
    StoreError,
    TokenUnavailableError,
    Unauthenticated,
    UnknownAppError,
    WxTokenError,
)

APPID = "wx1111111111111111"
USER_ARN = "arn:aws:iam::123456789012:user/app"
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


class StandIn:
    """What app.py asks of its runtime, answering fixed values or raising ``failure``."""

    def __init__(self, failure: BaseException | None = None) -> None:
        self.failure = failure
        self.calls: list[tuple[Any, ...]] = []
        self.webhook = self.apps = self.tokens = self

    def register_context(self, context: Any) -> None:
        self.calls.append(("register_context", context))

    def _fail(self) -> None:
        if self.failure is not None:
            raise self.failure

    def verify_url(self, appid: str, query: dict[str, str]) -> str:
        self.calls.append(("verify_url", appid, query))
        self._fail()
        return query["echostr"]

    def receive(self, appid: str, query: dict[str, str], body: bytes) -> Any:
        self.calls.append(("receive", appid, query, body))
        self._fail()
        return SimpleNamespace(content_type="application/xml", body="<xml>reply 你好</xml>")

    def get(self, appid: str) -> None:
        self.calls.append(("apps.get", appid))
        self._fail()

    def components(self) -> dict[str, Any]:
        """No Open Platform: an appid outside the secret is unknown (404)."""
        return {}

    def credential(self, appid: str) -> Any:
        self.calls.append(("credential", appid))
        return SimpleNamespace(value="TOKEN-€", expires_at=1767225600)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("WECHAT_APPS_SECRET_ID", "unused")
    return load_handler("webhook")


@pytest.fixture
def metrics(app: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    points: list[tuple[Any, ...]] = []
    monkeypatch.setattr(app, "count", lambda *args, **dims: points.append((*args, dims)))
    return points


def call(app: ModuleType, event: dict[str, Any], runtime: StandIn) -> dict[str, Any]:
    app.runtime = lambda: runtime
    response: dict[str, Any] = app.lambda_handler(event, FakeLambdaContext(function_name="wxtoken-webhook"))
    return response


def plain(status: int, text: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "body": text,
        "isBase64Encoded": False,
        "headers": {**NOSNIFF, "Content-Type": "text/plain"},
        "cookies": [],
    }


ROUTES = {
    "verify": apigw_event("GET", f"/wechat/{APPID}", {"echostr": "<b>echo</b>", "signature": "s"}),
    "receive": apigw_event("POST", f"/wechat/{APPID}", {"signature": "s"}, "<xml>hi</xml>"),
    "token": apigw_event("GET", f"/token/{APPID}", iam_user_arn=USER_ARN),
}


# --- the three routes, answering -----------------------------------------------------------------
def test_url_verification_answers_the_echostr_as_plain_text(app):
    runtime = StandIn()

    response = call(app, ROUTES["verify"], runtime)

    assert response == plain(200, "<b>echo</b>")
    assert runtime.calls == [("verify_url", APPID, {"echostr": "<b>echo</b>", "signature": "s"})]


def test_a_message_gets_the_webhooks_answer_with_its_content_type(app):
    runtime = StandIn()

    response = call(app, ROUTES["receive"], runtime)

    assert response == {
        "statusCode": 200,
        "body": "<xml>reply 你好</xml>",
        "isBase64Encoded": False,
        "headers": {**NOSNIFF, "Content-Type": "application/xml"},
        "cookies": [],
    }
    [registered, received] = runtime.calls
    assert registered[0] == "register_context"
    assert received == ("receive", APPID, {"signature": "s"}, b"<xml>hi</xml>")


def test_a_base64_body_reaches_the_webhook_decoded(app):
    runtime = StandIn()
    event = apigw_event("POST", f"/wechat/{APPID}", {"signature": "s"}, "<xml>é</xml>", base64_body=True)

    assert call(app, event, runtime)["statusCode"] == 200
    assert runtime.calls[-1] == ("receive", APPID, {"signature": "s"}, "<xml>é</xml>".encode())


def test_a_message_without_a_query_or_body_reaches_the_webhook_as_empty(app):
    runtime = StandIn()
    event = apigw_event("POST", f"/wechat/{APPID}")

    assert call(app, event, runtime)["statusCode"] == 200
    assert runtime.calls[-1] == ("receive", APPID, {}, b"")


def test_the_token_api_answers_compact_ascii_json_never_cached(app):
    runtime = StandIn()

    response = call(app, ROUTES["token"], runtime)

    assert response == {
        "statusCode": 200,
        "body": '{"access_token":"TOKEN-\\u20ac","expires_at":1767225600}',
        "isBase64Encoded": False,
        "headers": {**NOSNIFF, "Cache-Control": "no-store", "Content-Type": "application/json"},
        "cookies": [],
    }
    assert runtime.calls == [("apps.get", APPID), ("credential", APPID)]


def test_the_token_api_refuses_a_caller_without_an_iam_identity(app, metrics, caplog):
    runtime = StandIn()
    event = apigw_event("GET", f"/token/{APPID}")

    with caplog.at_level(logging.INFO):
        response = call(app, event, runtime)

    assert response == plain(403, "forbidden")
    assert runtime.calls == []
    assert metrics == [("WebhookRejected", {"Reason": "unauthenticated"})]
    [refused] = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert (refused.reason, refused.appid, refused.path) == ("unauthenticated", APPID, f"/token/{APPID}")


# --- refusals: a 4xx, one log line, one metric ---------------------------------------------------
REFUSALS = [
    (SignatureMismatch("bad signature"), "signature", 403, "forbidden"),
    (Unauthenticated("no"), "unauthenticated", 403, "forbidden"),
    (UnknownAppError(APPID), "unknown_app", 404, "unknown app"),
    (PayloadTooLarge("big"), "too_large", 413, "payload too large"),
    (MalformedMessage("bad xml"), "malformed", 400, "bad request"),
    (BadRequest("bad"), "malformed", 400, "bad request"),
]


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize(("failure", "reason", "status", "text"), REFUSALS)
def test_a_callers_mistake_gets_a_short_4xx_a_log_line_and_a_metric(
    app, metrics, caplog, route, failure, reason, status, text
):
    event = ROUTES[route]

    with caplog.at_level(logging.INFO):
        response = call(app, event, StandIn(failure))

    assert response == plain(status, text)
    assert metrics == [("WebhookRejected", {"Reason": reason})]
    [refused] = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert refused.levelno == logging.INFO
    assert (refused.reason, refused.appid, refused.path) == (reason, APPID, event["rawPath"])


def test_a_base64_body_that_is_not_base64_is_malformed(app, metrics):
    event = ROUTES["receive"] | {"body": "not base64!", "isBase64Encoded": True}

    assert call(app, event, StandIn()) == plain(400, "bad request")
    assert metrics == [("WebhookRejected", {"Reason": "malformed"})]


def test_the_logged_appid_and_path_are_cut_short(app, metrics, caplog):
    appid = "wx" + "A" * 200
    event = apigw_event("POST", f"/wechat/{appid}", {}, "<xml/>")

    with caplog.at_level(logging.INFO):
        response = call(app, event, StandIn(UnknownAppError(appid)))

    assert response == plain(404, "unknown app")
    [refused] = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert (refused.appid, refused.path) == (appid[:64], f"/wechat/{appid}"[:64])


# --- a dependency down: 503 in time --------------------------------------------------------------
@pytest.mark.parametrize("route", list(ROUTES))
def test_no_valid_token_gets_503_token_unavailable(app, metrics, caplog, route):
    with caplog.at_level(logging.INFO):
        response = call(app, ROUTES[route], StandIn(TokenUnavailableError("expired")))

    assert response == plain(503, "token unavailable")
    assert metrics == []
    [line] = [r for r in caplog.records if r.getMessage() == "no valid token stored"]
    assert line.levelno == logging.ERROR
    assert (line.appid, line.path, line.error) == (APPID, ROUTES[route]["rawPath"], "expired")


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("failure", [StoreError("redis down"), ConfigError("no secret"), WxTokenError("x")])
def test_any_other_wxtoken_error_gets_503_service_unavailable(app, metrics, caplog, route, failure):
    with caplog.at_level(logging.INFO):
        response = call(app, ROUTES[route], StandIn(failure))

    assert response == plain(503, "service unavailable")
    assert metrics == []
    [line] = [r for r in caplog.records if r.getMessage() == "dependency unavailable"]
    assert line.levelno == logging.ERROR
    assert (line.appid, line.path) == (APPID, ROUTES[route]["rawPath"])
    assert (line.error, line.detail) == (type(failure).__name__, str(failure))


def test_a_runtime_that_cannot_be_built_gets_503(app, caplog):
    # A dead Secrets Manager on a cold start: building the runtime raises inside the route.
    def runtime() -> Any:
        raise ConfigError("apps secret unreadable")

    app.runtime = runtime
    response = app.lambda_handler(ROUTES["receive"], FakeLambdaContext(function_name="wxtoken-webhook"))

    assert response == plain(503, "service unavailable")


# --- what is not ours to answer -----------------------------------------------------------------
@pytest.mark.parametrize("route", list(ROUTES))
def test_an_unexpected_exception_fails_the_invocation(app, route):
    # Lambda reports the error and API Gateway answers its own 500 "Internal Server Error".
    with pytest.raises(ZeroDivisionError):
        call(app, ROUTES[route], StandIn(ZeroDivisionError("bug")))


@pytest.mark.parametrize(
    "event",
    [
        apigw_event("PUT", f"/wechat/{APPID}"),
        apigw_event("POST", f"/token/{APPID}"),
        apigw_event("GET", f"/other/{APPID}"),
        apigw_event("GET", f"/wechat/{APPID}") | {"routeKey": "$default"},
        {key: value for key, value in apigw_event("GET", f"/wechat/{APPID}").items() if key != "routeKey"},
    ],
    ids=["PUT wechat", "POST token", "GET other", "$default", "no routeKey"],
)
def test_a_route_the_function_does_not_serve_gets_api_gateways_own_404(app, event):
    # API Gateway answers a route it does not have itself, before any function; the function
    # sees one only when invoked directly or through a route added to the API and not to app.py.
    runtime = StandIn()

    response = call(app, event, runtime)

    assert response == {
        "statusCode": 404,
        "body": '{"message":"Not Found"}',
        "isBase64Encoded": False,
        "headers": {**NOSNIFF, "Content-Type": "application/json"},
        "cookies": [],
    }
    assert runtime.calls == []
