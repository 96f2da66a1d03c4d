"""Storm: 200 callers see their token rejected (40001) at once — how many WeChat token calls?

Each caller holds the same cached token in its process's ``TokenClient`` and makes one
``TokenClient.call(appid, "GET", "/cgi-bin/get_api_domain_ip")``. The benchmark then revokes
every token at the WeChat stand-in (as if something outside wxtoken had fetched one), so
every call gets 40001 and asks for a compare-and-refresh — in this process
(``REFRESH_FUNCTION_NAME`` unset), through the store's lease — and retries once. The target
is exactly one ``/cgi-bin/token`` call, with all 200 calls answered, for 200 threads of one
process and for 200 threads spread over 4 processes, on each store.

    .venv/bin/python -m bench.storm
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from typing import Any

from bench.harness import APPID, Figure, Services, quiet_stdout

CALLERS = 200
PROCESSES = 4


def callers(env: dict[str, str], count: int, ready: Any, go: Any, results: Any) -> None:
    """One process's share: a TokenClient with the token cached, ``count`` threads waiting
    on ``go`` to make their call at once. Puts ``(ok, errors)`` on ``results``."""
    os.environ.update(env)
    from wxtoken.client import TokenClient

    client = TokenClient.from_env()
    client.access_token(APPID)  # cached: every caller will use this token
    outcomes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        go.wait()
        try:
            answer = client.call(APPID, "GET", "/cgi-bin/get_api_domain_ip")
            outcome = "ok" if answer.get("ip_list") else f"odd answer {answer}"
        except Exception as exc:  # reported, not raised: the parent counts them
            outcome = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    ready.put(os.getpid())
    for thread in threads:
        thread.join()
    results.put((outcomes.count("ok"), [o for o in outcomes if o != "ok"]))


def storm(services: Services, store: str, processes: int) -> dict[str, Any]:
    """Token calls WeChat saw for one storm, and how the 200 calls ended."""
    from wxtoken.deadline import Deadline
    from wxtoken.refresh import RefreshRequest, Trigger
    from wxtoken.refresh.wiring import build_refresher

    services.reset()
    env = services.env(store)
    env["APPS_SECRET_CACHE_SECONDS"] = "60"  # one apps secret read per process
    os.environ.update(env)
    report = build_refresher(services.settings(store)).run(
        RefreshRequest(Trigger.SCHEDULED, time.time()), Deadline.after(30)
    )
    assert report.refreshed == [APPID], report

    shares = [CALLERS // processes + (i < CALLERS % processes) for i in range(processes)]
    if processes == 1:
        ready: Any = queue.Queue()
        results: Any = queue.Queue()
        go: Any = threading.Event()
        workers: list[Any] = [threading.Thread(target=callers, args=(env, shares[0], ready, go, results))]
    else:
        context = multiprocessing.get_context("spawn")
        ready, results, go = context.Queue(), context.Queue(), context.Event()
        workers = [context.Process(target=callers, args=(env, n, ready, go, results)) for n in shares]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)  # every process has its client warm and its threads waiting
    before = services.wechat.token_calls(APPID)
    services.wechat.revoke_tokens(APPID)
    started = time.monotonic()
    go.set()
    ok, errors = 0, []
    for _ in workers:
        n, errs = results.get(timeout=120)
        ok += n
        errors += errs
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.join(timeout=30)
    return {
        "token_calls": services.wechat.token_calls(APPID) - before,
        "ok": ok,
        "errors": errors,
        "seconds": elapsed,
    }


def measure() -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    with Services() as services:
        for store in services.stores:
            for processes in (1, PROCESSES):
                out[(store, processes)] = storm(services, store, processes)
    return out


def _mode(processes: int) -> str:
    return "threads" if processes == 1 else f"{processes} processes"


def figures() -> list[Figure]:
    with quiet_stdout():
        results = measure()
    rows = []
    for (store, processes), r in results.items():
        met = r["token_calls"] == 1 and r["ok"] == CALLERS
        note = f"{r['ok']}/{CALLERS} calls answered in {r['seconds']:.1f} s"
        if r["errors"]:
            note += f"; first error: {r['errors'][0][:120]}"
        rows.append(
            Figure(
                f"4. storm, {CALLERS} callers see 40001, {store}, {_mode(processes)}: token calls",
                str(r["token_calls"]),
                "1",
                met,
                note,
            )
        )
    return rows


def main() -> None:
    with quiet_stdout() as out:
        results = measure()
        for (store, processes), r in results.items():
            print(
                f"{store:6} {_mode(processes):12} WeChat token calls: {r['token_calls']}  "
                f"answered: {r['ok']}/{CALLERS}  ({r['seconds']:.1f} s)",
                file=out,
            )
            for error in r["errors"][:3]:
                print(f"    {error}", file=out)


if __name__ == "__main__":
    main()
