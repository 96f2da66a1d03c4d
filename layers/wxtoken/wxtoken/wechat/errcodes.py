"""WeChat's numeric error codes, mapped in one table to wxtoken's error types.

Each entry says what the user should do; the messages end up in the refresh result, the
logs and the alarm, so they are written for the person on call.
Source: WeChat's global return codes page (公众号 全局返回码说明) and the getAccessToken /
getStableAccessToken / getticket API pages; the 61xxx codes from the Open Platform's
third-party platform pages (api_component_token, api_query_auth, api_authorizer_token) and,
for 61023, WeChat's answers quoted in binarywang/WxJava#1533.
"""

from __future__ import annotations

import re
from typing import Final

from wxtoken.errors import (
    ComponentTicketError,
    InvalidCredentialError,
    IPNotAllowlistedError,
    QuotaExceededError,
    RefreshTokenRejectedError,
    RetryableWeChatError,
    TokenRejectedError,
    WeChatAPIError,
)

# On API calls these three mean "the access_token you sent is no good".
TOKEN_REJECTED_CODES: Final = frozenset({40001, 40014, 42001})

_TABLE: Final[dict[int, tuple[type[WeChatAPIError], str]]] = {
    -1: (RetryableWeChatError, "WeChat is busy; wxtoken retries with backoff"),
    40001: (
        InvalidCredentialError,
        "the AppSecret is wrong or not this app's: copy it again from the WeChat console "
        "(设置与开发 → 基本配置) into the apps secret",
    ),
    40002: (InvalidCredentialError, "invalid grant_type: a wxtoken bug, please report it"),
    40013: (InvalidCredentialError, "the appid is not valid: check the keys of the apps secret"),
    40125: (
        InvalidCredentialError,
        "the AppSecret is not valid: reset it in the WeChat console if needed and put the "
        "new one in the apps secret (docs/runbook.md: rotate an AppSecret)",
    ),
    40164: (
        IPNotAllowlistedError,
        "add this function's egress IP to the IP allow-list (IP白名单) in the WeChat console; "
        "with EgressMode=nat-instance or create-nat it is the stack output EgressIp (docs/egress.md)",
    ),
    41002: (InvalidCredentialError, "appid missing: check the apps secret"),
    41004: (InvalidCredentialError, "AppSecret missing: add app_secret for this app in the apps secret"),
    45009: (
        QuotaExceededError,
        "the daily quota of this API is used up: it resets at midnight Beijing time, or an "
        "admin can reset it once a month with /cgi-bin/clear_quota (docs/runbook.md)",
    ),
    45011: (QuotaExceededError, "API calls too frequent: slow down and retry in a minute"),
    89503: (
        IPNotAllowlistedError,
        "this call's IP needs an administrator's confirmation: confirm it in the WeChat "
        "console's security notice, or add the egress IP to the allow-list",
    ),
    89506: (
        IPNotAllowlistedError,
        "an administrator refused calls from this IP: it is blocked for 1 hour; add it to the "
        "allow-list if the calls are yours",
    ),
    89507: (
        IPNotAllowlistedError,
        "an administrator refused calls from this IP: it is blocked for 15 minutes; add it to "
        "the allow-list if the calls are yours",
    ),
    48006: (
        QuotaExceededError,
        "this account's quota resets (clear_quota) are used up for the month: wait for the "
        "daily reset at midnight Beijing time",
    ),
    61003: (InvalidCredentialError, "this account has not authorized the third-party platform"),
    61005: (
        ComponentTicketError,
        "the component_verify_ticket has expired (12 h): WeChat pushes one every 10 minutes to "
        "the platform's 授权事件接收URL, which must be https://<api>/open/<component_appid>/events; "
        "wxtoken asks WeChat to restart pushes (api_start_push_ticket) (docs/open-platform.md)",
    ),
    61006: (
        ComponentTicketError,
        "the component_verify_ticket is not valid: check that the 授权事件接收URL and the "
        "platform's token / encoding_aes_key in the apps secret are this platform's",
    ),
    61009: (
        InvalidCredentialError,
        "the authorization code is not valid (already used, or another platform's)",
    ),
    61010: (
        InvalidCredentialError,
        "the authorization code has expired: the account's next authorization (or the daily "
        "import from api_get_authorizer_list) brings its refresh token",
    ),
    61011: (
        InvalidCredentialError,
        "the component appid is not a third-party platform: check the apps secret",
    ),
    61023: (
        RefreshTokenRejectedError,
        "WeChat refused the authorizer_refresh_token: wxtoken looks for the current one in "
        "api_get_authorizer_list; if the account is not there it must authorize the platform again",
    ),
}

_SENSITIVE = re.compile(
    r"(?i)(secret|access_token|ticket|appsecret|refresh_token|authorization_code)=[^&\s]+"
)


def error_for(errcode: int, errmsg: str, *, on_token_api: bool) -> WeChatAPIError:
    """The typed error for a non-zero ``errcode``.

    ``on_token_api``: 40001 from the token endpoint means a bad AppSecret; from any other
    endpoint it means the access_token was rejected (the caller should compare-and-refresh).
    """
    errmsg = scrub(errmsg)
    if not on_token_api and errcode in TOKEN_REJECTED_CODES:
        return TokenRejectedError(
            errcode, errmsg, "the access_token was rejected: ask the refresher to compare-and-refresh"
        )
    kind, hint = _TABLE.get(errcode, (WeChatAPIError, "see WeChat's global return code list"))
    if kind is IPNotAllowlistedError:
        ip = _ip_in(errmsg)
        if ip:
            hint = f"egress IP {ip}: {hint}"
    return kind(errcode, errmsg, hint)


def scrub(text: str) -> str:
    """Mask credentials that WeChat or a library may echo back (query strings, mostly)."""
    return _SENSITIVE.sub(lambda m: f"{m.group(1)}=***", text)


def _ip_in(errmsg: str) -> str | None:
    match = re.search(r"invalid ip ([0-9a-fA-F:.]+)", errmsg)
    return match.group(1) if match else None
