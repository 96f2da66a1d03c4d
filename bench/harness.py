"""What the benchmarks share: side-by-side timing, quiet logs, and the local services.

Every figure is a ratio (or a count) measured in one run, because the machines are noisy
and absolute microseconds mean little. Subjects are timed interleaved — a short burst of
each, in turn, several rounds — and each subject's figure is the median of its rounds, so
a slow spell of the machine hits every subject alike.

:class:`Services` starts what the tests use, with no AWS account and no Docker: moto in
server mode (its own process, shared with the benchmarks' child processes over HTTP),
``redis-server`` on a free port when it is on PATH, and the WeChat stand-in
(``devtools/wechat/standin.py``) on a clock the benchmark may move.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "layers" / "wxtoken"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# The sample app of events/ and the tests: Tencent's sample EncodingAESKey.
APPID = "wx1111111111111111"
APP_SECRET = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
TOKEN = "wxtokenlocal"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPS_SECRET_ID = "wxtoken/apps"
DEDUP_TABLE = "wxtoken-dedup"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


# --- the table ------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """One row of ``make bench``: what was measured, against which target, and whether met.

    ``met`` is ``None`` for a figure reported without a target.
    """

    name: str
    measured: str
    target: str
    met: bool | None
    note: str = ""


def print_table(figures: list[Figure], out: Any = None) -> None:
    out = out or sys.stdout
    widths = [
        max(len(row) for row in [header, *(getattr(f, attr) for f in figures)])
        for header, attr in (("figure", "name"), ("measured", "measured"), ("target", "target"))
    ]
    line = f"{'figure':{widths[0]}}  {'measured':>{widths[1]}}  {'target':{widths[2]}}  result"
    print(line, file=out)
    print("-" * (len(line) + 8), file=out)
    for f in figures:
        verdict = {True: "met", False: "MISSED", None: "-"}[f.met]
        print(
            f"{f.name:{widths[0]}}  {f.measured:>{widths[1]}}  {f.target:{widths[2]}}  {verdict}",
            file=out,
        )
        if f.note:
            print(f"{'':{widths[0]}}  {f.note}", file=out)


# --- timing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """A callable to time; ``before`` runs (untimed) before each of its bursts."""

    fn: Callable[[], object]
    before: Callable[[], object] | None = None


def interleaved(
    subjects: Mapping[str, Subject | Callable[[], object]], *, rounds: int = 9, burst_seconds: float = 0.2
) -> dict[str, float]:
    """Median seconds per call of each subject, timed in interleaved bursts."""
    normalized = {k: v if isinstance(v, Subject) else Subject(v) for k, v in subjects.items()}
    for subject in normalized.values():  # warm-up: caches, lazy imports, .pyc files
        if subject.before:
            subject.before()
        for _ in range(20):
            subject.fn()
    samples: dict[str, list[float]] = {name: [] for name in normalized}
    for _ in range(rounds):
        for name, subject in normalized.items():
            if subject.before:
                subject.before()
            fn = subject.fn
            count, started = 0, time.perf_counter()
            while True:
                fn()
                count += 1
                elapsed = time.perf_counter() - started
                if elapsed >= burst_seconds:
                    break
            samples[name].append(elapsed / count)
    return {name: statistics.median(values) for name, values in samples.items()}


@contextlib.contextmanager
def quiet_stdout() -> Iterator[Any]:
    """Send file descriptor 1 to /dev/null (powertools' Logger holds ``sys.stdout`` and
    writes each line through it, as in Lambda); yields a stream on the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    real = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        os.dup2(devnull, 1)
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
        real.close()


# --- services -------------------------------------------------------------------------
def have_redis() -> bool:
    return shutil.which("redis-server") is not None


@dataclass
class Services:
    """moto server + (optional) redis-server + WeChat stand-in, for one benchmark.

    Sets this process's AWS environment to the moto server (fake credentials), so boto3
    anywhere — and in child processes that inherit the environment — talks to it.
    """

    clock: Callable[[], float] = time.time
    redis: bool = True
    # The moto server's process entry (``serve_moto_forever`` when None); it reports its port.
    moto_entry: Callable[[Any], None] | None = None
    moto_endpoint: str = ""
    redis_url: str | None = None
    wechat: Any = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> Services:
        try:
            self.moto_endpoint = self._stack.enter_context(_moto_server(self.moto_entry))
            os.environ.update(FAKE_AWS)
            os.environ["AWS_ENDPOINT_URL"] = self.moto_endpoint
            os.environ.pop("AWS_PROFILE", None)
            if self.redis and have_redis():
                self.redis_url = self._stack.enter_context(_redis_server())
            from devtools.wechat.standin import WeChatStandIn

            self.wechat = self._stack.enter_context(WeChatStandIn(clock=self.clock))
            self.wechat.add_app(APPID, APP_SECRET)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def stores(self) -> list[str]:
        return ["ssm", "redis"] if self.redis_url else ["ssm"]

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.moto_endpoint, region_name="us-east-1")

    def reset(self, *, apps: dict[str, Any] | None = None, dedup_table: bool = False) -> None:
        """Fresh moto state and an empty Redis, with the apps secret (and dedup table)."""
        import requests

        requests.post(f"{self.moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
        if self.redis_url:
            import redis

            with redis.Redis.from_url(self.redis_url) as r:
                r.flushall()
        apps = apps or {APPID: {"app_secret": APP_SECRET, "token": TOKEN, "encoding_aes_key": AES_KEY}}
        self.client("secretsmanager").create_secret(Name=APPS_SECRET_ID, SecretString=json.dumps(apps))
        if dedup_table:
            self.client("dynamodb").create_table(
                TableName=DEDUP_TABLE,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )

    def env(self, store: str, **extra: str) -> dict[str, str]:
        """The functions' environment for ``store``, on these services."""
        env = {
            **FAKE_AWS,
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "WECHAT_APPS_SECRET_ID": APPS_SECRET_ID,
            "TOKEN_STORE": store,
            "WECHAT_API_BASE": self.wechat.base_url,
            "WECHAT_READ_TIMEOUT": "2",
            "WECHAT_CONNECT_TIMEOUT": "1",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            **extra,
        }
        if store == "redis":
            assert self.redis_url is not None
            env["REDIS_URL"] = self.redis_url
        return env

    def settings(self, store: str, **extra: str) -> Any:
        from wxtoken.config import Settings

        return Settings.from_env(self.env(store, **extra))


@contextlib.contextmanager
def _moto_server(entry: Callable[[Any], None] | None = None) -> Iterator[str]:
    # The tests' serialized moto server (moto's backends are not thread-safe; SSM's
    # conditional put must stay atomic for the lease), in a process of its own.
    from devtools.sam.moto_server import serve_moto_forever

    with server_process(entry or serve_moto_forever) as url:
        yield url


@contextlib.contextmanager
def server_process(entry: Callable[..., None], *args: Any) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a server run by ``entry(port_out, *args)`` in a spawned
    process of its own (its work neither counted in the benchmark's CPU nor holding its GIL),
    which reports its port on ``port_out``; stopped on exit."""
    context = multiprocessing.get_context("spawn")
    port_out = context.Queue()
    process = context.Process(target=entry, args=(port_out, *args), daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{port_out.get(timeout=60)}"
    finally:
        process.terminate()
        process.join(timeout=10)


@contextlib.contextmanager
def _redis_server() -> Iterator[str]:
    from tests.fixtures.redis_server import spawn_redis_server

    directory = Path(tempfile.mkdtemp(prefix="wxtoken-bench-redis-"))
    server = spawn_redis_server(directory)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


class LambdaContext:
    """The bits of a Lambda context the handlers read."""

    function_name = "bench"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def __init__(self, remaining_seconds: float = 30.0) -> None:
        self._deadline = time.monotonic() + remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)
