"""Webhook Lambda behind an API Gateway HTTP API (payload v2). Routes, all in one place:

- ``GET  /wechat/{appid}``  WeChat's URL verification (answers ``echostr``)
- ``POST /wechat/{appid}``  messages and events, plain / safe / compatible mode
- ``GET  /token/{appid}``   the central-control token API for your other servers (AWS_IAM)
- ``POST /open/{component_appid}/events``  a third-party platform's 授权事件接收URL (ticket
  pushes, authorization events; answers ``success``)
- ``GET|POST /open/{component_appid}/{authorizer_appid}``  its 消息与事件接收URL
  (``…/open/<component_appid>/$APPID$`` at WeChat): an authorizer's messages, same router

Business handlers live in ``handlers.py`` next to this file. Bad input gets a short 4xx,
never a 5xx; a dependency that is down (Secrets Manager, the token store) gets a 503 in
time, never a Lambda timeout (see wxtoken.budget); message bodies and secrets are never logged.

The routes are dispatched on the event's ``routeKey`` (API Gateway has already matched the
route and put ``{appid}`` or ``{component_appid}`` in ``pathParameters``) rather than by powertools'
``APIGatewayHttpResolver``, for a measured reason (2 shared cores, noisy): matching again a
path API Gateway had matched cost 48 µs of a 346 µs warm request (``bench.webhook_roundtrip
--breakdown``; the dispatch here is within noise of calling ``Webhook.receive`` directly), and
importing ``aws_lambda_powertools.event_handler`` made this module's cold import 170 ms instead
of 119 (``python -X importtime``; ``bench.cold_import``: 1.12x a bare ``import boto3`` before,
0.81x after), for three routes and five kinds of answer. The answers are the resolver's, field
for field; tests/unit/test_webhook_responses.py pins every one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.utilities.typing import LambdaContext
from handlers import router

from wxtoken.coldstart import settle_imports
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
from wxtoken.observability import WEBHOOK_REJECTED, count, logger, observed_handler
from wxtoken.webhook.wiring import WebhookRuntime, build_webhook_runtime

if TYPE_CHECKING:
    from wxtoken.store.base import Credential

_LOGGED_CHARS = 64
# On every answer: a browser must take text/plain and XML for what they say they are and not
# sniff HTML out of them (echostr is the caller's text, reflected as is; Fetch standard,
# "X-Content-Type-Options").
_NOSNIFF: Final[Mapping[str, str]] = MappingProxyType({"X-Content-Type-Options": "nosniff"})
# A token is never kept by a cache between the caller and the API.
_TOKEN_HEADERS: Final[Mapping[str, str]] = MappingProxyType({**_NOSNIFF, "Cache-Control": "no-store"})


@cache
def runtime() -> WebhookRuntime:
    """Built on the first request of a container and kept while it is warm."""
    return build_webhook_runtime(router)


def _response(
    status: int, content_type: str, body: str, headers: Mapping[str, str] = _NOSNIFF
) -> dict[str, Any]:
    """A payload v2 answer in the shape powertools' resolver gave: the body as text (never
    base64), ``Content-Type`` last in ``headers``, and an empty ``cookies`` list."""
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        "headers": {**headers, "Content-Type": content_type},
        "cookies": [],
    }


def _plain(status: int, text: str) -> dict[str, Any]:
    return _response(status, "text/plain", text)


def verify_url(path: Mapping[str, str], event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    echostr = runtime().webhook.verify_url(path.get("appid") or "", event.get("queryStringParameters") or {})
    return _plain(200, echostr)


def receive(path: Mapping[str, str], event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Here rather than in lambda_handler's own body: building the runtime can fail (a dead
    # Secrets Manager on a cold start), and only inside a route does that become a 503.
    built = runtime()
    built.register_context(context)
    query = event.get("queryStringParameters") or {}
    answer = built.webhook.receive(path.get("appid") or "", query, _body(event))
    return _response(200, answer.content_type, answer.body)


def component_push(path: Mapping[str, str], event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = runtime().platform_events.receive(
        path.get("component_appid") or "", event.get("queryStringParameters") or {}, _body(event)
    )
    return _response(200, answer.content_type, answer.body)


def verify_authorizer_url(
    path: Mapping[str, str], event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    echostr = runtime().webhook.verify_authorizer_url(
        path.get("component_appid") or "",
        path.get("authorizer_appid") or "",
        event.get("queryStringParameters") or {},
    )
    return _plain(200, echostr)


def receive_for_authorizer(
    path: Mapping[str, str], event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    runtime().register_context(context)
    answer = runtime().webhook.receive_for_authorizer(
        path.get("component_appid") or "",
        path.get("authorizer_appid") or "",
        event.get("queryStringParameters") or {},
        _body(event),
    )
    return _response(200, answer.content_type, answer.body)


def token(path: Mapping[str, str], event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The route has AWS_IAM authorization in the template; refuse anything that did not
    # come through it (a misconfigured route, a direct invoke without an IAM identity).
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if not (authorizer.get("iam") or {}).get("userArn"):
        raise Unauthenticated("forbidden")
    appid = path.get("appid") or ""
    credential = _served_credential(appid)
    # Compact and ASCII-only, as the resolver serialised it (json.dumps' ensure_ascii).
    body = json.dumps(
        {"access_token": credential.value, "expires_at": credential.expires_at}, separators=(",", ":")
    )
    return _response(200, "application/json", body, _TOKEN_HEADERS)


def _served_credential(appid: str) -> Credential:
    """The token the API serves for ``appid``: an app of the secret (UnknownAppError → 404),
    or an Open Platform authorizer, which is not in the secret (WeChat lists them) — served
    when the refresher keeps a token for it, else 404 as an unknown app."""
    apps = runtime().apps
    try:
        apps.get(appid)
    except UnknownAppError:
        if not apps.components():
            raise
        try:
            return runtime().tokens.credential(appid)
        except TokenUnavailableError:
            raise UnknownAppError(appid) from None
    return runtime().tokens.credential(appid)


# API Gateway's routeKey is "METHOD /path/{param}", exactly as the template declares the route;
# a route gets the event's pathParameters.
_Route = Callable[[Mapping[str, str], dict[str, Any], LambdaContext], dict[str, Any]]
_ROUTES: Final[Mapping[str, _Route]] = MappingProxyType(
    {
        "GET /wechat/{appid}": verify_url,
        "POST /wechat/{appid}": receive,
        "GET /token/{appid}": token,
        "POST /open/{component_appid}/events": component_push,
        "GET /open/{component_appid}/{authorizer_appid}": verify_authorizer_url,
        "POST /open/{component_appid}/{authorizer_appid}": receive_for_authorizer,
    }
)


def _not_found() -> dict[str, Any]:
    """What API Gateway itself answers a route it does not have. The function only sees one
    when invoked directly or through a route added to the API and not here."""
    return _response(404, "application/json", '{"message":"Not Found"}')


def _body(event: Mapping[str, Any]) -> bytes:
    """The request body as bytes. Its size is checked once, by the webhook on these bytes
    (``WEBHOOK_MAX_BODY_BYTES``): Lambda already caps a synchronous event at 6 MB, so decoding
    first costs little and the limit means one thing, the bytes parsed."""
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedMessage("malformed message") from None
    # A lone surrogate (JSON's \ud800 escapes decode to one) has no UTF-8 form: kept as the
    # bytes that the XML parser then refuses (400), after the signature check, not as a 500.
    return raw.encode("utf-8", "surrogatepass")


def _request_names(event: Mapping[str, Any]) -> tuple[str, str]:
    """The request's appid (a component's on the /open routes) and path for a log line: both
    come from the URL, any length, so they are cut short (an appid is at most 34 characters)."""
    params = event.get("pathParameters") or {}
    appid = params.get("appid") or params.get("component_appid") or ""
    return appid[:_LOGGED_CHARS], (event.get("rawPath") or "")[:_LOGGED_CHARS]


# A caller's mistake: a short 4xx, logged and counted (``WebhookRejected`` by Reason; the
# reasons are observability.REJECT_REASONS). Looked up along the exception's MRO, so
# PayloadTooLarge wins over its base BadRequest.
_REFUSALS: Final[Mapping[type, tuple[str, int, str]]] = MappingProxyType(
    {
        SignatureMismatch: ("signature", 403, "forbidden"),
        Unauthenticated: ("unauthenticated", 403, "forbidden"),
        UnknownAppError: ("unknown_app", 404, "unknown app"),
        PayloadTooLarge: ("too_large", 413, "payload too large"),
        BadRequest: ("malformed", 400, "bad request"),
    }
)


def _refuse(exc: WxTokenError, event: Mapping[str, Any]) -> dict[str, Any]:
    reason, status, text = next(rule for c in type(exc).__mro__ if (rule := _REFUSALS.get(c)))
    appid, path = _request_names(event)
    logger.info("request refused", extra={"reason": reason, "appid": appid, "path": path})
    count(WEBHOOK_REJECTED, Reason=reason)
    return _plain(status, text)


def _no_token(exc: WxTokenError, event: Mapping[str, Any]) -> dict[str, Any]:
    appid, path = _request_names(event)
    logger.error("no valid token stored", extra={"appid": appid, "path": path, "error": str(exc)})
    return _plain(503, "token unavailable")


def _unavailable(exc: WxTokenError, event: Mapping[str, Any]) -> dict[str, Any]:
    """A dependency failed in time (apps secret, Redis AUTH, token store): 503, and WeChat
    retries the callback. The type names what failed; messages carry no secret values."""
    appid, path = _request_names(event)
    logger.error(
        "dependency unavailable",
        extra={"appid": appid, "path": path, "error": type(exc).__name__, "detail": str(exc)},
    )
    return _plain(503, "service unavailable")


# Every WxTokenError has an answer, the first found along its MRO; anything else is a bug and
# fails the invocation (Lambda logs it, API Gateway answers its own 500).
_ANSWERS: Final[Mapping[type, Callable[[WxTokenError, Mapping[str, Any]], dict[str, Any]]]] = (
    MappingProxyType(
        {
            **dict.fromkeys(_REFUSALS, _refuse),
            TokenUnavailableError: _no_token,
            WxTokenError: _unavailable,
        }
    )
)


def _api_request_id(event: Mapping[str, Any]) -> str | None:
    """The log lines' correlation id: API Gateway's request id, read from the event here
    (powertools' ``correlation_id_path`` runs a JMESPath query for the same key on every
    request, 9 µs; bench/webhook_roundtrip.py --breakdown)."""
    request_context = event.get("requestContext") or {}
    return request_context.get("requestId") if isinstance(request_context, dict) else None


# Logs, metrics and (when on) tracing; responses are not traced (they carry tokens).
@observed_handler(correlation_id=_api_request_id)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route = _ROUTES.get(event.get("routeKey") or "")
    if route is None:
        return _not_found()
    try:
        return route(event.get("pathParameters") or {}, event, context)
    except WxTokenError as exc:
        answer = next(a for c in type(exc).__mro__ if (a := _ANSWERS.get(c)))
        return answer(exc, event)


# Last, after every import: they live as long as the container (wxtoken.coldstart says why).
settle_imports()
