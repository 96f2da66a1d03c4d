"""Token reads: store round trips per 10,000 ``TokenClient.access_token()`` calls, and the cost
of a cached hit next to powertools' ``parameters.get_parameter(name, max_age=60)``.

Round trips are counted at the wire: every HTTP request botocore sends to SSM (moto server),
every data command the Redis server executed (``INFO commandstats``). Two read patterns:

- **steady**: one warm client, 10,000 calls spread over 10 simulated minutes (a fake clock
  moved 60 ms per call) — the target is one store read per 60 s cache window, i.e. 10;
- **cold burst**: a new client, 10,000 calls from 16 threads at once — the target is 1.

The cached hit is timed side by side with powertools' cached ``get_parameter`` of the same
SecureString (``decrypt=True``), on the SSM store: the ratio is wxtoken's time over
powertools'.

    .venv/bin/python -m bench.token_reads
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.harness import APPID, Figure, Services, interleaved, quiet_stdout

CALLS = 10_000
STEADY_SECONDS = 600.0  # 10 cache windows of 60 s
THREADS = 16
# Commands a Redis connection sends on connect, and the benchmark's own.
_NOT_READS = {"info", "config", "auth", "hello", "client", "select", "ping", "command"}


class _NoRefresh:
    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        raise AssertionError("reads never ask for a refresh")


class RoundTrips:
    """Counts what the store's backend really served."""

    def __init__(self, kind: str, store: Any) -> None:
        self.kind = kind
        self.store = store
        self._ssm = 0
        if kind == "ssm":
            store.client.meta.events.register("before-send.ssm", self._count_ssm)

    def _count_ssm(self, **_: Any) -> None:
        self._ssm += 1  # returns None: the request goes out as usual

    def reset(self) -> None:
        self._ssm = 0
        if self.kind == "redis":
            self.store.client.config_resetstat()

    def count(self) -> int:
        if self.kind == "ssm":
            return self._ssm
        stats = self.store.client.info("commandstats")
        return sum(
            int(value["calls"])
            for key, value in stats.items()
            if key.removeprefix("cmdstat_").split("|")[0] not in _NOT_READS
        )


def _setup(services: Services, store_kind: str) -> Any:
    """Settings for ``store_kind``, with a token stored by the refresher."""
    import os

    from wxtoken.deadline import Deadline
    from wxtoken.refresh import RefreshRequest, Trigger
    from wxtoken.refresh.wiring import build_refresher

    services.reset()
    os.environ.update(services.env(store_kind))
    settings = services.settings(store_kind)
    report = build_refresher(settings).run(RefreshRequest(Trigger.SCHEDULED, time.time()), Deadline.after(30))
    assert report.refreshed == [APPID], report
    return settings


def _client(settings: Any, clock: Any) -> tuple[Any, RoundTrips]:
    from wxtoken.client import TokenClient
    from wxtoken.store import open_store
    from wxtoken.wechat.wiring import build_wechat_api

    store = open_store(settings, clock=clock)
    client = TokenClient(store=store, wechat=build_wechat_api(settings), refresher=_NoRefresh(), clock=clock)
    return client, RoundTrips(settings.token_store.value, store)


def steady_reads(settings: Any) -> int:
    from tests.fixtures.wechat import FakeClock

    clock = FakeClock()
    client, trips = _client(settings, clock)
    trips.reset()
    step = STEADY_SECONDS / CALLS
    for _ in range(CALLS):
        client.access_token(APPID)
        clock.advance(step)
    return trips.count()


def burst_reads(settings: Any) -> int:
    client, trips = _client(settings, time.time)
    trips.reset()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda _: client.access_token(APPID), range(CALLS)))
    return trips.count()


def cached_hit_ratio(settings: Any) -> tuple[float, float]:
    """(wxtoken µs, powertools µs) per cached read of the same SSM parameter."""
    from aws_lambda_powertools.utilities import parameters

    client, _ = _client(settings, time.time)
    name = f"{settings.parameter_prefix}/{APPID}/access_token"
    assert client.access_token(APPID)
    assert parameters.get_parameter(name, max_age=60, decrypt=True)
    t = interleaved(
        {
            "wxtoken": lambda: client.access_token(APPID),
            "powertools": lambda: parameters.get_parameter(name, max_age=60, decrypt=True),
        },
        rounds=7,
        burst_seconds=0.1,
    )
    return t["wxtoken"] * 1e6, t["powertools"] * 1e6


def measure() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Services() as services:
        for kind in services.stores:
            settings = _setup(services, kind)
            results[kind] = {"steady": steady_reads(settings), "burst": burst_reads(settings)}
            if kind == "ssm":
                results["hit"] = cached_hit_ratio(settings)
    return results


def figures() -> list[Figure]:
    with quiet_stdout():
        r = measure()
    windows = int(STEADY_SECONDS // 60)
    rows = []
    for kind in ("ssm", "redis"):
        if kind not in r:
            rows.append(Figure(f"3. token reads on {kind}", "skipped", "", None, "redis-server not on PATH"))
            continue
        steady, burst = r[kind]["steady"], r[kind]["burst"]
        per_window = steady / windows
        rows.append(
            Figure(
                f"3. store round trips per cache window, {kind}",
                f"{per_window:.1f}",
                "1",
                per_window <= 1.0 and burst == 1,
                f"{CALLS:,} calls over {windows} min: {steady} reads; {CALLS:,} calls from "
                f"{THREADS} threads on a cold client: {burst} read",
            )
        )
    wx, pt = r["hit"]
    rows.append(
        Figure(
            "3. cached hit: wxtoken / powertools get_parameter",
            f"{wx / pt:.2f}x",
            "(reported)",
            None,
            f"access_token() {wx:.2f} µs vs get_parameter(max_age=60) {pt:.2f} µs",
        )
    )
    return rows


def main() -> None:
    with quiet_stdout() as out:
        r = measure()
        print(f"{CALLS:,} access_token() calls:", file=out)
        for kind in ("ssm", "redis"):
            if kind in r:
                print(
                    f"  {kind:6} steady over {STEADY_SECONDS / 60:.0f} min: {r[kind]['steady']} store "
                    f"round trips; cold burst from {THREADS} threads: {r[kind]['burst']}",
                    file=out,
                )
        wx, pt = r["hit"]
        print(
            f"cached hit: wxtoken {wx:.2f} µs, powertools get_parameter {pt:.2f} µs ({wx / pt:.2f}x)",
            file=out,
        )


if __name__ == "__main__":
    main()
