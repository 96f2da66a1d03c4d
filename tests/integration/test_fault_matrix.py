"""The fault matrix (issue 6): scripted faults at every step, on both stores, as deployed.

Each case stores a good token with a scheduled run, then drives the deployed cadence minute by
minute on the FakeClock around the next scheduled run (``REFRESH_PERIOD_SECONDS`` later: the
scheduled run at the mark, the guard every minute), with a fault injected at the mark and —
unless it is one an operator must fix — cleared three minutes later, until the guard has
repaired it (it acts once the token has less than ``GUARD_MARGIN_SECONDS`` left). After every
minute's runs it asserts:

- the stored token is valid at WeChat's stand-in whenever WeChat allowed one (a fault that
  mints tokens it never delivers, a read timeout, retires the stored one; a store that is down
  cannot be read by anyone; a fault never cleared keeps the old token until its own expiry);
- the stored ``fetched_at`` never decreases, and the stored token is never one the stand-in
  issued before the previously stored one;

and at the end: the failure is visible as an EMF metric, and no AppSecret, token, ticket or
Redis password reached stdout, stderr or any log record.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from devtools.wechat.standin import Delay, ErrCode, Fault, HTTPStatus, NonJSON
from tests.fixtures.aws import inject_error, throttle
from tests.fixtures.nat import nat_to
from tests.fixtures.wechat import APPID_A, APPID_B, SECRET_A, SECRET_B
from tests.integration.scenarios import Point, capture_logs, discard_pending_metrics, emf_points
from wxtoken.apps import AppsSource
from wxtoken.config import Settings
from wxtoken.deadline import Deadline
from wxtoken.refresh import Refresher, RefreshRequest, Trigger
from wxtoken.refresh.wiring import build_refresher
from wxtoken.store import open_store
from wxtoken.store.base import Credential, RecordName, TokenStore
from wxtoken.wechat.wiring import build_wechat_api

APPS = (APPID_A, APPID_B)
DEPLOYED = Settings(apps_secret_id="wxtoken/apps")  # the defaults: the template's timings
# the scheduled run (minute 0) finds the token with 7200 s minus the period left; the guard
# replaces a token it could not once the token has less than the margin left
GUARD_REPAIR_MINUTE = (7200 - DEPLOYED.schedule_period_seconds - DEPLOYED.guard_margin_seconds) // 60 + 1
FIRST_MINUTE, LAST_MINUTE = -1, GUARD_REPAIR_MINUTE + 2
FAULT_MINUTE, CLEAR_MINUTE = 0, 3


# --- helpers ----------------------------------------------------------------------------------
def run(refresher: Refresher, system: Any, trigger: Trigger, appids=None, invalid_token=None):
    request = RefreshRequest(trigger, system.clock(), tuple(appids) if appids else None, invalid_token)
    return refresher.run(request, Deadline.after(30))


class Watch:
    """Reads each app's stored token after every minute's runs and checks the invariants."""

    def __init__(self, system: Any) -> None:
        self.system = system
        self.store = system.store()
        self.last: dict[str, Credential] = {}

    def stored(self, appid: str) -> Credential:
        raw = self.store.read(appid, RecordName.ACCESS_TOKEN)
        assert raw, f"{appid}: no token stored"
        return Credential.from_record(RecordName.ACCESS_TOKEN, raw)

    def check(self, minute: int, *, must_be_valid: bool) -> None:
        issued = self.system.wechat.issued()
        for appid in APPS:
            token = self.stored(appid)
            where = f"{appid} at minute {minute}"
            previous = self.last.get(appid)
            if previous is not None:
                assert token.fetched_at >= previous.fetched_at, f"{where}: fetched_at went back"
                assert issued.index(token.value) >= issued.index(previous.value), (
                    f"{where}: replaced by an older token"
                )
            if must_be_valid:
                assert self.system.wechat.is_valid(appid, token.value), f"{where}: no valid token"
            self.last[appid] = token


def settle(wechat: Any) -> None:
    """Wait (real time) until the stand-in has answered every request it received: a delayed
    answer mints its token when the delay ends, and that must happen in this simulated minute,
    as it would at WeChat, not after the test moved the clock on."""
    for _ in range(200):
        if all(call.done for call in wechat.calls("token")):
            return
        time.sleep(0.05)
    raise AssertionError("the WeChat stand-in did not finish answering")


def points(out: str, name: str) -> list[Point]:
    return [p for p in emf_points(out) if p.name == name]


def failures(out: str) -> set[tuple[str | None, str | None]]:
    return {
        (p.label("appid"), p.label("ErrorClass")) for p in points(out, "RefreshFailed") if p.label("appid")
    }


def wechat_errors(out: str) -> set[tuple[str | None, str | None]]:
    return {(p.label("Endpoint"), p.label("ErrCode")) for p in points(out, "WeChatApiError")}


def assert_no_secret(system: Any, text: str) -> None:
    secrets = {"app secret A": SECRET_A, "app secret B": SECRET_B}
    secrets.update({f"token/ticket #{i}": value for i, value in enumerate(system.wechat.issued())})
    password = urlsplit(system.env.get("REDIS_URL", "")).password
    if password:
        secrets["Redis password"] = password
    assert len(secrets) > 4  # tokens were issued, so the check has teeth
    leaked = sorted(label for label, secret in secrets.items() if secret in text)
    assert not leaked, f"in the output: {leaked}"


@contextmanager
def observed(system: Any, capsys: pytest.CaptureFixture[str]) -> Iterator[dict[str, str]]:
    """wxtoken's loggers at DEBUG; yields a dict that gets ``out`` (stdout: EMF) and ``all``."""
    discard_pending_metrics()
    capsys.readouterr()
    result: dict[str, str] = {}
    with capture_logs() as logs:
        yield result
    captured = capsys.readouterr()
    result["out"] = captured.out
    result["all"] = "\n".join([captured.out, captured.err, logs.text])


def to_the_mark(system: Any, refresher: Refresher) -> None:
    """A good token for every app, then the clock to a minute before the next scheduled run."""
    report = run(refresher, system, Trigger.SCHEDULED)
    assert sorted(report.refreshed) == sorted(APPS), report
    system.clock.advance(DEPLOYED.schedule_period_seconds + FIRST_MINUTE * 60)


# --- WeChat's faults, on both stores ----------------------------------------------------------
@dataclass(frozen=True)
class WeChatCase:
    fault: Fault
    error_class: str
    errcode: str
    mints: bool = False  # WeChat issues a token the client never gets (it retires the stored one)
    permanent: bool = False  # never cleared (an operator must fix it)


WECHAT_CASES = {
    "timeout": WeChatCase(Delay(0.7), "WeChatTransportError", "transport", mints=True),
    "5xx": WeChatCase(HTTPStatus(502), "WeChatTransportError", "transport"),
    "busy-1": WeChatCase(ErrCode(-1), "RetryableWeChatError", "-1"),
    "45009": WeChatCase(ErrCode(45009), "QuotaExceededError", "45009"),
    "40164": WeChatCase(ErrCode(40164), "IPNotAllowlistedError", "40164"),
    "40125": WeChatCase(ErrCode(40125), "InvalidCredentialError", "40125", permanent=True),
    "non-json": WeChatCase(NonJSON(), "WeChatTransportError", "transport"),
}


@pytest.mark.parametrize("case", list(WECHAT_CASES.values()), ids=list(WECHAT_CASES))
def test_wechat_fault_at_the_scheduled_run(system, case: WeChatCase, capsys):
    refresher = system.refresher()
    watch = Watch(system)
    with observed(system, capsys) as output:
        to_the_mark(system, refresher)
        old = {appid: watch.stored(appid) for appid in APPS}
        for minute in range(FIRST_MINUTE, LAST_MINUTE + 1):
            faulty = minute >= FAULT_MINUTE and (case.permanent or minute < CLEAR_MINUTE)
            if minute == FAULT_MINUTE:
                system.wechat.fail_always("token", case.fault)
                report = run(refresher, system, Trigger.SCHEDULED)
                assert {f["appid"] for f in report.failed} == set(APPS), report
                assert all(f["error"].startswith(case.error_class) for f in report.failed), report
            if minute == CLEAR_MINUTE and not case.permanent:
                system.wechat.fail_always("token", None)
            run(refresher, system, Trigger.GUARD)
            if case.mints:
                settle(system.wechat)
            if case.permanent:
                # WeChat never allows a new token: the old one stays, valid until its own expiry
                watch.check(minute, must_be_valid=system.clock() < min(c.expires_at for c in old.values()))
                assert {a: watch.stored(a).value for a in APPS} == {a: c.value for a, c in old.items()}
            else:
                watch.check(minute, must_be_valid=not (faulty and case.mints))
            system.clock.advance(60)

    if not case.permanent:  # repaired by the guard, with a full lifetime ahead
        for appid in APPS:
            assert watch.stored(appid).value != old[appid].value
            assert watch.stored(appid).seconds_left(system.clock()) > 90 * 60
    assert failures(output["out"]) >= {(appid, case.error_class) for appid in APPS}
    assert ("token", case.errcode) in wechat_errors(output["out"])
    assert_no_secret(system, output["all"])


# --- the store's faults -----------------------------------------------------------------------
@pytest.mark.parametrize("system", ["redis"], indirect=True)
def test_redis_killed_and_restarted(system, redis_server, capsys):
    refresher = system.refresher()
    watch = Watch(system)
    with observed(system, capsys) as output:
        to_the_mark(system, refresher)
        old = {appid: watch.stored(appid) for appid in APPS}
        calls = system.wechat.token_calls()
        for minute in range(FIRST_MINUTE, LAST_MINUTE + 1):
            if minute == FAULT_MINUTE:
                redis_server.kill()
                report = run(refresher, system, Trigger.SCHEDULED)
                assert {f["appid"] for f in report.failed} == set(APPS), report
                assert all(f["error"].startswith("StoreError") for f in report.failed), report
                # nothing was asked of WeChat without a store to put the answer in
                assert system.wechat.token_calls() == calls
            if minute == CLEAR_MINUTE - 1:
                redis_server.start()  # same port and data (AOF)
                assert {a: watch.stored(a) for a in APPS} == old
            run(refresher, system, Trigger.GUARD)
            if redis_server.running:
                watch.check(minute, must_be_valid=True)
            else:  # no one can read a token while Redis is down; WeChat still honours it
                assert all(system.wechat.is_valid(a, c.value) for a, c in old.items())
            system.clock.advance(60)

    assert failures(output["out"]) >= {(appid, "StoreError") for appid in APPS}
    assert all(watch.stored(a).value != old[a].value for a in APPS)
    assert_no_secret(system, output["all"])


@pytest.mark.parametrize("system", ["ssm"], indirect=True)
@pytest.mark.parametrize("fault", ["throttled", "access-denied"])
def test_ssm_fault_at_the_scheduled_run(system, fault, capsys):
    refresher, store = system.ssm_refresher()
    watch = Watch(system)
    with observed(system, capsys) as output:
        to_the_mark(system, refresher)
        calls = system.wechat.token_calls()
        for minute in range(FIRST_MINUTE, LAST_MINUTE + 1):
            if minute == FAULT_MINUTE:
                if fault == "throttled":
                    # both apps' first reads: 3 attempts each (botocore's standard retries)
                    throttle(store.client, "GetParameter", times=6)
                    expected = "ThrottlingException"
                else:
                    # both apps' lease writes (PutParameter), the first write of a refresh
                    inject_error(store.client, "PutParameter", 2, code="AccessDeniedException")
                    expected = "AccessDeniedException"
                report = run(refresher, system, Trigger.SCHEDULED)
                assert {f["appid"] for f in report.failed} == set(APPS), report
                assert all(f["error"].startswith("StoreError") for f in report.failed), report
                assert all(expected in f["error"] for f in report.failed), report
                assert system.wechat.token_calls() == calls
            run(refresher, system, Trigger.GUARD)
            watch.check(minute, must_be_valid=True)
            system.clock.advance(60)

    assert failures(output["out"]) >= {(appid, "StoreError") for appid in APPS}
    assert all(watch.stored(a).seconds_left(system.clock()) > 90 * 60 for a in APPS)
    assert_no_secret(system, output["all"])


# --- the refresh Lambda killed between fetch and store ----------------------------------------
class Killed(BaseException):
    """The process died: nothing after this point runs, not even a ``finally``'s release."""


class DyingStore:
    """The real store, except that the process 'dies' at the token write: WeChat has minted and
    answered, the token is never stored, and the lease is never released (it lapses by its
    TTL, as when Lambda kills a timed-out or crashed invocation)."""

    def __init__(self, inner: TokenStore) -> None:
        self._inner = inner
        self._dead: list[Any] = []  # a dead process's leases: never closed, never collected

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def replace(self, appid: str, name: RecordName, *args: Any, **kwargs: Any) -> bool:
        if name is RecordName.ACCESS_TOKEN:
            raise Killed  # the token write, after WeChat minted
        return self._inner.replace(appid, name, *args, **kwargs)  # the mint intent, before

    def lease(self, appid: str, ttl_seconds: float) -> AbstractContextManager[None]:
        return self._lease(appid, ttl_seconds)

    @contextmanager
    def _lease(self, appid: str, ttl_seconds: float) -> Iterator[None]:
        held = self._inner.lease(appid, ttl_seconds)
        held.__enter__()
        self._dead.append(held)  # collecting the generator would run its release
        try:
            yield
        except Killed:
            raise  # dead: the lease stays in the store
        except BaseException:
            if not held.__exit__(*sys.exc_info()):
                raise
        else:
            held.__exit__(None, None, None)


def test_refresh_killed_between_fetch_and_store(system, capsys):
    lease_seconds = "2"
    settings = Settings.from_env({**system.env, "REFRESH_LEASE_SECONDS": lease_seconds})
    dying = Refresher(
        settings=settings,
        store=DyingStore(open_store(settings, clock=system.clock)),
        wechat=build_wechat_api(settings),
        apps=AppsSource(settings.apps_secret_id, max_age=0),
        clock=system.clock,
    )
    refresher = system.refresher(REFRESH_LEASE_SECONDS=lease_seconds)
    watch = Watch(system)
    with observed(system, capsys) as output:
        to_the_mark(system, refresher)
        old = {appid: watch.stored(appid) for appid in APPS}
        for minute in range(FIRST_MINUTE, LAST_MINUTE + 1):
            if minute == FAULT_MINUTE:
                calls = system.wechat.token_calls(APPID_B)
                with pytest.raises(Killed):
                    run(dying, system, Trigger.SCHEDULED, appids=[APPID_B])
                assert system.wechat.token_calls(APPID_B) == calls + 1  # minted, never stored
                assert watch.stored(APPID_B) == old[APPID_B]
                if system.kind == "redis":  # the dead run's lease lapses by itself, soon
                    import redis

                    from wxtoken.store.redis_store import lease_key

                    ttl = redis.Redis.from_url(system.env["REDIS_URL"]).pttl(lease_key(APPID_B))
                    assert 0 < ttl <= int(lease_seconds) * 1000
                run(refresher, system, Trigger.SCHEDULED, appids=[APPID_A])
            # the guard (and Lambda's retry a minute later) takes over the lapsed lease
            report = run(refresher, system, Trigger.GUARD)
            assert report.failed == [], report
            if minute == FAULT_MINUTE:
                # the dead run's mint intent makes the stored token suspect: the guard right
                # after it replaced it, though its record still showed 20 minutes
                assert report.refreshed == [APPID_B], report
            watch.check(minute, must_be_valid=True)
            system.clock.advance(60)

    assert watch.stored(APPID_B).value != old[APPID_B].value
    assert watch.stored(APPID_B).seconds_left(system.clock()) > 90 * 60
    assert_no_secret(system, output["all"])


# --- scheduled, forced and compare-and-refresh racing -----------------------------------------
def test_scheduled_forced_and_compare_racing_make_one_wechat_call(system, capsys):
    with observed(system, capsys) as output:
        run(system.refresher(), system, Trigger.SCHEDULED)
        seen = system.stored(APPID_A)
        calls = {appid: system.wechat.token_calls(appid) for appid in APPS}
        system.clock.advance(1)
        # whole seconds: the store keeps fetched_at to the millisecond, and the frozen FakeClock
        # would otherwise put the winner's fetch a fraction of a millisecond before the requests
        now = float(int(system.clock()))
        requests = [
            RefreshRequest(Trigger.SCHEDULED, now),
            RefreshRequest(Trigger.FORCE, now, (APPID_A,)),
            RefreshRequest(Trigger.COMPARE, now, (APPID_A,), seen.value),
        ] * 3
        # one refresher per request: separate containers, each with its own store client
        refreshers = [system.refresher() for _ in requests]
        barrier = threading.Barrier(len(requests))
        reports: list[Any] = [None] * len(requests)

        def racer(i: int) -> None:
            barrier.wait()
            reports[i] = refreshers[i].run(requests[i], Deadline.after(30))

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert all(r is not None and r.failed == [] for r in reports), reports
    assert {appid: system.wechat.token_calls(appid) for appid in APPS} == {a: n + 1 for a, n in calls.items()}
    stored = system.stored(APPID_A)
    assert stored.value == system.wechat.current_token(APPID_A)
    assert system.wechat.is_valid(APPID_A, stored.value)
    assert stored.fetched_at > seen.fetched_at
    # and the older record, written late by a slow racer, does not replace it
    store = system.store()
    assert not store.write_if_newer(
        APPID_A, RecordName.ACCESS_TOKEN, seen.to_record(RecordName.ACCESS_TOKEN), 7000
    )
    assert system.stored(APPID_A) == stored
    assert not failures(output["out"])
    assert_no_secret(system, output["all"])


# --- writers whose clocks are off (issue 9, finding 7) ----------------------------------------
@pytest.mark.parametrize("behind", [45.0, 120.0])
def test_a_writer_whose_clock_is_behind_never_stores_an_older_token(system, capsys, behind):
    """A refresher in a container whose clock is ``behind`` seconds slow takes the lease and
    calls WeChat, which mints at once but whose answer takes 0.3 s to come back; meanwhile a
    refresher with the right clock is forced. The slow writer's SSM lease used to look
    expired to the other (its expiry was written on the slow clock): both minted, the second
    stored its newer token, and then the first stored its older one over it (its
    ``fetched_at`` was derived after the mint) — WeChat retired that one 5 minutes later
    while its record showed two hours. Now leases are judged on the store's clock and the
    write compares against the record read before the mint. Judged minute by minute: the
    stored token is valid at WeChat, ``fetched_at`` never goes back, and no token older than
    the stored one replaces it."""
    from devtools.wechat.standin import SlowAnswer

    def refresher(skew: float) -> Refresher:
        settings = system.settings
        return Refresher(
            settings=settings,
            store=open_store(settings, clock=lambda: system.clock() + skew),
            wechat=build_wechat_api(settings),
            apps=AppsSource(settings.apps_secret_id, max_age=0),
            clock=lambda: system.clock() + skew,
        )

    slow, right = refresher(-behind), refresher(0.0)
    watch = Watch(system)
    with observed(system, capsys) as output:
        run(right, system, Trigger.SCHEDULED)
        system.clock.advance(600)
        watch.check(-1, must_be_valid=True)
        system.wechat.fail_next("token", SlowAnswer(0.3), appid=APPID_A)
        first = threading.Thread(target=run, args=(slow, system, Trigger.FORCE, [APPID_A]))
        first.start()
        time.sleep(0.1)  # the slow writer holds the lease and WeChat has minted its token
        run(right, system, Trigger.FORCE, [APPID_A])
        first.join()
        settle(system.wechat)
        for minute in range(10):
            run(right if minute % 2 else slow, system, Trigger.GUARD)
            watch.check(minute, must_be_valid=True)
            system.clock.advance(60)
    assert_no_secret(system, output["all"])


# --- the NAT instance dies at the scheduled run (issue 14) ------------------------------------
def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", int(parts.port or 80)


@pytest.mark.parametrize("outage_minutes", [3, 5, 10])
def test_nat_instance_dies_at_the_scheduled_run(system, outage_minutes, monkeypatch, capsys, record_property):
    """The default egress is a NAT instance in an Auto Scaling group of one. When it dies,
    nothing outside the VPC answers (WeChat, SSM, Secrets Manager: SYNs dropped, pooled
    connections silent) until the replacement is up, 1–3 minutes for the ASG's EC2 health
    check plus 1–2 to launch and boot; Redis, inside the VPC, stays reachable. The worst
    moment is the scheduled run, when the stored token has the least life left. Judged at
    the stand-in at every minute mark, before and after that minute's runs, until the
    guard has replaced the token."""
    with nat_to(wechat=_address(system.wechat.base_url), aws=_address(system.aws.endpoint_url)) as nat:
        watch = Watch(system)  # the judge reads the store directly, not through the NAT:
        watch.store.read(APPID_A, RecordName.ACCESS_TOKEN)  # its AWS client is made on first use
        monkeypatch.setenv("AWS_ENDPOINT_URL", nat.url("aws"))
        settings = Settings.from_env({**system.env, "WECHAT_API_BASE": nat.url("wechat")})
        # a warm container: the apps secret cached, as for APPS_SECRET_CACHE_SECONDS
        refresher = build_refresher(
            settings, clock=system.clock, apps=AppsSource(settings.required_apps_secret_id)
        )
        last_minute = max(outage_minutes, GUARD_REPAIR_MINUTE) + 2
        invalid: list[str] = []
        with observed(system, capsys) as output:
            to_the_mark(system, refresher)
            old = {appid: watch.stored(appid) for appid in APPS}
            for minute in range(FIRST_MINUTE, last_minute + 1):
                if minute == FAULT_MINUTE:
                    nat.die()
                if minute == FAULT_MINUTE + outage_minutes:
                    nat.replace()
                invalid += [f"{minute}:start" for a in APPS if not _valid_at_wechat(system, watch, a)]
                if minute == FAULT_MINUTE:
                    report = run(refresher, system, Trigger.SCHEDULED)
                    assert {f["appid"] for f in report.failed} == set(APPS), report
                run(refresher, system, Trigger.GUARD)
                settle(system.wechat)
                watch.check(minute, must_be_valid=False)  # fetched_at and issue order only
                invalid += [f"{minute}:end" for a in APPS if not _valid_at_wechat(system, watch, a)]
                system.clock.advance(60)

    record_property("invalid_minute_marks", " ".join(sorted(set(invalid))) or "none")
    assert not invalid, (
        f"{outage_minutes}-minute outage: stored token invalid at WeChat at {sorted(set(invalid))}"
    )
    for appid in APPS:  # replaced by the guard, with a full lifetime ahead
        assert watch.stored(appid).value != old[appid].value
        assert watch.stored(appid).seconds_left(system.clock()) > 90 * 60
    assert failures(output["out"]) >= {
        (appid, "StoreError" if system.kind in {"ssm", "dynamodb"} else "WeChatTransportError")
        for appid in APPS
    }
    assert_no_secret(system, output["all"])


def _valid_at_wechat(system: Any, watch: Watch, appid: str) -> bool:
    return bool(system.wechat.is_valid(appid, watch.stored(appid).value))
