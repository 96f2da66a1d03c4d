"""A stand-in for WeChat's HTTP API (api.weixin.qq.com), served over a real socket.

SANDBOX — this is not WeChat. It answers the few endpoints wxtoken talks to the way the
official documentation says WeChat does, with time read only from an injected clock so a
test can move it, and it can be told to fail (slow answers, 5xx, errcodes, garbage, dropped
connections). The test-suite, ``make local`` and the benchmarks all use it.

Endpoints (in brackets, the name :meth:`WeChatStandIn.fail_next` and ``fail_always`` take):

- ``GET /cgi-bin/token`` [``token``]: every call issues a new token; the previous one stays
  valid 5 more minutes, older ones die at once. A daily quota per app (2000 by default).
- ``POST /cgi-bin/stable_token`` [``stable_token``]: tokens isolated from ``/cgi-bin/token``.
  Normal mode hands back the current token until its last 5 minutes; ``force_refresh``
  issues a new one and kills the previous (20 a day, at least 30 s apart).
- ``GET /cgi-bin/ticket/getticket`` [``getticket``]: a JS-SDK ticket for a valid token.
- the Open Platform's ``POST /cgi-bin/component/...`` endpoints [``component_token``,
  ``authorizer_token``, ``query_auth``, ...]: verify tickets, component and authorizer
  tokens; see :mod:`devtools.wechat.component`, reached as ``standin.open_platform``.
- any other WeChat path [``api``]: a generic authenticated API (40001 / 42001 / 41001) that
  also accepts an Open Platform authorizer's access token.

Faults: ``Delay`` (slow WeChat: the answer may be lost to a client timeout, but the token is
minted all the same, so a timed-out ``/cgi-bin/token`` call can still rotate the token),
``Hang`` (the request never reaches WeChat), ``HTTPStatus``, ``ErrCode``, ``NonJSON``,
``Drop`` and ``Callback`` (all answered *before* WeChat processes the request: nothing is
minted), ``Lost`` (WeChat processes the request — a token call mints — and then the
answer is lost: a gateway 5xx, a garbled body or a broken connection on the way back) and
``SlowAnswer`` (processed at once, answered late).

:meth:`WeChatStandIn.outside_fetch` plays another program fetching a token with the same
AppSecret (a legacy script, a colleague's test): WeChat's rule then retires the stored
token 5 minutes later, and only WeChat itself can tell.

Only the standard library is used, so the module runs anywhere the tests run::

    python -m devtools.wechat.standin --port 8081 --app wx1111111111111111:SECRET
"""

from __future__ import annotations

import argparse
import contextlib
import http
import http.server
import json
import re
import secrets
import selectors
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlsplit

from devtools.wechat.component import (
    COMPONENT_ENDPOINTS,
    COMPONENT_PATHS,
    SECRET_FIELDS,
    ComponentEndpoint,
    OpenPlatform,
    call_appid,
    is_component_endpoint,
)
from devtools.wechat.credentials import (
    BodyState,
    IssuedToken,
    TokenState,
    WeChatError,
    beijing_day,
    live_token,
    require_post_json,
    retire_previous,
)

# --- WeChat's rules, as documented (developers.weixin.qq.com, getAccessToken,
# getStableAccessToken, getTicket). Each is cited where it is applied.
TOKEN_TTL: Final = 7200
OVERLAP_SECONDS: Final = 300
TOKEN_DAILY_QUOTA: Final = 2000
STABLE_TOKEN_DAILY_QUOTA: Final = 500_000
FORCE_REFRESH_DAILY_LIMIT: Final = 20
FORCE_REFRESH_MIN_INTERVAL: Final = 30
TICKET_TTL: Final = 7200

Endpoint = Literal["token", "stable_token", "getticket", "api"] | ComponentEndpoint
ENDPOINTS: Final[tuple[Endpoint, ...]] = ("token", "stable_token", "getticket", "api", *COMPONENT_ENDPOINTS)
TOKEN_ENDPOINTS: Final = frozenset({"token", "stable_token"})
REDACTED: Final = "***"
_SECRET_FIELDS: Final = frozenset({"secret", "appsecret", *SECRET_FIELDS})

_PATHS: Final[dict[str, Endpoint]] = {
    "/cgi-bin/token": "token",
    "/cgi-bin/stable_token": "stable_token",
    "/cgi-bin/ticket/getticket": "getticket",
    **COMPONENT_PATHS,
}
# Paths the generic authenticated API answers; anything else gets 40066 "invalid url".
API_PREFIXES: Final = (
    "/cgi-bin/",
    "/wxa/",
    "/sns/",
    "/datacube/",
    "/customservice/",
    "/card/",
    "/merchant/",
    "/semantic/",
    "/shakearound/",
    "/channels/",
)
TICKET_TYPES: Final = frozenset({"jsapi", "wx_card"})
MAX_BODY_BYTES: Final = 1 << 20

# errmsg texts as WeChat writes them; WeChat appends " rid: ..." to every error.
ERRMSGS: Final[dict[int, str]] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40066: "invalid url",
    40097: "invalid args",
    40125: "invalid appsecret",
    40164: "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    43002: "require POST method",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    48006: "forbid to clear quota because of reaching the limit",
    61003: "component is not authorized by this account",
    61005: "component ticket is expired",
    61006: "component ticket is invalid",
    61009: "code is invalid",
    61010: "code is expired",
    61011: "invalid component",
    61023: "refresh_token is invalid",
    40170: "args count exceed count limit",
    89503: "此次调用需要管理员确认,请耐心等候",
}


# --- Faults: what the next request(s) to an endpoint get instead of (or before) the answer.


@dataclass(frozen=True, slots=True)
class Delay:
    """Sleep ``seconds`` of real time, then answer normally (a timeout if longer than the
    client's read timeout; the token is issued all the same, as at WeChat)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Hang:
    """The request never reaches WeChat: hold the connection ``seconds`` of real time, then
    close it without an answer. Nothing is issued (unlike ``Delay``)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class HTTPStatus:
    """Answer with this HTTP status and an HTML body (a gateway error page by default)."""

    code: int
    body: str | None = None


@dataclass(frozen=True, slots=True)
class ErrCode:
    """Answer HTTP 200 ``{"errcode": errcode, "errmsg": ...}``; never issues a token."""

    errcode: int
    errmsg: str | None = None


@dataclass(frozen=True, slots=True)
class NonJSON:
    """Answer a body that is not JSON (what a proxy in front of WeChat sometimes sends)."""

    body: str = "<html>502 Bad Gateway</html>"
    status: int = 200


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without answering."""


@dataclass(frozen=True, slots=True)
class Callback:
    """Call ``fn()`` (say, to kill Redis mid-refresh), then answer normally."""

    fn: Callable[[], object]


@dataclass(frozen=True, slots=True)
class SlowAnswer:
    """WeChat processes the request at once (a token call mints now), and its answer takes
    ``seconds`` of real time to reach the client: a slow way back, not a slow WeChat."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Lost:
    """WeChat processes the request (a token call mints a token that retires the previous
    one), then ``answer`` replaces its reply on the way back: what a client sees after a
    proxy's 5xx, a truncated body or a connection reset once WeChat had acted."""

    answer: HTTPStatus | NonJSON | Drop


Fault = Delay | Hang | HTTPStatus | ErrCode | NonJSON | Drop | Callback | Lost | SlowAnswer


@dataclass(slots=True)
class Call:
    """One request the stand-in received.

    ``params`` merges the query string and a JSON object body, with the secret replaced by
    ``REDACTED``. ``errcode`` is what was answered: 0 for success, ``None`` while the request
    is being answered or when the answer was not WeChat JSON (a fault such as ``Drop``).
    """

    endpoint: Endpoint
    method: str
    path: str
    appid: str | None
    params: dict[str, Any]
    at: float
    fault: str | None = None
    errcode: int | None = None
    # True once the request was handled to the end (answered, failed or dropped).
    done: bool = False


@dataclass(slots=True)
class _Ticket:
    value: str
    expires_at: float


@dataclass(slots=True)
class _App:
    secret: str
    tokens: dict[str, list[IssuedToken]] = field(default_factory=lambda: {"token": [], "stable_token": []})
    tickets: dict[str, _Ticket] = field(default_factory=dict)
    used: dict[tuple[str, int], int] = field(default_factory=dict)  # (endpoint, day) -> calls
    forced: dict[int, int] = field(default_factory=dict)  # day -> force refreshes
    last_forced_at: float | None = None


class WeChatStandIn:
    """WeChat's token, ticket and generic APIs on ``base_url``; see the module docstring.

    ``clock`` is the only source of time for token lifetimes, quotas and days (``Delay``
    sleeps real time). Every method is thread-safe. Use as a context manager, or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.host = host
        self._requested_port = port
        self._log = log
        self.force_refresh_daily_limit = FORCE_REFRESH_DAILY_LIMIT
        self.force_refresh_min_interval = FORCE_REFRESH_MIN_INTERVAL
        self._lock = threading.RLock()
        self._apps: dict[str, _App] = {}
        self._index: dict[str, IssuedToken] = {}
        self._seq = 0
        self._quota: dict[str, int] = {"token": TOKEN_DAILY_QUOTA, "stable_token": STABLE_TOKEN_DAILY_QUOTA}
        self._next: dict[str, deque[tuple[str | None, Fault]]] = {e: deque() for e in ENDPOINTS}
        self._always: dict[tuple[str, str | None], Fault] = {}
        self._calls: list[Call] = []
        self._errors: list[str] = []
        self._issued: list[str] = []
        # Tickets of accounts that are not apps here (authorizers of an Open Platform component).
        self._other_tickets: dict[str, dict[str, _Ticket]] = {}
        self.open_platform = OpenPlatform(lambda: self.clock(), self._lock, self._index, self._issued)
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> WeChatStandIn:
        """Bind the socket and serve from a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the WeChat stand-in is already started")
        self._stopping.clear()
        self._httpd = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_until_woken,
            name=f"wechat-standin:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (clients then see a dead server)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        httpd.close_connections()
        httpd.server_close()

    def __enter__(self) -> WeChatStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the WeChat stand-in is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: what the client uses instead of api.weixin.qq.com."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    # --- apps and quotas

    def add_app(self, appid: str, secret: str) -> None:
        """Register an app. For a known appid this replaces the secret (an AppSecret reset)."""
        with self._lock:
            app = self._apps.get(appid)
            if app is None:
                self._apps[appid] = _App(secret=secret)
            else:
                app.secret = secret

    @property
    def appids(self) -> list[str]:
        with self._lock:
            return list(self._apps)

    def set_daily_quota(self, limit: int, endpoint: Literal["token", "stable_token"] = "token") -> None:
        """Calls per app per day (Beijing time) before WeChat answers 45009."""
        self._check_endpoint(endpoint, TOKEN_ENDPOINTS)
        with self._lock:
            self._quota[endpoint] = limit

    def reset_quota(self, appid: str | None = None, endpoint: str | None = None) -> None:
        """Forget today's usage (what ``/cgi-bin/clear_quota`` does), for one app or all."""
        with self._lock:
            for app_id, app in self._apps.items():
                if appid in (None, app_id):
                    app.used = {k: v for k, v in app.used.items() if endpoint not in (None, k[0])}

    def quota_used(self, appid: str, endpoint: Literal["token", "stable_token"] = "token") -> int:
        """Successful calls today (Beijing time) that count against the daily quota."""
        with self._lock:
            return self._apps[appid].used.get((endpoint, beijing_day(self.clock())), 0)

    def force_refreshes_today(self, appid: str) -> int:
        with self._lock:
            return self._apps[appid].forced.get(beijing_day(self.clock()), 0)

    # --- faults

    def fail_next(self, endpoint: str, fault: Fault, times: int = 1, *, appid: str | None = None) -> None:
        """The next ``times`` requests to ``endpoint`` (for ``appid`` only, if given) get ``fault``.

        ``endpoint`` is ``"token"``, ``"stable_token"``, ``"getticket"``, an Open Platform
        endpoint (``COMPONENT_ENDPOINTS``; ``appid`` there is the authorizer's when the request
        names one, else the component's) or ``"api"`` (every other path). Queued faults are
        used in order and win over :meth:`fail_always`.
        """
        self._check_endpoint(endpoint)
        if not isinstance(fault, Fault):
            raise TypeError(f"not a fault: {fault!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._next[endpoint].extend([(appid, fault)] * times)

    def fail_always(self, endpoint: str, fault: Fault | None, *, appid: str | None = None) -> None:
        """Every request to ``endpoint`` (for ``appid`` only, if given) gets ``fault``; None clears."""
        self._check_endpoint(endpoint)
        if fault is not None and not isinstance(fault, Fault):
            raise TypeError(f"not a fault: {fault!r}")
        with self._lock:
            if fault is None:
                self._always.pop((endpoint, appid), None)
            else:
                self._always[(endpoint, appid)] = fault

    def clear_faults(self) -> None:
        with self._lock:
            for queue in self._next.values():
                queue.clear()
            self._always.clear()

    # --- what happened

    def calls(self, endpoint: str | None = None, appid: str | None = None) -> list[Call]:
        """Copies of the requests received so far, oldest first (secrets redacted)."""
        if endpoint is not None:
            self._check_endpoint(endpoint)
        with self._lock:
            return [
                replace(c, params=dict(c.params))
                for c in self._calls
                if endpoint in (None, c.endpoint) and appid in (None, c.appid)
            ]

    def token_calls(self, appid: str | None = None) -> int:
        """Requests to ``/cgi-bin/token`` and ``stable_token``, whatever they were answered."""
        with self._lock:
            return sum(1 for c in self._calls if c.endpoint in TOKEN_ENDPOINTS and appid in (None, c.appid))

    def issued(self) -> list[str]:
        """Every access token and ticket issued so far, oldest first, including dead ones
        (what must never appear in a log)."""
        with self._lock:
            return list(self._issued)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of exceptions raised while answering (a bug here, or a raising Callback)."""
        with self._lock:
            return list(self._errors)

    # --- tokens

    def token_state(self, appid: str, access_token: str) -> TokenState:
        """What WeChat would say of this token at ``clock()``: valid, expired (42001) or
        invalid (40001: unknown, another app's, or replaced by a newer one)."""
        with self._lock:
            record = self._index.get(access_token)
            if record is None or record.appid != appid:
                return "invalid"
            return record.state(self.clock())

    def is_valid(self, appid: str, access_token: str) -> bool:
        return self.token_state(appid, access_token) == "valid"

    def current_token(
        self, appid: str, endpoint: Literal["token", "stable_token"] | None = None
    ) -> str | None:
        """The newest still-valid token of ``appid`` (from either API unless one is named)."""
        if endpoint is not None:
            self._check_endpoint(endpoint, TOKEN_ENDPOINTS)
        with self._lock:
            app = self._apps.get(appid)
            if app is None:
                return None
            now = self.clock()
            alive = [
                t
                for api, tokens in app.tokens.items()
                if endpoint in (None, api)
                for t in tokens
                if t.state(now) == "valid"
            ]
            return max(alive, key=lambda t: t.seq).value if alive else None

    def outside_fetch(self, appid: str) -> str:
        """Another program calls ``/cgi-bin/token`` with this app's AppSecret, now.

        WeChat cannot tell it from wxtoken: the newest token wxtoken stored becomes the
        "previous" one, valid 5 more minutes, and every older one dies at once
        (getAccessToken). Not recorded as a call (it did not come through the socket).
        Returns the outsider's token.
        """
        with self._lock:
            app = self._apps[appid]
            answer = self._answer_token(
                {"grant_type": "client_credential", "appid": appid, "secret": app.secret}
            )
            if "access_token" not in answer:
                raise RuntimeError(f"the outside fetch was refused: {answer}")
            return str(answer["access_token"])

    def revoke_tokens(self, appid: str) -> None:
        """Make every token of ``appid`` invalid (40001) from now on, as if replaced elsewhere."""
        with self._lock:
            now = self.clock()
            for tokens in self._apps[appid].tokens.values():
                for token in tokens:
                    token.dies_at = min(token.dies_at, now)

    # --- request handling (called from the server's threads)

    def _record(self, endpoint: Endpoint, method: str, path: str, params: dict[str, Any]) -> Call:
        with self._lock:
            appid = params.get("appid") if endpoint in TOKEN_ENDPOINTS else None
            if endpoint in COMPONENT_ENDPOINTS:
                appid = call_appid(params)
            if appid is None and isinstance(params.get("access_token"), str):
                owner = self._index.get(params["access_token"])
                appid = owner.appid if owner else None
            redacted = {k: (REDACTED if k in _SECRET_FIELDS else v) for k, v in params.items()}
            call = Call(
                endpoint=endpoint,
                method=method,
                path=path,
                appid=appid if isinstance(appid, str) else None,
                params=redacted,
                at=self.clock(),
            )
            self._calls.append(call)
            return call

    def _take_fault(self, endpoint: Endpoint, appid: str | None) -> Fault | None:
        with self._lock:
            queue = self._next[endpoint]
            for i, (for_app, fault) in enumerate(queue):
                if for_app is None or for_app == appid:
                    del queue[i]
                    return fault
            if appid is not None and (endpoint, appid) in self._always:
                return self._always[(endpoint, appid)]
            return self._always.get((endpoint, None))

    def _answer(
        self, endpoint: Endpoint, method: str, path: str, params: dict[str, Any], body: BodyState
    ) -> dict[str, Any]:
        """The JSON WeChat would answer; errors come back as ``{"errcode", "errmsg"}``."""
        with self._lock:
            try:
                if endpoint == "token":
                    return self._answer_token(params)
                if endpoint == "stable_token":
                    return self._answer_stable_token(method, params, body)
                if endpoint == "getticket":
                    return self._answer_getticket(params)
                if is_component_endpoint(endpoint):
                    return self.open_platform.answer(endpoint, method, params, body)
                return self._answer_api(method, path, params, body)
            except WeChatError as answer:
                return self.error_body(answer.errcode)

    def error_body(self, errcode: int, errmsg: str | None = None) -> dict[str, Any]:
        """``{"errcode": .., "errmsg": ".. rid: ..."}`` with WeChat's text for ``errcode``."""
        if errmsg is None:
            errmsg = f"{ERRMSGS.get(errcode, 'unknown error')} rid: {_rid(self.clock())}"
        return {"errcode": errcode, "errmsg": errmsg}

    def _answer_token(self, params: dict[str, Any]) -> dict[str, Any]:
        app = self._authenticate(params)
        now = self.clock()
        self._count_quota(app, "token", now)
        # getAccessToken: "重复获取将导致上次获取的access_token失效" and "公众平台后台会保证在
        # 5分钟内,新老access_token都可用": each call mints a new token, the previous one keeps
        # working for 5 minutes, anything older stops at once.
        retire_previous(app.tokens["token"], now, OVERLAP_SECONDS)
        token = self._issue(params["appid"], "token", now)
        return {"access_token": token.value, "expires_in": TOKEN_TTL}

    def _answer_stable_token(self, method: str, params: dict[str, Any], body: BodyState) -> dict[str, Any]:
        # getStableAccessToken: "该接口仅支持 POST JSON 形式的调用".
        require_post_json(method, body)
        force = params.get("force_refresh", False)
        if not isinstance(force, bool):
            raise WeChatError(47001)
        app = self._authenticate(params)
        appid = params["appid"]
        now = self.clock()
        tokens = app.tokens["stable_token"]
        current = tokens[-1] if tokens and tokens[-1].state(now) == "valid" else None
        if force:
            # "该模式限制每天20次。考虑到数据安全,连续使用该模式时,请保证调用时间隔至少为30s,
            # 否则不会刷新": 20 forced refreshes a day, and one within 30 s of the last
            # changes nothing (the current token comes back).
            day = beijing_day(now)
            if app.forced.get(day, 0) >= self.force_refresh_daily_limit:
                raise WeChatError(45009)
            recent = (
                app.last_forced_at is not None and now - app.last_forced_at < self.force_refresh_min_interval
            )
            self._count_quota(app, "stable_token", now)
            if current is not None and recent:
                return {"access_token": current.value, "expires_in": int(current.expires_at - now)}
            # "强制刷新模式,会导致上次获取的 access_token 失效": no grace period is documented.
            for older in tokens:
                older.dies_at = min(older.dies_at, now)
            app.forced[day] = app.forced.get(day, 0) + 1
            app.last_forced_at = now
            token = self._issue(appid, "stable_token", now)
            return {"access_token": token.value, "expires_in": TOKEN_TTL}
        self._count_quota(app, "stable_token", now)
        # "在普通模式调用下,平台会提前5分钟更新access_token ... 在新旧access_token交接之际,平台会
        # 保证在5分钟内,新旧access_token都可用": the same token until its last 5 minutes;
        # then a new one, while the old one lives out its own lifetime.
        if current is not None and current.expires_at - now > OVERLAP_SECONDS:
            return {"access_token": current.value, "expires_in": int(current.expires_at - now)}
        token = self._issue(appid, "stable_token", now)
        return {"access_token": token.value, "expires_in": TOKEN_TTL}

    def _answer_getticket(self, params: dict[str, Any]) -> dict[str, Any]:
        token = self._check_access_token(params)
        kind = params.get("type")
        if kind not in TICKET_TYPES:
            raise WeChatError(40097)
        now = self.clock()
        app = self._apps.get(token.appid)
        tickets = app.tickets if app is not None else self._other_tickets.setdefault(token.appid, {})
        ticket = tickets.get(kind)
        if ticket is None or ticket.expires_at - now <= OVERLAP_SECONDS:
            ticket = _Ticket(secrets.token_urlsafe(64), now + TICKET_TTL)
            self._issued.append(ticket.value)
            tickets[kind] = ticket
        return {
            "errcode": 0,
            "errmsg": "ok",
            "ticket": ticket.value,
            "expires_in": int(ticket.expires_at - now),
        }

    def _answer_api(self, method: str, path: str, params: dict[str, Any], body: BodyState) -> dict[str, Any]:
        if not path.startswith(API_PREFIXES):
            raise WeChatError(40066)
        token = self._check_access_token(params)
        if body == "bad":
            raise WeChatError(47001)
        if path == "/cgi-bin/clear_quota" and method == "POST":
            # "如果是第三方服务商代公众号或者小程序清除quota,则需要用authorizer_access_token"
            # (clearQuota): an authorizer's token clears that account's quota.
            self.reset_quota(token.appid)
            self.open_platform.reset_quota(token.appid)
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
        if path == "/cgi-bin/get_api_domain_ip":
            answer["ip_list"] = ["101.226.103.0/25", "101.226.233.128/25", "58.247.206.128/25"]
        return answer

    def _authenticate(self, params: dict[str, Any]) -> _App:
        if params.get("grant_type") != "client_credential":
            raise WeChatError(40002)
        appid, secret = params.get("appid"), params.get("secret")
        if not isinstance(appid, str) or not appid:
            raise WeChatError(41002)
        if not isinstance(secret, str) or not secret:
            raise WeChatError(41004)
        app = self._apps.get(appid)
        if app is None:
            raise WeChatError(40013)
        if not secrets.compare_digest(secret.encode(), app.secret.encode()):
            raise WeChatError(40125)
        return app

    def _check_access_token(self, params: dict[str, Any]) -> IssuedToken:
        return live_token(self._index, params.get("access_token"), self.clock())

    def _count_quota(self, app: _App, endpoint: str, now: float) -> None:
        key = (endpoint, beijing_day(now))
        if app.used.get(key, 0) >= self._quota[endpoint]:
            raise WeChatError(45009)
        app.used[key] = app.used.get(key, 0) + 1

    def _issue(self, appid: str, api: Endpoint, now: float) -> IssuedToken:
        self._seq += 1
        # Real tokens are ~136 characters of [A-Za-z0-9_-]; 102 random bytes make 136.
        token = IssuedToken(secrets.token_urlsafe(102), appid, api, self._seq, now, now + TOKEN_TTL)
        tokens = self._apps[appid].tokens[api]
        # A token answering 40001 for good is indistinguishable from an unknown one: drop it.
        for dead in [t for t in tokens if t.state(now) == "invalid"]:
            tokens.remove(dead)
            self._index.pop(dead.value, None)
        tokens.append(token)
        self._index[token.value] = token
        self._issued.append(token.value)
        return token

    def _note_error(self) -> None:
        with self._lock:
            self._errors.append(traceback.format_exc())

    def _write_log(self, line: str) -> None:
        if self._log is not None:
            self._log(_redact(line))

    @staticmethod
    def _check_endpoint(endpoint: str, allowed: Sequence[str] | frozenset[str] = ENDPOINTS) -> None:
        if endpoint not in allowed:
            raise ValueError(f"unknown endpoint {endpoint!r}: expected one of {sorted(allowed)}")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # 200 clients connecting at once must not overflow the listen backlog.
    request_queue_size = 1024
    # handle_request() gives up after this if a ready connection vanished before accept().
    timeout = 0.5

    def __init__(self, address: tuple[str, int], standin: WeChatStandIn) -> None:
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__(address, _Handler)

    def serve_until_woken(self) -> None:
        """Accept connections until :meth:`wake`: no polling, so stop() returns at once."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_r in ready:
                    return
                self.handle_request()

    def wake(self) -> None:
        self._wake_w.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), a slow DNS lookup
        # where there is no DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Kept-alive client connections would otherwise still be answered after stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            _shutdown(connection)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "wechat-standin"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        # The request line carries ?secret=...: _write_log redacts it; quiet unless asked.
        self.server.standin._write_log(f"{self.address_string()} {format % args}")

    def _serve(self, method: str) -> None:
        standin = self.server.standin
        try:
            split = urlsplit(self.path)
            endpoint = _PATHS.get(split.path, "api")
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            fields, body_state = self._read_body()
            # WeChat reads access_token from the query string, whatever the body says.
            params: dict[str, Any] = {**fields, **query}
            call = standin._record(endpoint, method, split.path, params)
            try:
                self._serve_call(standin, call, endpoint, method, split.path, params, body_state)
            finally:
                call.done = True
        except (ConnectionError, TimeoutError):  # the client went away (say, it timed out)
            self.close_connection = True
        except Exception:
            standin._note_error()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(500, b'{"errcode":-1,"errmsg":"system error (stand-in bug)"}', "application/json")

    def _serve_call(
        self,
        standin: WeChatStandIn,
        call: Call,
        endpoint: Endpoint,
        method: str,
        path: str,
        params: dict[str, Any],
        body_state: BodyState,
    ) -> None:
        fault = standin._take_fault(endpoint, call.appid)
        if isinstance(fault, Lost):
            call.fault = repr(fault)
            # Processed as WeChat would (a token is minted), then the answer is lost.
            standin._answer(endpoint, method, path, params, body_state)
            self._apply(fault.answer, call)
            return
        if isinstance(fault, SlowAnswer):
            call.fault = repr(fault)
            body = standin._answer(endpoint, method, path, params, body_state)
            call.errcode = int(body.get("errcode", 0))
            if standin._stopping.wait(fault.seconds):
                self._drop()
            else:
                self._send_json(body)
            return
        if fault is not None:
            call.fault = repr(fault)
            if self._apply(fault, call):
                return
        if standin._stopping.is_set():
            self._drop()
            return
        body = standin._answer(endpoint, method, path, params, body_state)
        call.errcode = int(body.get("errcode", 0))
        self._send_json(body)

    def _read_body(self) -> tuple[dict[str, Any], BodyState]:
        """The fields of a JSON object body, and what the body was."""
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # chunked bodies are not read: the stream is unusable
                return {}, "bad"
            return {}, "missing"
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            return {}, "bad"
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            return {}, "bad"
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}, "missing"
        try:
            body = json.loads(raw)
        except ValueError:
            return {}, "bad"
        if not isinstance(body, dict):
            return {}, "bad"
        return body, "json"

    def _apply(self, fault: Fault, call: Call) -> bool:
        """Apply ``fault``; True when it answered (or dropped) the request itself."""
        standin = self.server.standin
        match fault:
            case Delay(seconds):
                # Real time, and cut short by stop() so a stopping server does not linger.
                if standin._stopping.wait(seconds):
                    self._drop()
                    return True
                return False
            case Hang(seconds):
                standin._stopping.wait(seconds)
                self._drop()
                return True
            case Callback(fn):
                fn()
                return False
            case ErrCode(errcode, errmsg):
                call.errcode = errcode
                self._send_json(standin.error_body(errcode, errmsg))
                return True
            case HTTPStatus(code, body):
                if body is None:
                    title = f"{code} {_phrase(code)}"
                    body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
                self._send(code, body.encode(), "text/html; charset=utf-8")
                return True
            case NonJSON(body, status):
                self._send(status, body.encode(), "text/html; charset=utf-8")
                return True
            case Drop():
                self._drop()
                return True
            case Lost(answer):
                return self._apply(answer, call)
            case SlowAnswer():
                raise TypeError("SlowAnswer is applied by _serve_call")
        raise TypeError(f"not a fault: {fault!r}")

    def _send_json(self, body: dict[str, Any]) -> None:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        # WeChat's own Content-Type header.
        self._send(200, payload, "application/json; encoding=utf-8")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        _shutdown(self.connection)


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


def _rid(now: float) -> str:
    # WeChat's request id, e.g. "rid: 69e3e2a8-7b7eb174-1b3a6ac0" (hex time first).
    return f"{int(now) & 0xFFFFFFFF:08x}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Error"


_SECRET_IN_TEXT = re.compile(r"(?i)((?:app)?secret=)[^&\s\"]+")


def _redact(text: str) -> str:
    return _SECRET_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text)


BANNER: Final = "SANDBOX — this is not WeChat: a local stand-in for api.weixin.qq.com."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.wechat.standin",
        description=f"{BANNER} Serves /cgi-bin/token, stable_token, ticket/getticket and a generic API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port (default: 8081)")
    parser.add_argument(
        "--app",
        action="append",
        required=True,
        metavar="APPID:SECRET",
        help="an app the stand-in accepts; repeat for several",
    )
    parser.add_argument(
        "--token-quota", type=int, default=TOKEN_DAILY_QUOTA, help="daily /cgi-bin/token calls"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)

    apps: list[tuple[str, str]] = []
    for spec in args.app:
        appid, sep, secret = spec.partition(":")
        if not sep or not appid or not secret:
            parser.error("--app wants APPID:SECRET (an appid, a colon, the AppSecret)")
        apps.append((appid, secret))

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    standin = WeChatStandIn(host=args.host, port=args.port, log=None if args.quiet else log)
    for appid, secret in apps:
        standin.add_app(appid, secret)
    standin.set_daily_quota(args.token_quota)
    try:
        standin.start()
    except OSError as exc:
        parser.exit(1, f"cannot listen on {args.host}:{args.port}: {exc}\n")
    print(BANNER, flush=True)
    print(f"listening on {standin.base_url}", flush=True)
    print(f"apps: {', '.join(appid for appid, _ in apps)}", flush=True)
    print("point wxtoken's WeChat API base URL here; Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
