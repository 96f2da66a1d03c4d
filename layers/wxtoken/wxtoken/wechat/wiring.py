"""Builds WeChat's API client from :class:`Settings`: readers and the writer both use it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from wxtoken.config import Settings
from wxtoken.errors import ConfigError
from wxtoken.secret_values import read_secret_string
from wxtoken.wechat.api import WeChatAPI


def build_wechat_api(settings: Settings, *, boto3_session: Any = None) -> WeChatAPI:
    """WeChat's API client; through the proxy in ``HTTPS_PROXY_SECRET_ID`` when one is named
    (read in ``boto3_session``, the function's one Session, else boto3's default).

    Raises :class:`ConfigError` when that secret cannot be read or is not an http(s) URL.
    """
    proxy = None
    if settings.https_proxy_secret_id:
        proxy = read_secret_string(
            settings.https_proxy_secret_id,
            what="egress proxy secret",
            error=ConfigError,
            boto3_session=boto3_session,
        ).strip()
        if urlsplit(proxy).scheme not in {"http", "https"} or not urlsplit(proxy).hostname:
            raise ConfigError("the egress proxy secret must hold an http:// or https:// proxy URL")
    return WeChatAPI(
        settings.wechat_api_base,
        connect_timeout=settings.http_connect_timeout,
        read_timeout=settings.http_read_timeout,
        max_attempts=settings.http_max_attempts,
        proxy=proxy,
    )
