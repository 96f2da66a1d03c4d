"""Any number of concurrent refreshes of one app make one WeChat call, across processes."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.wechat import APPID_A
from wxtoken.apps import AppsSource
from wxtoken.config import Settings
from wxtoken.deadline import Deadline
from wxtoken.refresh import RefreshRequest, Trigger
from wxtoken.refresh.wiring import build_refresher

CALLERS = 200


def _mixed_requests(requested_at: float, seen_token: str, count: int) -> list[RefreshRequest]:
    """Schedule, forced and compare-and-refresh requests, all made at the same moment."""
    kinds = [
        RefreshRequest(Trigger.SCHEDULED, requested_at, (APPID_A,)),
        RefreshRequest(Trigger.FORCE, requested_at, (APPID_A,)),
        RefreshRequest(Trigger.COMPARE, requested_at, (APPID_A,), invalid_token=seen_token),
        RefreshRequest(Trigger.GUARD, requested_at, (APPID_A,)),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


def refresh_concurrently(env: dict[str, str], requests: list[RefreshRequest]) -> list[dict]:
    """One process's share: its own Refresher (own clients, own pools), one thread a caller."""
    os.environ.update(env)
    settings = Settings.from_env(env)
    refresher = build_refresher(settings, apps=AppsSource(settings.apps_secret_id, max_age=60))
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(lambda r: refresher.run(r, Deadline.after(60)).as_dict(), requests))


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 4], ids=["threads", "4-processes"])
def test_200_concurrent_refreshes_make_one_wechat_call(system, processes):
    # Given a stored token that every caller has just seen rejected
    first = system.refresher().run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))
    assert APPID_A in first.refreshed
    seen = system.stored(APPID_A).value
    calls_before = system.wechat.token_calls(APPID_A)
    # Callers run on the real clock (the system's fake clock starts at fixture time).
    requests = _mixed_requests(time.time(), seen, CALLERS)
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "WECHAT_", "TOKEN_", "REDIS_"))}
    env["APPS_SECRET_CACHE_SECONDS"] = "60"

    # When 200 callers ask for a refresh at once, spread over threads and processes
    shares = [requests[i::processes] for i in range(processes)]
    if processes == 1:
        reports = refresh_concurrently(env, shares[0])
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            reports = [
                r for share in pool.starmap(refresh_concurrently, [(env, s) for s in shares]) for r in share
            ]

    # Then WeChat saw exactly one token call, and every caller sees the new token
    assert system.wechat.token_calls(APPID_A) - calls_before == 1
    assert len(reports) == CALLERS
    assert all(report["failed"] == [] for report in reports)
    assert sum(len(report["refreshed"]) for report in reports) == 1
    assert system.stored(APPID_A).value != seen
