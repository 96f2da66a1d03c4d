"""WeChat's Open Platform (第三方平台) inside the WeChat stand-in. SANDBOX — this is not WeChat.

A third-party platform ("component") gets a ``component_verify_ticket`` pushed to its
授权事件接收URL, trades it for a ``component_access_token``, and with that token exchanges the
authorization code of each account that authorized it (an "authorizer") for an
``authorizer_access_token`` and a refresh token. :class:`OpenPlatform` is that side of
WeChat: the stand-in serves its endpoints on the same socket, with the same faults, call
records and clock, and reaches it as ``standin.open_platform``.

Endpoints (in brackets, the name ``fail_next`` / ``fail_always`` take; a fault's ``appid``
matches the authorizer appid of the request when it names one, else the component appid):

- ``POST /cgi-bin/component/api_start_push_ticket`` [``start_push_ticket``]
- ``POST /cgi-bin/component/api_component_token`` [``component_token``]
- ``POST /cgi-bin/component/api_create_preauthcode`` [``preauthcode``]
- ``POST /cgi-bin/component/api_query_auth`` [``query_auth``]
- ``POST /cgi-bin/component/api_authorizer_token`` [``authorizer_token``]
- ``POST /cgi-bin/component/api_get_authorizer_list`` [``get_authorizer_list``]
- ``POST /cgi-bin/component/clear_quota/v2`` [``component_clear_quota``]

Authorizer access tokens are ordinary access tokens of the authorizer's account: every other
API the stand-in serves accepts them, and ``standin.token_state`` judges them.

WeChat's rules are cited where they are applied. Where WeChat documents nothing, the model
says so and chooses the stricter reading:

- a new component or authorizer access token leaves the previous one 5 more minutes and kills
  older ones, as getAccessToken documents for classic tokens;
- ``api_authorizer_token`` hands back the refresh token it was given (set
  :attr:`OpenPlatform.rotate_refresh_tokens` to make every refresh hand back a new one);
- the daily quotas (2000 component tokens per component, 2000 authorizer tokens per
  authorizer) are the classic token's number;
- an authorization code stays usable until it expires (not single-use);
- a ``component_appid`` in the body that is not the token's owner gets 40013;
- an unknown authorization code gets 61009 "code is invalid".

Documentation paths below are under https://developers.weixin.qq.com/doc/oplatform/.
Standard library only at import time; building a push imports :mod:`devtools.wechat.player`
(wxtoken's message crypto).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal, TypeIs

from devtools.wechat.credentials import (
    BodyState,
    IssuedToken,
    TokenState,
    WeChatError,
    beijing_day,
    beijing_month,
    live_token,
    require_post_json,
    retire_previous,
)

if TYPE_CHECKING:
    from devtools.wechat.player import WeChatPlayer

# component_verify_ticket: "每隔 10 分钟 ... 推送" and "component_verify_ticket 的有效时间为12小时"
# (Third-party_Platforms/2.0/api/Before_Develop/component_verify_ticket.html).
TICKET_PUSH_INTERVAL: Final = 600
VERIFY_TICKET_TTL: Final = 12 * 3600
# api_component_token / api_authorizer_token: "每个令牌的有效期为 2 小时", expires_in 7200.
COMPONENT_TOKEN_TTL: Final = 7200
AUTHORIZER_TOKEN_TTL: Final = 7200
# pre_auth_code: "每个预授权码有效期为 1800秒" (the page's example shows 600; the text wins).
PRE_AUTH_CODE_TTL: Final = 1800
# The authorization code: 600 s, WeChat's own answer on its developer forum
# (developers.weixin.qq.com/community/develop/doc/0000ae13194f78f5d5af893e852800); 61010 after.
AUTHORIZATION_CODE_TTL: Final = 600
# api_get_authorizer_list: "count 拉取数量,最大为 500"; 40170 "args count exceed count limit".
AUTHORIZER_LIST_MAX: Final = 500
# clear_quota/v2: "每个帐号每月使用重置 API 调用次数 与本接口共10次清零操作机会"; 48006 after.
CLEAR_QUOTA_MONTHLY_LIMIT: Final = 10
# Not documented for these endpoints: the classic getAccessToken numbers (see the docstring).
COMPONENT_TOKEN_DAILY_QUOTA: Final = 2000
AUTHORIZER_TOKEN_DAILY_QUOTA: Final = 2000
REPLACED_TOKEN_GRACE: Final = 300

ComponentEndpoint = Literal[
    "start_push_ticket",
    "component_token",
    "preauthcode",
    "query_auth",
    "authorizer_token",
    "get_authorizer_list",
    "component_clear_quota",
]
COMPONENT_PATHS: Final[dict[str, ComponentEndpoint]] = {
    "/cgi-bin/component/api_start_push_ticket": "start_push_ticket",
    "/cgi-bin/component/api_component_token": "component_token",
    "/cgi-bin/component/api_create_preauthcode": "preauthcode",
    "/cgi-bin/component/api_query_auth": "query_auth",
    "/cgi-bin/component/api_authorizer_token": "authorizer_token",
    "/cgi-bin/component/api_get_authorizer_list": "get_authorizer_list",
    "/cgi-bin/component/clear_quota/v2": "component_clear_quota",
}
COMPONENT_ENDPOINTS: Final[tuple[ComponentEndpoint, ...]] = tuple(COMPONENT_PATHS.values())
QuotaEndpoint = Literal["component_token", "authorizer_token"]
SECRET_FIELDS: Final = frozenset({"component_appsecret", "component_secret", "appsecret"})


@dataclass(frozen=True, slots=True)
class ComponentPush:
    """One POST WeChat makes to a platform's 授权事件接收URL: send ``body`` with ``query``.

    ``xml`` is the plaintext inside; ``ticket`` is set for a component_verify_ticket push and
    ``authorization_code`` for ``authorized`` / ``updateauthorized``. The platform answers
    the string ``success``.
    """

    info_type: str
    query: dict[str, str]
    body: str
    xml: str
    ticket: str | None = None
    authorization_code: str | None = None


@dataclass(slots=True)
class _Authorizer:
    appid: str
    refresh_token: str
    auth_time: int
    func_info: tuple[int, ...]
    tokens: list[IssuedToken] = field(default_factory=list)


@dataclass(slots=True)
class _Component:
    appid: str
    secret: str
    token: str
    encoding_aes_key: str
    pushing: bool = True
    tickets: dict[str, float] = field(default_factory=dict)  # ticket -> expires_at, oldest first
    tokens: list[IssuedToken] = field(default_factory=list)
    # Authorized accounts in the order they authorized (the list endpoint's order).
    authorizers: dict[str, _Authorizer] = field(default_factory=dict)
    pushes: list[ComponentPush] = field(default_factory=list)  # sent on WeChat's own initiative


@dataclass(frozen=True, slots=True)
class _Code:
    component_appid: str
    authorizer_appid: str
    expires_at: float


class OpenPlatform:
    """The Open Platform side of the stand-in; see the module docstring.

    Built by :class:`~devtools.wechat.standin.WeChatStandIn`, whose lock, clock, token index
    and list of issued credentials it shares. Every public method is thread-safe.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        lock: threading.RLock,
        index: dict[str, IssuedToken],
        issued: list[str],
    ) -> None:
        self._clock = clock
        self._lock = lock
        self._index = index  # the stand-in's: authorizer tokens work on every API
        self._issued = issued
        self._component_index: dict[str, IssuedToken] = {}
        self._components: dict[str, _Component] = {}
        self._codes: dict[str, _Code] = {}
        self._pre_auth_codes: dict[str, _Code] = {}
        self._seq = itertools.count(1)
        self._quota: dict[str, int] = {
            "component_token": COMPONENT_TOKEN_DAILY_QUOTA,
            "authorizer_token": AUTHORIZER_TOKEN_DAILY_QUOTA,
        }
        self._used: dict[tuple[str, str, int], int] = {}  # (endpoint, appid, day) -> calls
        self._clears: dict[tuple[str, int], int] = {}  # (appid, month) -> clear_quota/v2 calls
        self.rotate_refresh_tokens = False

    # --- platforms and their pushes

    def add_component(self, component_appid: str, secret: str, token: str, encoding_aes_key: str) -> None:
        """Register a third-party platform: its AppSecret, and the Token and EncodingAESKey
        its 授权事件接收URL pushes are signed and encrypted with. Replaces the secret and keys
        of a known one. Pushes are on (WeChat starts them once the platform is approved)."""
        with self._lock:
            known = self._components.get(component_appid)
            if known is None:
                self._components[component_appid] = _Component(
                    component_appid, secret, token, encoding_aes_key
                )
            else:
                known.secret, known.token, known.encoding_aes_key = secret, token, encoding_aes_key

    def player(self, component_appid: str) -> WeChatPlayer:
        """A :class:`WeChatPlayer` with the platform's keys (to decrypt a push in a test)."""
        from devtools.wechat.player import WeChatPlayer

        with self._lock:
            component = self._components[component_appid]
            return WeChatPlayer(component.appid, component.token, component.encoding_aes_key)

    def push_ticket(self, component_appid: str) -> ComponentPush:
        """WeChat's 10-minute timer fires: a new component_verify_ticket, and the push that
        carries it. Older tickets keep working until their own 12 hours are up
        (component_verify_ticket.html: "建议保存最近可用的component_verify_ticket", and each is
        "有效时间为12小时"). Raises RuntimeError while pushes are stopped."""
        with self._lock:
            component = self._components[component_appid]
            if not component.pushing:
                raise RuntimeError(f"ticket pushes to {component_appid} are stopped (api_start_push_ticket)")
            return self._push_ticket(component)

    def stop_ticket_pushes(self, component_appid: str) -> None:
        """WeChat stops pushing tickets (as after the receiver failed) until the platform calls
        ``api_start_push_ticket``."""
        with self._lock:
            self._components[component_appid].pushing = False

    def take_pushes(self, component_appid: str) -> list[ComponentPush]:
        """The pushes WeChat sent on its own since the last call (``api_start_push_ticket``
        sends a ticket at once), oldest first; they are forgotten here."""
        with self._lock:
            component = self._components[component_appid]
            pushes, component.pushes = component.pushes, []
            return pushes

    def current_ticket(self, component_appid: str) -> str | None:
        """The newest unexpired verify ticket, if any."""
        with self._lock:
            now = self._clock()
            alive = [t for t, expires in self._components[component_appid].tickets.items() if now < expires]
            return alive[-1] if alive else None

    # --- authorizers

    def authorize(
        self,
        component_appid: str,
        authorizer_appid: str,
        *,
        func_info: Iterable[int] = (1,),
        pre_auth_code: str | None = None,
    ) -> ComponentPush:
        """An account authorizes the platform (or authorizes it again): the ``authorized`` push,
        whose AuthorizationCode ``api_query_auth`` exchanges for 10 minutes.

        A new refresh token is minted and the previous one dies: "用户重新授权后,之前的刷新令牌会
        失效" (Third-party_Platforms/2.0/api/ThirdParty/token/authorization_info.html).
        ``pre_auth_code``, when given, must come from ``api_create_preauthcode`` and be unexpired.
        """
        with self._lock:
            component = self._components[component_appid]
            now = self._clock()
            if pre_auth_code is None:
                pre_auth_code = self._new_pre_auth_code(component, now)
            elif not self._pre_auth_code_valid(component, pre_auth_code, now):
                raise ValueError("unknown or expired pre_auth_code")
            component.authorizers.pop(authorizer_appid, None)
            component.authorizers[authorizer_appid] = self._new_authorizer(authorizer_appid, func_info, now)
            return self._authorization_push(component, authorizer_appid, "authorized", pre_auth_code, now)

    def update_authorization(
        self, component_appid: str, authorizer_appid: str, *, func_info: Iterable[int]
    ) -> ComponentPush:
        """The account changes the permissions it granted: the ``updateauthorized`` push with a
        fresh AuthorizationCode. The refresh token is kept (WeChat documents no change)."""
        with self._lock:
            component = self._components[component_appid]
            authorizer = component.authorizers[authorizer_appid]
            authorizer.func_info = tuple(func_info)
            now = self._clock()
            pre_auth_code = self._new_pre_auth_code(component, now)
            return self._authorization_push(
                component, authorizer_appid, "updateauthorized", pre_auth_code, now
            )

    def unauthorize(self, component_appid: str, authorizer_appid: str) -> ComponentPush:
        """The account cancels the authorization: the ``unauthorized`` push
        (Third-party_Platforms/2.0/api/Before_Develop/authorize_event.html). From now on its
        refresh token gets 61023, its access tokens 40001, and the list leaves it out."""
        with self._lock:
            component = self._components[component_appid]
            authorizer = component.authorizers.pop(authorizer_appid)
            now = self._clock()
            for token in authorizer.tokens:
                token.dies_at = min(token.dies_at, now)
            xml = self._event_xml(component, "unauthorized", now, AuthorizerAppid=authorizer_appid)
            return self._push(component, "unauthorized", xml, now)

    def add_authorizers(self, component_appid: str, n: int, *, auth_time: int | None = None) -> list[str]:
        """``n`` accounts that authorized the platform earlier (no pushes): their new appids.
        Each gets a refresh token and no access token yet; constant work per account."""
        with self._lock:
            component = self._components[component_appid]
            now = self._clock() if auth_time is None else auth_time
            added: list[str] = []
            while len(added) < n:
                appid = f"wx{secrets.token_hex(8)}"
                if appid in component.authorizers:
                    continue
                component.authorizers[appid] = self._new_authorizer(appid, (1,), now)
                added.append(appid)
            return added

    def authorizer_appids(self, component_appid: str) -> list[str]:
        """The accounts currently authorizing the platform, in order of authorization."""
        with self._lock:
            return list(self._components[component_appid].authorizers)

    def refresh_token(self, component_appid: str, authorizer_appid: str) -> str:
        """The refresh token WeChat currently accepts for this authorizer."""
        with self._lock:
            return self._components[component_appid].authorizers[authorizer_appid].refresh_token

    def revoke_refresh_token(self, authorizer_appid: str, *, component_appid: str | None = None) -> str:
        """The refresh token the platform holds stops working (61023) — as when the account
        authorized again elsewhere — for every platform (or ``component_appid``) it authorizes.
        WeChat then knows a new one, which only ``api_get_authorizer_list`` (or a new
        authorization) reveals; returns it (the last one when several platforms match)."""
        with self._lock:
            now = self._clock()
            replaced: str | None = None
            for component in self._components.values():
                authorizer = component.authorizers.get(authorizer_appid)
                if authorizer is not None and component_appid in (None, component.appid):
                    authorizer.refresh_token = replaced = self._new_refresh_token(now)
            if replaced is None:
                raise KeyError(f"{authorizer_appid} authorizes no such platform")
            return replaced

    # --- tokens

    def component_token_state(self, component_appid: str, token: str) -> TokenState:
        """What WeChat would say of this component_access_token now (42001 expired, 40001 invalid)."""
        with self._lock:
            record = self._component_index.get(token)
            if record is None or record.appid != component_appid:
                return "invalid"
            return record.state(self._clock())

    def current_component_token(self, component_appid: str) -> str | None:
        with self._lock:
            return _newest_valid(self._components[component_appid].tokens, self._clock())

    def authorizer_token_state(self, authorizer_appid: str, token: str) -> TokenState:
        """What WeChat would say of this authorizer_access_token on any API now."""
        with self._lock:
            record = self._index.get(token)
            if record is None or record.appid != authorizer_appid or record.api != "authorizer_token":
                return "invalid"
            return record.state(self._clock())

    def is_authorizer_token_valid(self, authorizer_appid: str, token: str) -> bool:
        return self.authorizer_token_state(authorizer_appid, token) == "valid"

    def current_authorizer_token(self, component_appid: str, authorizer_appid: str) -> str | None:
        with self._lock:
            authorizer = self._components[component_appid].authorizers[authorizer_appid]
            return _newest_valid(authorizer.tokens, self._clock())

    # --- quotas

    def set_daily_quota(self, limit: int, endpoint: QuotaEndpoint) -> None:
        """Calls per day (Beijing time) before 45009: per component for ``component_token``,
        per authorizer for ``authorizer_token``."""
        if endpoint not in self._quota:
            raise ValueError(f"no daily quota for {endpoint!r}")
        with self._lock:
            self._quota[endpoint] = limit

    def quota_used(self, appid: str, endpoint: QuotaEndpoint) -> int:
        """Successful calls today of ``appid`` (the component or the authorizer)."""
        with self._lock:
            return self._used.get((endpoint, appid, beijing_day(self._clock())), 0)

    def reset_quota(self, appid: str) -> None:
        """Forget today's usage of one component or authorizer (what the clear_quota APIs do)."""
        with self._lock:
            self._used = {k: v for k, v in self._used.items() if k[1] != appid}

    # --- request handling (called by the stand-in, under its lock)

    def answer(
        self, endpoint: ComponentEndpoint, method: str, params: dict[str, Any], body: BodyState
    ) -> dict[str, Any]:
        """The JSON WeChat answers; raises :class:`WeChatError` for an error answer."""
        # Every component API is "POST JSON": the documented request is a JSON body.
        require_post_json(method, body)
        handlers: dict[ComponentEndpoint, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "start_push_ticket": self._answer_start_push_ticket,
            "component_token": self._answer_component_token,
            "preauthcode": self._answer_preauthcode,
            "query_auth": self._answer_query_auth,
            "authorizer_token": self._answer_authorizer_token,
            "get_authorizer_list": self._answer_get_authorizer_list,
            "component_clear_quota": self._answer_clear_quota,
        }
        return handlers[endpoint](params)

    def _answer_start_push_ticket(self, params: dict[str, Any]) -> dict[str, Any]:
        # startPushTicket (openApi/OpenApiDoc/ticket-token/startPushTicket.html): 40013 for an
        # unknown appid; errmsg "ok" when pushes were off, "in a normal state" when already on.
        component = self._by_secret(params, "component_secret", unknown=40013)
        was_on, component.pushing = component.pushing, True
        component.pushes.append(self._push_ticket(component))
        return {"errcode": 0, "errmsg": "in a normal state" if was_on else "ok"}

    def _answer_component_token(self, params: dict[str, Any]) -> dict[str, Any]:
        # api_component_token (Third-party_Platforms/2.0/api/ThirdParty/token/component_access_token.html)
        # lists 61011 "invalid component", 40125 "invalid appsecret", 61005 "component ticket is
        # expired", 61006 "component ticket is invalid" and 45009.
        component = self._by_secret(params, "component_appsecret", unknown=61011)
        now = self._clock()
        ticket = params.get("component_verify_ticket")
        expires_at = component.tickets.get(ticket) if isinstance(ticket, str) else None
        if expires_at is None:
            raise WeChatError(61006)
        if now >= expires_at:
            raise WeChatError(61005)
        self._count(component.appid, "component_token", now)
        retire_previous(component.tokens, now, REPLACED_TOKEN_GRACE)
        token = self._mint(component.appid, "component_token", component.tokens, self._component_index, now)
        return {"component_access_token": token.value, "expires_in": COMPONENT_TOKEN_TTL}

    def _answer_preauthcode(self, params: dict[str, Any]) -> dict[str, Any]:
        # api_create_preauthcode (Third-party_Platforms/2.0/api/ThirdParty/token/pre_auth_code.html).
        component = self._authenticate(params)
        code = self._new_pre_auth_code(component, self._clock())
        return {"pre_auth_code": code, "expires_in": PRE_AUTH_CODE_TTL}

    def _answer_query_auth(self, params: dict[str, Any]) -> dict[str, Any]:
        # api_query_auth (Third-party_Platforms/2.0/api/ThirdParty/token/authorization_info.html).
        # An expired code gets 61010 "code is expired" (WeChat's answers on its forum).
        component = self._authenticate(params)
        now = self._clock()
        value = params.get("authorization_code")
        code = self._codes.get(value) if isinstance(value, str) else None
        authorizer = component.authorizers.get(code.authorizer_appid) if code is not None else None
        if code is None or code.component_appid != component.appid or authorizer is None:
            raise WeChatError(61009)
        if now >= code.expires_at:
            raise WeChatError(61010)
        token = self._mint_authorizer_token(authorizer, now)
        return {
            "authorization_info": {
                "authorizer_appid": authorizer.appid,
                "authorizer_access_token": token.value,
                "expires_in": AUTHORIZER_TOKEN_TTL,
                "authorizer_refresh_token": authorizer.refresh_token,
                "func_info": [{"funcscope_category": {"id": i}} for i in authorizer.func_info],
            }
        }

    def _answer_authorizer_token(self, params: dict[str, Any]) -> dict[str, Any]:
        # api_authorizer_token (Third-party_Platforms/2.0/api/ThirdParty/token/api_authorizer_token.html);
        # a refresh token WeChat does not accept gets 61023 "refresh_token is invalid" (real answers
        # quoted in binarywang/WxJava#1533 and overtrue/laravel-wechat#406).
        component = self._authenticate(params)
        appid, presented = params.get("authorizer_appid"), params.get("authorizer_refresh_token")
        if not isinstance(appid, str) or not appid:
            raise WeChatError(41002)
        authorizer = component.authorizers.get(appid)
        if (
            authorizer is None
            or not isinstance(presented, str)
            or not secrets.compare_digest(presented.encode(), authorizer.refresh_token.encode())
        ):
            raise WeChatError(61023)
        now = self._clock()
        self._count(authorizer.appid, "authorizer_token", now)
        if self.rotate_refresh_tokens:
            authorizer.refresh_token = self._new_refresh_token(now)
        token = self._mint_authorizer_token(authorizer, now)
        return {
            "authorizer_access_token": token.value,
            "expires_in": AUTHORIZER_TOKEN_TTL,
            "authorizer_refresh_token": authorizer.refresh_token,
        }

    def _answer_get_authorizer_list(self, params: dict[str, Any]) -> dict[str, Any]:
        # api_get_authorizer_list (Third-party_Platforms/2.0/api/ThirdParty/Account_Authorization/
        # api_get_authorizer_list.html): "count 拉取数量,最大为 500"; getAuthorizerList lists 40170
        # "args count exceed count limit"
        # (openApi/OpenApiDoc/authorization-management/getAuthorizerList.html).
        component = self._authenticate(params)
        offset, count = _int_field(params, "offset"), _int_field(params, "count")
        if offset < 0 or count < 0:
            raise WeChatError(40097)
        if count > AUTHORIZER_LIST_MAX:
            raise WeChatError(40170)
        page = itertools.islice(component.authorizers.values(), offset, offset + count)
        return {
            "total_count": len(component.authorizers),
            "list": [
                {"authorizer_appid": a.appid, "refresh_token": a.refresh_token, "auth_time": a.auth_time}
                for a in page
            ],
        }

    def _answer_clear_quota(self, params: dict[str, Any]) -> dict[str, Any]:
        # clearComponentQuotaByAppSecret (openApi/OpenApiDoc/openapi/clearComponentQuotaByAppSecret.html):
        # without appid it clears the platform's own quota, with one an authorized account's
        # ("appid参数需要是已授权的账号"; 61003 otherwise); 10 clears a month, then 48006.
        component = self._by_secret(params, "appsecret", unknown=40013)
        target = params.get("appid")
        account = component.appid
        if target not in (None, ""):
            if not isinstance(target, str) or target not in component.authorizers:
                raise WeChatError(61003)
            account = target
        month = beijing_month(self._clock())
        if self._clears.get((account, month), 0) >= CLEAR_QUOTA_MONTHLY_LIMIT:
            raise WeChatError(48006)
        self._clears[(account, month)] = self._clears.get((account, month), 0) + 1
        self.reset_quota(account)
        return {"errcode": 0, "errmsg": "ok"}

    # --- the rules' building blocks

    def _by_secret(self, params: dict[str, Any], secret_field: str, *, unknown: int) -> _Component:
        appid, secret = params.get("component_appid"), params.get(secret_field)
        if not isinstance(appid, str) or not appid:
            raise WeChatError(41002)
        if not isinstance(secret, str) or not secret:
            raise WeChatError(41004)
        component = self._components.get(appid)
        if component is None:
            raise WeChatError(unknown)
        if not secrets.compare_digest(secret.encode(), component.secret.encode()):
            raise WeChatError(40125)
        return component

    def _authenticate(self, params: dict[str, Any]) -> _Component:
        """The platform whose valid component_access_token the query carries (the older pages
        name it ``component_access_token``, the openApi pages ``access_token``)."""
        value = params.get("component_access_token") or params.get("access_token")
        token = live_token(self._component_index, value, self._clock())
        appid = params.get("component_appid")
        if not isinstance(appid, str) or not appid:
            raise WeChatError(41002)
        if appid != token.appid:
            raise WeChatError(40013)
        return self._components[token.appid]

    def _count(self, appid: str, endpoint: QuotaEndpoint, now: float) -> None:
        key = (endpoint, appid, beijing_day(now))
        if self._used.get(key, 0) >= self._quota[endpoint]:
            raise WeChatError(45009)
        self._used[key] = self._used.get(key, 0) + 1

    def _mint(
        self, appid: str, api: str, tokens: list[IssuedToken], index: dict[str, IssuedToken], now: float
    ) -> IssuedToken:
        # Real tokens are ~136 characters of [A-Za-z0-9_-]; 102 random bytes make 136.
        ttl = COMPONENT_TOKEN_TTL if api == "component_token" else AUTHORIZER_TOKEN_TTL
        token = IssuedToken(secrets.token_urlsafe(102), appid, api, next(self._seq), now, now + ttl)
        for dead in [t for t in tokens if t.state(now) == "invalid"]:
            tokens.remove(dead)
            index.pop(dead.value, None)
        tokens.append(token)
        index[token.value] = token
        self._issued.append(token.value)
        return token

    def _mint_authorizer_token(self, authorizer: _Authorizer, now: float) -> IssuedToken:
        retire_previous(authorizer.tokens, now, REPLACED_TOKEN_GRACE)
        return self._mint(authorizer.appid, "authorizer_token", authorizer.tokens, self._index, now)

    def _new_authorizer(self, appid: str, func_info: Iterable[int], now: float) -> _Authorizer:
        return _Authorizer(appid, self._new_refresh_token(now), int(now), tuple(func_info))

    def _new_refresh_token(self, now: float) -> str:
        value = f"refreshtoken@@@{secrets.token_urlsafe(32)}"
        self._issued.append(value)
        return value

    def _new_pre_auth_code(self, component: _Component, now: float) -> str:
        code = f"preauthcode@@@{secrets.token_urlsafe(48)}"
        self._pre_auth_codes[code] = _Code(component.appid, "", now + PRE_AUTH_CODE_TTL)
        return code

    def _pre_auth_code_valid(self, component: _Component, code: str, now: float) -> bool:
        known = self._pre_auth_codes.get(code)
        return known is not None and known.component_appid == component.appid and now < known.expires_at

    def _push_ticket(self, component: _Component) -> ComponentPush:
        now = self._clock()
        # Tickets expired a day ago can no longer be told from unknown ones by anybody.
        for old in [t for t, expires in component.tickets.items() if expires < now - 86400]:
            del component.tickets[old]
        ticket = f"ticket@@@{secrets.token_urlsafe(64)}"
        component.tickets[ticket] = now + VERIFY_TICKET_TTL
        self._issued.append(ticket)
        xml = self._event_xml(component, "component_verify_ticket", now, ComponentVerifyTicket=ticket)
        return replace(self._push(component, "component_verify_ticket", xml, now), ticket=ticket)

    def _authorization_push(
        self, component: _Component, authorizer_appid: str, info_type: str, pre_auth_code: str, now: float
    ) -> ComponentPush:
        # authorize_event.html: AuthorizationCodeExpiredTime is a Unix time in the pushes
        # WeChat sends (a forum thread quotes "<AuthorizationCodeExpiredTime>1608190715").
        code = f"queryauthcode@@@{secrets.token_urlsafe(64)}"
        expires_at = now + AUTHORIZATION_CODE_TTL
        self._codes[code] = _Code(component.appid, authorizer_appid, expires_at)
        xml = self._event_xml(
            component,
            info_type,
            now,
            AuthorizerAppid=authorizer_appid,
            AuthorizationCode=code,
            AuthorizationCodeExpiredTime=int(expires_at),
            PreAuthCode=pre_auth_code,
        )
        return replace(self._push(component, info_type, xml, now), authorization_code=code)

    @staticmethod
    def _event_xml(component: _Component, info_type: str, now: float, **fields: str | int) -> str:
        parts = [
            f"<AppId><![CDATA[{component.appid}]]></AppId>",
            f"<CreateTime>{int(now)}</CreateTime>",
            f"<InfoType><![CDATA[{info_type}]]></InfoType>",
        ]
        for name, value in fields.items():
            text = str(value) if isinstance(value, int) else f"<![CDATA[{value}]]>"
            parts.append(f"<{name}>{text}</{name}>")
        return "<xml>" + "".join(parts) + "</xml>"

    def _push(self, component: _Component, info_type: str, xml: str, now: float) -> ComponentPush:
        from devtools.wechat.player import WeChatPlayer

        player = WeChatPlayer(component.appid, component.token, component.encoding_aes_key)
        query, body = player.component_push(xml, timestamp=int(now))
        return ComponentPush(info_type, query, body, xml)


def is_component_endpoint(endpoint: str) -> TypeIs[ComponentEndpoint]:
    return endpoint in COMPONENT_ENDPOINTS


def call_appid(params: dict[str, Any]) -> str | None:
    """The appid a component request is about (what a fault's ``appid`` matches): the
    authorizer's when the request names one, else the platform's."""
    for key in ("authorizer_appid", "appid", "component_appid"):
        value = params.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _newest_valid(tokens: list[IssuedToken], now: float) -> str | None:
    alive = [t for t in tokens if t.state(now) == "valid"]
    return max(alive, key=lambda t: t.seq).value if alive else None


def _int_field(params: dict[str, Any], name: str) -> int:
    """A JSON number field that must be an integer (47001 otherwise)."""
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WeChatError(47001)
    return value
