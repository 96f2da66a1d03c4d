"""Quota: a simulated day — WeChat token calls, and minutes without a valid token.

A fake clock moves minute by minute through 24 hours. Every schedule of the refresh
function in ``template.yaml`` (the 100-minute run and the 1-minute guard) fires its deployed
payload on time, through ``parse_refresh_event`` and the ``Refresher`` (on the fake clock),
against the WeChat stand-in (on the same clock). An invocation that reports a failed app
raises in Lambda, so it is retried as Lambda retries asynchronous invocations: one minute
later, then two minutes after that.

The day also has one failed token call at a scheduled run (WeChat answers HTTP 502, an
ambiguous failure: WeChat may still be working on it) and one forced refresh
(``{"force": true}``). The 502 is replayed at once and the replay's token stored; since the
first attempt might still mint after it, that token is left suspect and the guard mints once
more a minute later. At the start and the end of every minute the stored token is checked
against the stand-in: a minute in which it is not valid there counts as a minute without a
token. Targets: at most one token call per 100-minute run (15 in a day), +2 for the failed
call (the replay, and the guard's mint after it): 15, plus the forced refreshes, and no
minute without a valid token.

On Redis the day takes a few seconds; on SSM (moto) most of a minute, so ``make bench``
simulates it on Redis (on SSM when redis-server is missing) and ``--store both`` runs both.

    .venv/bin/python -m bench.quota [--store redis|ssm|both]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.harness import APPID, ROOT, Figure, Services, have_redis, quiet_stdout

MINUTES = 24 * 60
FAILED_RUN = 3  # the 4th scheduled run of the day fails
FORCED_AT_MINUTE = 700
# Lambda's retries of a failed asynchronous invocation: 1 minute, then 2 minutes later.
LAMBDA_RETRY_DELAYS = (1, 2)
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


@dataclass(frozen=True)
class Schedule:
    name: str
    every_minutes: int
    payload: str


def deployed_schedules() -> list[Schedule]:
    """The refresh function's ScheduleV2 events in template.yaml: rate and payload."""
    import yaml

    from devtools.sam.template import CloudFormationLoader

    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506
    schedules = []
    for resource in template["Resources"].values():
        for name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "ScheduleV2":
                continue
            props = event["Properties"]
            match = re.fullmatch(r"rate\((\d+) minutes?\)", props["ScheduleExpression"])
            if match is None:
                raise ValueError(f"{name}: only rate(N minutes) schedules are simulated")
            schedules.append(Schedule(name, int(match[1]), props["Input"]))
    if not schedules:
        raise ValueError("no ScheduleV2 events in template.yaml")
    return schedules


@dataclass
class Day:
    token_calls: int = 0
    minted: int = 0
    forced: int = 0
    invocations: int = 0
    failed_invocations: int = 0
    minutes_without_token: list[int] = field(default_factory=list)
    seconds: float = 0.0


def simulate(services: Services, store: str) -> Day:
    from devtools.wechat.standin import HTTPStatus
    from tests.fixtures.wechat import FakeClock
    from wxtoken.deadline import Deadline
    from wxtoken.refresh.events import parse_refresh_event
    from wxtoken.refresh.wiring import build_refresher
    from wxtoken.store.base import Credential, RecordName

    clock = services.clock
    assert isinstance(clock, FakeClock)
    services.reset()
    os.environ.update(services.env(store))
    settings = services.settings(store)
    refresher = build_refresher(settings, clock=clock)
    from wxtoken.store import open_store

    reader = open_store(settings, clock=clock)
    schedules = deployed_schedules()
    wechat = services.wechat
    wechat.reset_calls()
    day = Day()
    retries: dict[int, list[str]] = {}
    scheduled_runs = 0

    def invoke(payload: str, minute: int, attempt: int = 0) -> None:
        request = parse_refresh_event(json.loads(payload), clock=clock)
        report = refresher.run(request, Deadline.after(30))
        day.invocations += 1
        if report.failed:
            day.failed_invocations += 1
            if attempt < len(LAMBDA_RETRY_DELAYS):
                retries.setdefault(minute + LAMBDA_RETRY_DELAYS[attempt], []).append(
                    f"{attempt + 1}:{payload}"
                )

    def token_valid() -> bool:
        raw = reader.read(APPID, RecordName.ACCESS_TOKEN)
        if raw is None:
            return False
        return bool(wechat.is_valid(APPID, Credential.from_record(RecordName.ACCESS_TOKEN, raw).value))

    started = time.monotonic()
    for minute in range(MINUTES):
        fired_at = datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for schedule in schedules:
            if minute % schedule.every_minutes:
                continue
            payload = schedule.payload.replace(SCHEDULED_TIME, fired_at)
            if '"scheduled"' in payload:
                if scheduled_runs == FAILED_RUN:
                    wechat.fail_next("token", HTTPStatus(502), appid=APPID)
                scheduled_runs += 1
            invoke(payload, minute)
        for retry in retries.pop(minute, []):
            attempt, payload = retry.split(":", 1)
            invoke(payload, minute, int(attempt))
        if minute == FORCED_AT_MINUTE:
            invoke('{"force": true}', minute)
            day.forced += 1
        ok = token_valid()
        clock.advance(59)
        ok = token_valid() and ok
        clock.advance(1)
        # The first minute starts with an empty store: its first run fills it.
        if not ok and minute > 0:
            day.minutes_without_token.append(minute)
    day.seconds = time.monotonic() - started
    calls = wechat.calls("token", appid=APPID)
    day.token_calls = len(calls)
    day.minted = sum(1 for c in calls if c.errcode == 0)
    return day


def default_stores() -> tuple[str, ...]:
    """Redis when redis-server is there: the day takes seconds on it, most of a minute on moto."""
    return ("redis",) if have_redis() else ("ssm",)


def measure(stores: tuple[str, ...]) -> dict[str, Day]:
    from tests.fixtures.wechat import FakeClock

    # Midnight Beijing time (WeChat's quota day), so the simulated day is WeChat's day.
    start = (int(time.time()) // 86400 + 1) * 86400 - 8 * 3600
    results = {}
    for store in stores:
        with Services(clock=FakeClock(float(start)), redis=store == "redis") as services:
            if store in services.stores:
                results[store] = simulate(services, store)
    return results


def expected_calls(forced: int) -> int:
    runs = -(-MINUTES // next(s.every_minutes for s in deployed_schedules() if '"scheduled"' in s.payload))
    # one call per run; the failed call's replay and the guard's mint after it; the forced ones
    return runs + 2 + forced


def figures() -> list[Figure]:
    with quiet_stdout():
        results = measure(default_stores())
    rows = []
    for store, day in results.items():
        target = expected_calls(day.forced)
        rows.append(
            Figure(
                f"5. quota, simulated 24 h, {store}: WeChat token calls",
                str(day.token_calls),
                f"<= {target - day.forced} + {day.forced} forced",
                day.token_calls <= target,
                f"{day.minted} tokens minted, 1 call failed on purpose; {day.invocations} invocations "
                f"({day.failed_invocations} failed, retried); simulated in {day.seconds:.1f} s",
            )
        )
        rows.append(
            Figure(
                f"5. quota, simulated 24 h, {store}: minutes without a valid token",
                str(len(day.minutes_without_token)),
                "0",
                not day.minutes_without_token,
                f"minutes: {day.minutes_without_token[:10]}" if day.minutes_without_token else "",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store",
        choices=["redis", "ssm", "both"],
        help="default: redis if redis-server is on PATH, else ssm",
    )
    args = parser.parse_args()
    stores = {"both": ("redis", "ssm"), None: default_stores()}.get(args.store) or (args.store,)
    with quiet_stdout() as out:
        results = measure(stores)
        for store, day in results.items():
            print(
                f"{store:6} token calls {day.token_calls} (target <= {expected_calls(day.forced)}, "
                f"incl. {day.forced} forced), minted {day.minted}, invocations {day.invocations} "
                f"({day.failed_invocations} failed), minutes without a valid token "
                f"{len(day.minutes_without_token)}, {day.seconds:.1f} s",
                file=out,
            )


if __name__ == "__main__":
    main()
