"""Webhook Lambda behind an API Gateway HTTP API (payload v2). Routes, all in one place:

- ``GET  /wechat/{appid}``  WeChat's URL verification (answers ``echostr``)
- ``POST /wechat/{appid}``  messages and events, plain / safe / compatible mode
- ``GET  /token/{appid}``   the central-control token API for your other servers (AWS_IAM)

Business handlers live in ``handlers.py`` next to this file. Bad input gets a short 4xx,
never a 5xx; a dependency that is down (Secrets Manager, the token store) gets a 503 in
time, never a Lambda timeout (see wxtoken.budget); message bodies and secrets are never logged.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from handlers import router

from wxtoken.errors import (
    BadRequest,
    MalformedMessage,
    PayloadTooLarge,
    SignatureMismatch,
    TokenUnavailableError,
    Unauthenticated,
    UnknownAppError,
    WxTokenError,
)
from wxtoken.observability import WEBHOOK_REJECTED, logger, metrics, put_metric, tracer
from wxtoken.webhook.wiring import WebhookRuntime, build_webhook_runtime

app = APIGatewayHttpResolver()
_LOGGED_CHARS = 64
# On every answer: a browser must take text/plain and XML for what they say they are and not
# sniff HTML out of them (echostr is the caller's text, reflected as is; Fetch standard,
# "X-Content-Type-Options"). Response copies the mapping, so one constant serves them all.
_NOSNIFF: Final[Mapping[str, str]] = MappingProxyType({"X-Content-Type-Options": "nosniff"})


@cache
def runtime() -> WebhookRuntime:
    """Built on the first request of a container and kept while it is warm."""
    return build_webhook_runtime(router)


@app.get("/wechat/<appid>")
def verify_url(appid: str) -> Response[str]:
    echostr = runtime().webhook.verify_url(appid, app.current_event.query_string_parameters or {})
    return Response(200, "text/plain", echostr, headers=_NOSNIFF)


@app.post("/wechat/<appid>")
def receive(appid: str) -> Response[str]:
    # Here rather than in lambda_handler: building the runtime can fail (a dead Secrets
    # Manager on a cold start), and only inside a route does that become a 503.
    runtime().register_context(app.lambda_context)
    answer = runtime().webhook.receive(appid, app.current_event.query_string_parameters or {}, _body())
    return Response(200, answer.content_type, answer.body, headers=_NOSNIFF)


@app.get("/token/<appid>")
def token(appid: str) -> Response[dict[str, Any]]:
    # The route has AWS_IAM authorization in the template; refuse anything that did not
    # come through it (a misconfigured route, a direct invoke without an IAM identity).
    authorizer = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    if not (authorizer.get("iam") or {}).get("userArn"):
        raise Unauthenticated("forbidden")
    runtime().apps.get(appid)  # UnknownAppError → 404
    credential = runtime().tokens.credential(appid)
    return Response(
        200,
        "application/json",
        {"access_token": credential.value, "expires_at": credential.expires_at},
        headers={**_NOSNIFF, "Cache-Control": "no-store"},
    )


def _body() -> bytes:
    """The request body as bytes. Its size is checked once, by the webhook on these bytes
    (``WEBHOOK_MAX_BODY_BYTES``): Lambda already caps a synchronous event at 6 MB, so decoding
    first costs little and the limit means one thing, the bytes parsed."""
    event = app.current_event
    raw = event.raw_event.get("body") or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedMessage("malformed message") from None
    # A lone surrogate (JSON's \ud800 escapes decode to one) has no UTF-8 form: kept as the
    # bytes that the XML parser then refuses (400), after the signature check, not as a 500.
    return raw.encode("utf-8", "surrogatepass")


def _plain(status: int, text: str) -> Response[str]:
    return Response(status, "text/plain", text, headers=_NOSNIFF)


def _request_names() -> tuple[str, str]:
    """The request's appid and path for a log line: both come from the URL, any length, so
    they are cut short (an appid is at most 34 characters)."""
    event = app.current_event
    appid = (event.path_parameters or {}).get("appid") or ""
    return appid[:_LOGGED_CHARS], event.path[:_LOGGED_CHARS]


# A caller's mistake: a short 4xx, logged and counted (``WebhookRejected`` by Reason; the
# reasons are observability.REJECT_REASONS). Looked up along the exception's MRO, as
# powertools looks up handlers, so PayloadTooLarge wins over its base BadRequest.
_REFUSALS: Final[Mapping[type, tuple[str, int, str]]] = MappingProxyType(
    {
        SignatureMismatch: ("signature", 403, "forbidden"),
        Unauthenticated: ("unauthenticated", 403, "forbidden"),
        UnknownAppError: ("unknown_app", 404, "unknown app"),
        PayloadTooLarge: ("too_large", 413, "payload too large"),
        BadRequest: ("malformed", 400, "bad request"),
    }
)


@app.exception_handler(list(_REFUSALS))
def _refuse(exc: BadRequest | UnknownAppError) -> Response[str]:
    reason, status, text = next(rule for c in type(exc).__mro__ if (rule := _REFUSALS.get(c)))
    appid, path = _request_names()
    logger.info("request refused", extra={"reason": reason, "appid": appid, "path": path})
    put_metric(WEBHOOK_REJECTED, MetricUnit.Count, 1, Reason=reason)
    return _plain(status, text)


@app.exception_handler(TokenUnavailableError)
def _no_token(exc: TokenUnavailableError) -> Response[str]:
    appid, path = _request_names()
    logger.error("no valid token stored", extra={"appid": appid, "path": path, "error": str(exc)})
    return _plain(503, "token unavailable")


@app.exception_handler(WxTokenError)
def _unavailable(exc: WxTokenError) -> Response[str]:
    """A dependency failed in time (apps secret, Redis AUTH, token store): 503, and WeChat
    retries the callback. The type names what failed; messages carry no secret values."""
    appid, path = _request_names()
    logger.error(
        "dependency unavailable",
        extra={"appid": appid, "path": path, "error": type(exc).__name__, "detail": str(exc)},
    )
    return _plain(503, "service unavailable")


# The correlation id is API Gateway's request id; responses are not traced (they carry tokens).
@logger.inject_lambda_context(log_event=False, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
