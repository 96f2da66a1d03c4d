"""WeChat Open Platform's component endpoints: a third-party platform's own token, and its
authorizers' tokens.

Each call is one POST under :class:`~wxtoken.wechat.api.WeChatAPI`'s retry policy and
deadline (``WeChatAPI.post``). The calls that hand out a credential (``api_component_token``,
``api_query_auth``, ``api_authorizer_token``) are replayed once at most after an ambiguous
failure, like ``/cgi-bin/token``: WeChat may have minted, and the refresher's mint intent
covers that. Sources (open.weixin.qq.com, Third-party_Platforms/2.0/api/ThirdParty/token/):
component_access_token.html, authorization_info.html, api_authorizer_token.html,
Account_Authorization/api_get_authorizer_list.html, and openApi's startPushTicket.html.

Secrets (the component_appsecret, tokens, refresh tokens, authorization codes) travel in the
JSON body or the query string; no error built here repeats either (see ``WeChatAPI``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wxtoken.deadline import Deadline
from wxtoken.errors import WeChatTransportError
from wxtoken.frozen import Frozen
from wxtoken.wechat.api import Grant, WeChatAPI, grant_in

COMPONENT = "/cgi-bin/component"
COMPONENT_TOKEN_PATH = f"{COMPONENT}/api_component_token"
START_PUSH_TICKET_PATH = f"{COMPONENT}/api_start_push_ticket"
QUERY_AUTH_PATH = f"{COMPONENT}/api_query_auth"
AUTHORIZER_TOKEN_PATH = f"{COMPONENT}/api_authorizer_token"
AUTHORIZER_LIST_PATH = f"{COMPONENT}/api_get_authorizer_list"
# api_get_authorizer_list: "count 拉取数量，最大为 500".
AUTHORIZER_LIST_PAGE = 500


class AuthorizerGrant(Frozen):
    """An authorizer's new access token and the refresh token to use next time (WeChat may
    hand back the same one or a new one; the one returned is the one that works)."""

    _hidden = frozenset({"refresh_token"})

    appid: str
    grant: Grant
    refresh_token: str


class ListedAuthorizer(Frozen):
    """One entry of ``api_get_authorizer_list``: an account that authorized the platform."""

    _hidden = frozenset({"refresh_token"})

    appid: str
    refresh_token: str
    auth_time: int = 0


class ComponentAPI:
    """The component endpoints for one platform's calls, on a shared :class:`WeChatAPI`."""

    def __init__(self, api: WeChatAPI) -> None:
        self._api = api

    def component_token(
        self, component_appid: str, component_secret: str, ticket: str, *, deadline: Deadline
    ) -> Grant:
        """A new component_access_token (7200 s). 61005/61006 raise ``ComponentTicketError``."""
        body = {
            "component_appid": component_appid,
            "component_appsecret": component_secret,
            "component_verify_ticket": ticket,
        }
        payload = self._api.post(COMPONENT_TOKEN_PATH, body, deadline=deadline, mints=True)
        return grant_in(payload, "component_access_token", COMPONENT_TOKEN_PATH)

    def start_push_ticket(self, component_appid: str, component_secret: str, *, deadline: Deadline) -> None:
        """Ask WeChat to push component_verify_ticket again (every 10 minutes from now)."""
        body = {"component_appid": component_appid, "component_secret": component_secret}
        self._api.post(START_PUSH_TICKET_PATH, body, deadline=deadline)

    def query_auth(
        self, component_appid: str, component_token: str, code: str, *, deadline: Deadline
    ) -> AuthorizerGrant:
        """Trade an authorization code (from an ``authorized``/``updateauthorized`` push) for
        the authorizer's token and refresh token. The code works once."""
        payload = self._api.post(
            QUERY_AUTH_PATH,
            {"component_appid": component_appid, "authorization_code": code},
            params={"component_access_token": component_token},
            deadline=deadline,
            mints=True,
        )
        info = payload.get("authorization_info")
        if not isinstance(info, dict):
            raise WeChatTransportError(f"WeChat {QUERY_AUTH_PATH} answered without authorization_info")
        appid = info.get("authorizer_appid")
        if not isinstance(appid, str) or not appid:
            raise WeChatTransportError(f"WeChat {QUERY_AUTH_PATH} answered without authorizer_appid")
        return AuthorizerGrant(
            appid,
            grant_in(info, "authorizer_access_token", QUERY_AUTH_PATH, answer=payload),
            _refresh_token(info, QUERY_AUTH_PATH),
        )

    def authorizer_token(
        self,
        component_appid: str,
        component_token: str,
        authorizer_appid: str,
        refresh_token: str,
        *,
        deadline: Deadline,
    ) -> AuthorizerGrant:
        """A new access token for the authorizer. 61023 raises ``RefreshTokenRejectedError``."""
        payload = self._api.post(
            AUTHORIZER_TOKEN_PATH,
            {
                "component_appid": component_appid,
                "authorizer_appid": authorizer_appid,
                "authorizer_refresh_token": refresh_token,
            },
            params={"component_access_token": component_token},
            deadline=deadline,
            mints=True,
        )
        return AuthorizerGrant(
            authorizer_appid,
            grant_in(payload, "authorizer_access_token", AUTHORIZER_TOKEN_PATH),
            _refresh_token(payload, AUTHORIZER_TOKEN_PATH),
        )

    def authorizer_page(
        self, component_appid: str, component_token: str, offset: int, *, deadline: Deadline
    ) -> tuple[int, int, list[ListedAuthorizer]]:
        """One page of ``api_get_authorizer_list`` (500 accounts): ``(total_count, entries
        read, usable entries)``. An entry without a refresh token (WeChat sometimes lists one
        so) is left out of the page but counted as read, so that paging never drifts."""
        payload = self._api.post(
            AUTHORIZER_LIST_PATH,
            {"component_appid": component_appid, "offset": offset, "count": AUTHORIZER_LIST_PAGE},
            params={"component_access_token": component_token},
            deadline=deadline,
        )
        total, entries = payload.get("total_count"), payload.get("list")
        if not isinstance(total, int) or not isinstance(entries, list):
            raise WeChatTransportError(f"WeChat {AUTHORIZER_LIST_PATH} answered without total_count/list")
        page = [
            ListedAuthorizer(
                entry["authorizer_appid"], entry["refresh_token"], int(entry.get("auth_time") or 0)
            )
            for entry in entries
            if isinstance(entry, dict)
            and isinstance(entry.get("authorizer_appid"), str)
            and isinstance(entry.get("refresh_token"), str)
            and entry["refresh_token"]
        ]
        return total, len(entries), page

    def authorizers(
        self, component_appid: str, component_token: str, *, deadline: Deadline, start: int = 0
    ) -> Iterator[tuple[int, int, list[ListedAuthorizer]]]:
        """Every page from ``start`` on, as ``(offset after the page, total_count, page)``."""
        offset = start
        while True:
            total, read, page = self.authorizer_page(
                component_appid, component_token, offset, deadline=deadline
            )
            offset += read
            yield offset, total, page
            if read == 0 or offset >= total:
                return


def _refresh_token(payload: dict[str, Any], path: str) -> str:
    value = payload.get("authorizer_refresh_token")
    if not isinstance(value, str) or not value:
        raise WeChatTransportError(f"WeChat {path} answered without authorizer_refresh_token")
    return value
