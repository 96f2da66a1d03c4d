"""Store faults during a refresh: the old token survives and the error is typed and clear."""

from __future__ import annotations

import pytest

from devtools.wechat.standin import Callback
from tests.fixtures.aws import inject_error, throttle
from tests.fixtures.wechat import APPID_A, APPID_B
from wxtoken.deadline import Deadline
from wxtoken.refresh import Refresher, RefreshRequest, Trigger


def force(refresher: Refresher, system, appid: str):
    system.clock.advance(1)
    return refresher.run(RefreshRequest(Trigger.FORCE, system.clock(), (appid,)), Deadline.after(30))


@pytest.mark.parametrize("system", ["redis"], indirect=True)
def test_redis_killed_during_a_refresh_keeps_the_old_token(system, redis_server):
    system.refresher().run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))
    before = system.stored(APPID_B)
    refresher = system.refresher(REFRESH_LEASE_SECONDS="2")
    # WeChat answers, but Redis dies between the fetch and the write (and the lease it
    # held survives the restart until its TTL)
    system.wechat.fail_next("token", Callback(redis_server.kill), appid=APPID_B)

    report = force(refresher, system, APPID_B)

    assert report.failed[0]["appid"] == APPID_B
    assert report.failed[0]["error"].startswith("StoreError")
    assert redis_server.password not in report.failed[0]["error"]
    redis_server.start()
    assert system.stored(APPID_B) == before
    # and the next run (Lambda's retry) stores a new token
    assert force(refresher, system, APPID_B).refreshed == [APPID_B]


@pytest.mark.parametrize("system", ["ssm"], indirect=True)
def test_ssm_throttling_is_retried_by_botocore_and_the_refresh_succeeds(system):
    refresher, store = system.ssm_refresher()
    throttle(store.client, "PutParameter", times=2)

    report = force(refresher, system, APPID_B)

    assert report.refreshed == [APPID_B]


@pytest.mark.parametrize("system", ["ssm"], indirect=True)
def test_ssm_throttling_that_outlasts_retries_fails_clearly_and_keeps_the_token(system):
    refresher, store = system.ssm_refresher()
    refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock(), (APPID_B,)), Deadline.after(30))
    before = system.stored(APPID_B)
    throttle(store.client, "GetParameter", times=50)

    report = force(refresher, system, APPID_B)

    assert report.failed[0]["error"].startswith("StoreError")
    assert "ThrottlingException" in report.failed[0]["error"]
    assert system.stored(APPID_B) == before


@pytest.mark.parametrize("system", ["ssm"], indirect=True)
def test_ssm_access_denied_names_the_missing_permission_and_other_apps_go_on(system):
    refresher, store = system.ssm_refresher()
    inject_error(store.client, "PutParameter", 1, code="AccessDeniedException")

    system.clock.advance(1)
    report = refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))

    assert len(report.failed) == 1
    assert "AccessDeniedException" in report.failed[0]["error"]
    assert len(report.refreshed) == 1
    assert {report.failed[0]["appid"], *report.refreshed} == {APPID_A, APPID_B}
