"""A local API Gateway HTTP API: the template's routes, each request as a payload v2 event.

Like ``sam local start-api``: every HTTP request that matches a route becomes the event
API Gateway would send (``version`` 2.0, ``routeKey``, ``rawPath``, ``rawQueryString``,
lower-cased ``headers``, ``requestContext``, ``pathParameters``, ``body`` — base64 when it
is not text) and the function's answer becomes the HTTP response. Routes with ``AWS_IAM``
authorization are not checked locally: the request gets a fixed local IAM identity in
``requestContext.authorizer.iam`` (deployed, API Gateway verifies the SigV4 signature).
"""

from __future__ import annotations

import base64
import http.server
import json
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from devtools.sam.host import BackgroundServer, Console, Invocation, LocalHttpServer
from devtools.sam.template import ACCOUNT_ID, Route

LOCAL_IAM_USER_ARN: Final = f"arn:aws:iam::{ACCOUNT_ID}:user/wxtoken-local"
MAX_BODY_BYTES: Final = 10 * 1024 * 1024  # API Gateway's payload limit
_TEXT_TYPES: Final = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")


def build_event(
    route: Route,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    host: str = "127.0.0.1",
) -> dict[str, Any]:
    """The payload v2 event API Gateway would send for this request to ``route``."""
    split = urlsplit(target)
    path = split.path or "/"
    path_parameters = route.match(method, path) or {}
    joined: dict[str, str] = {}
    for name, value in headers:  # repeated headers are joined with commas
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = datetime.now(UTC)
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": joined.get("host", host),
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route.route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if route.authorizer == "AWS_IAM":
        context["authorizer"] = {
            "iam": {
                "accessKey": "AKIALOCALEXAMPLE",
                "accountId": ACCOUNT_ID,
                "callerId": "AIDALOCALEXAMPLE",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": LOCAL_IAM_USER_ARN,
                "userId": "AIDALOCALEXAMPLE",
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": split.query,
        "headers": joined,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    cookies = [c.strip() for c in joined.pop("cookie", "").split(";") if c.strip()]
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        content_type = joined.get("content-type", "text/plain")
        text = _as_text(body) if content_type.startswith(_TEXT_TYPES) or "xml" in content_type else None
        if text is None:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def pick_route(routes: Iterable[Route], method: str, path: str) -> Route | None:
    """The route API Gateway serves ``method path`` with, if any: the most specific that
    matches — a method over ANY, fewer greedy parameters, then a literal segment over a
    parameter (``/open/{component_appid}/events`` beats ``/open/{component_appid}/{authorizer_appid}``;
    API Gateway, "Working with routes for HTTP APIs": the most specific match wins)."""
    matching = [r for r in routes if r.match(method, path) is not None]
    matching.sort(key=lambda r: (r.method == "ANY", "+}" in r.path, r.path.count("{"), -len(r.path)))
    return matching[0] if matching else None


def _as_text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def http_response(invocation: Invocation) -> tuple[int, list[tuple[str, str]], bytes]:
    """The HTTP answer API Gateway makes of a function's result (payload format 2.0)."""
    if not invocation.ok:
        timed_out = invocation.payload.get("errorType") == "Sandbox.Timedout"
        status, message = (503, "Service Unavailable") if timed_out else (500, "Internal Server Error")
        return status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()
    result = invocation.payload
    if not (isinstance(result, dict) and "statusCode" in result):
        # A result without statusCode is taken as a JSON body with 200.
        text = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], text.encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or [])
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return int(result["statusCode"]), headers, body


class HttpApiServer(BackgroundServer):
    """Serves ``routes`` on ``host:port``; ``invoke(function, event)`` runs the function."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Callable[[str, dict[str, Any]], Invocation],
        console: Console,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.routes = routes
        self._invoke = invoke
        self._console = console
        server = _Server((host, port), _Handler)
        server.api = self
        server.console = console
        super().__init__(server, "http-api")

    def route_for(self, method: str, path: str) -> Route | None:
        return pick_route(self.routes, method, path)

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, client: str
    ) -> Any:
        started = time.monotonic()
        path = urlsplit(target).path
        route = self.route_for(method, path)
        if route is None:
            answer: tuple[int, list[tuple[str, str]], bytes] = (
                404,
                [("Content-Type", "application/json")],
                b'{"message":"Not Found"}',
            )
            note = "no route"
        else:
            event = build_event(route, method, target, headers, body, source_ip=client)
            invocation = self._invoke(route.function, event)
            answer = http_response(invocation)
            note = f"{route.function} {invocation.summary}"
        elapsed = (time.monotonic() - started) * 1000
        self._console.say("api", f"{method} {path} → {answer[0]} in {elapsed:.0f} ms ({note})")
        return answer


class _Server(LocalHttpServer):
    api: HttpApiServer
    tag = "api"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, [("Content-Type", "application/json")], b'{"message":"Request Entity Too Large"}')
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.api.handle(
            self.command, self.path, list(self.headers.items()), body, self.client_address[0]
        )
        self._send(status, headers, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def do_HEAD(self) -> None:
        self._send(405, [], b"")

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in names and body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # HttpApiServer logs one line per request
        pass
