"""What the WeChat stand-in's token models share: an issued token and its lifetime, the
replacement rule, the Beijing day quotas count in, and the error a request is answered with.

Standard library only, like the stand-in itself.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

# WeChat's quotas reset at midnight Beijing time (UTC+8).
_BEIJING_OFFSET: Final = 8 * 3600

TokenState = Literal["valid", "expired", "invalid"]
# What a request body was: absent/empty, a JSON object, or unreadable / not a JSON object.
BodyState = Literal["missing", "json", "bad"]


@dataclass(slots=True)
class IssuedToken:
    """A credential WeChat issued: an access token of an app, a component or an authorizer."""

    value: str
    appid: str
    api: str
    seq: int
    issued_at: float
    expires_at: float
    # When it stopped being accepted because a newer token replaced it (40001 from then on).
    dies_at: float = math.inf

    def state(self, now: float) -> TokenState:
        if self.dies_at < self.expires_at and now >= self.dies_at:
            return "invalid"
        if now >= self.expires_at:
            return "expired"
        return "valid"


def retire_previous(tokens: list[IssuedToken], now: float, overlap: float) -> None:
    """Apply getAccessToken's replacement rule before a new token joins ``tokens`` (oldest
    first): the newest one keeps working ``overlap`` more seconds, every older one dies now.

    "重复获取将导致上次获取的access_token失效" / "公众平台后台会保证在5分钟内,新老access_token都可用"
    (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html).
    """
    for older in tokens[:-1]:
        older.dies_at = min(older.dies_at, now)
    if tokens:
        tokens[-1].dies_at = min(tokens[-1].dies_at, now + overlap)


class WeChatError(Exception):
    """Raised inside request handling to answer a WeChat error at once."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


def require_post_json(method: str, body: BodyState) -> None:
    """WeChat's answers to a "POST JSON" API called otherwise: 43002 not POST, 44002 no body,
    47001 a body that is not a JSON object (全局返回码)."""
    if method != "POST":
        raise WeChatError(43002)
    if body == "missing":
        raise WeChatError(44002)
    if body == "bad":
        raise WeChatError(47001)


def live_token(index: Mapping[str, IssuedToken], value: object, now: float) -> IssuedToken:
    """The token ``value`` names in ``index``, as WeChat judges a request's token: none given
    41001, unknown or retired 40001, expired 42001 (全局返回码)."""
    if not isinstance(value, str) or not value:
        raise WeChatError(41001)
    token = index.get(value)
    state = token.state(now) if token else "invalid"
    if token is None or state == "invalid":
        raise WeChatError(40001)
    if state == "expired":
        raise WeChatError(42001)
    return token


def beijing_day(now: float) -> int:
    """The day number in Beijing time (UTC+8), when WeChat's daily limits reset."""
    return int((now + _BEIJING_OFFSET) // 86400)


def beijing_month(now: float) -> int:
    """A month number (year * 12 + month - 1) in Beijing time, for monthly limits."""
    local = dt.datetime.fromtimestamp(now, dt.timezone(dt.timedelta(seconds=_BEIJING_OFFSET)))
    return local.year * 12 + local.month - 1
