"""Builds the long-lived objects of a container from :class:`Settings`, once.

Kept apart from the logic so tests build the same objects around a stand-in and a clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wxtoken.apps import AppsSource
from wxtoken.config import Settings
from wxtoken.refresh import Refresher
from wxtoken.store import open_store
from wxtoken.wechat.api import WeChatAPI


def build_wechat_api(settings: Settings) -> WeChatAPI:
    return WeChatAPI(
        settings.wechat_api_base,
        connect_timeout=settings.http_connect_timeout,
        read_timeout=settings.http_read_timeout,
        max_attempts=settings.http_max_attempts,
    )


def build_refresher(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    apps: AppsSource | None = None,
) -> Refresher:
    return Refresher(
        settings=settings,
        store=open_store(settings, clock=clock),
        wechat=build_wechat_api(settings),
        apps=apps or AppsSource(settings.apps_secret_id, max_age=settings.secret_cache_seconds),
        clock=clock,
        sleep=sleep,
    )
