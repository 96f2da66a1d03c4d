"""Builds the long-lived objects of a container from :class:`Settings`, once.

Kept apart from the logic so tests build the same objects around a stand-in and a clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wxtoken.apps import AppsSource
from wxtoken.aws import new_session
from wxtoken.config import Settings
from wxtoken.refresh.refresher import Refresher
from wxtoken.store import open_store
from wxtoken.wechat.wiring import build_wechat_api


def build_refresher(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    apps: AppsSource | None = None,
) -> Refresher:
    # One boto3 Session for the apps secret and the store, reading the cut service models
    # (wxtoken.aws; see webhook/wiring.py: each extra Session costs 25 to 45 ms of a cold start).
    session = new_session()
    return Refresher(
        settings=settings,
        store=open_store(settings, clock=clock, boto3_session=session),
        wechat=build_wechat_api(settings, boto3_session=session),
        apps=apps
        or AppsSource(
            settings.required_apps_secret_id, max_age=settings.secret_cache_seconds, boto3_session=session
        ),
        clock=clock,
        sleep=sleep,
    )
