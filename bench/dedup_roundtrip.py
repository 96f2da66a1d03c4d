"""Per-request cost of a safe-mode text round trip with dedup as deployed, next to wechatpy.

wxtoken: an API Gateway v2 event through ``functions/webhook/app.py``'s ``lambda_handler`` on
a warm container, as deployed: INFO logs (to /dev/null), the runtime built from the
environment (``build_webhook_runtime``), and dedup in the token store — Redis (a
``redis-server`` this benchmark starts) or DynamoDB (the token table on a moto server over a
real socket, as the template defines it). The ``redis-server`` keeps its data in memory only,
as ElastiCache does (the tests' server fsyncs every write to its AOF, which would time the
disk). That is the message's dedup and its signature's
binding, whatever wxtoken's deduplicator does for them.

Baseline: wechatpy doing the same work on the same kind of request — ``check_signature``,
``WeChatCrypto.decrypt_message``, ``parse_message``, ``create_reply(...).render()``,
``WeChatCrypto.encrypt_message`` — and the same dedup work around it, as an app on wechatpy
would write it with redis-py or boto3: ``SET NX PX`` of an in-progress marker keyed by the
MsgId, then ``SET XX PX`` of the reply; or a conditional ``PutItem`` then an ``UpdateItem``.

Every request, on both sides, carries a fresh MsgId (and nonce), so dedup does its
first-delivery work and never answers from a cache. Requests are signed and encrypted
before each burst, outside the timing.

    .venv/bin/python -m bench.dedup_roundtrip [--rounds 9] [--backend redis,dynamodb]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.harness import (
    AES_KEY,
    APPID,
    TOKEN,
    Figure,
    LambdaContext,
    Services,
    Subject,
    have_redis,
    interleaved,
    quiet_stdout,
)
from bench.webhook_roundtrip import wechatpy_version

TARGET = 1.2  # wechatpy's time (with its dedup) / wxtoken's time (with its dedup)
# DynamoDB only: both sides again through two relays that make every round trip longer by
# twice these, to count the round trips each waits for (see ``_measure_dynamodb``).
ADDED_ONE_WAY_SECONDS = (0.005, 0.015)
# DynamoDB's latency per request, as AWS states it ("single-digit millisecond"), for the model.
MODEL_LATENCIES_MS = (2.0, 4.0, 8.0)
CPU_CALLS = 40  # requests per CPU-time sample
TOKEN_TABLE = "wxtoken-tokens"
BURST_SECONDS = 0.2
IN_PROGRESS_MS = 15_000  # the baseline's in-progress marker: a Lambda's time limit, about
ANSWER_MS = 3_600_000  # and its answer, kept for DEDUP_SECONDS' default hour

_msg_ids = itertools.count(int(time.time() * 1000) * 1000)  # fresh per request, per run
_nonces = itertools.count(1)


class Deliveries:
    """Signed, encrypted safe-mode text messages, each with a fresh MsgId and nonce, made
    before a burst (untimed) and taken one per request."""

    def __init__(self, make: Callable[[dict[str, str], str], Any]) -> None:
        from devtools.wechat.player import WeChatPlayer

        self._player = WeChatPlayer(APPID, TOKEN, AES_KEY)
        self._make = make
        self._ready: collections.deque[Any] = collections.deque()
        self.size = 200
        self.ran_dry = 0

    def refill(self) -> None:
        from devtools.wechat.player import text_xml

        while len(self._ready) < self.size:
            xml = text_xml("hello, benchmark", msg_id=next(_msg_ids))
            query, body = self._player.message(xml, encrypted=True, nonce=str(next(_nonces)))
            self._ready.append(self._make(query, body))

    def take(self) -> Any:
        if not self._ready:  # sized too small: made inside the timing (reported)
            self.ran_dry += 1
            self.refill()
        return self._ready.popleft()


class Backend:
    """One store's two subjects: the deployed webhook and wechatpy with the same dedup."""

    def __init__(
        self, services: Services, kind: str, redis_url: str | None = None, *, endpoint_url: str | None = None
    ) -> None:
        """``endpoint_url``: where both sides reach AWS (default: the moto server)."""
        from devtools.wechat.player import apigw_event

        self.kind = kind
        self.services = services
        if kind == "redis":
            env = {**services.env("ssm"), "TOKEN_STORE": "redis", "REDIS_URL": str(redis_url)}
        else:
            env = services.env("dynamodb", TOKEN_TABLE=TOKEN_TABLE)
        if endpoint_url:
            env["AWS_ENDPOINT_URL"] = endpoint_url
        env["POWERTOOLS_LOG_LEVEL"] = "INFO"  # the template's default LogLevel
        os.environ.update(env)
        from tests.fixtures.lambda_context import load_handler

        self.app = load_handler("webhook")  # a fresh container; its runtime built at first call
        self.context = LambdaContext(remaining_seconds=24 * 3600)
        self.wxtoken_requests = Deliveries(
            lambda query, body: apigw_event("POST", f"/wechat/{APPID}", query, body)
        )
        self.wechatpy_requests = Deliveries(lambda query, body: (query, body))

        from wechatpy.crypto import WeChatCrypto

        self._crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
        self.services_calls = 0  # DynamoDB requests sent by either side, counted below
        if kind == "redis":
            import redis

            self._redis = redis.Redis.from_url(str(redis_url))
            self._dedup: Callable[[str, Callable[[], str]], str] = self._redis_dedup
        else:
            import boto3

            self._dynamodb = boto3.client(
                "dynamodb", endpoint_url=endpoint_url or services.moto_endpoint, region_name="us-east-1"
            )
            self._dedup = self._dynamodb_dedup

        if kind == "dynamodb":
            # Every request either side sends to DynamoDB, counted as botocore sends it: the
            # baseline's client, and the deployed webhook's dedup client (reached through its
            # runtime: the bench's only look inside).
            records = getattr(self.app.runtime().dedup, "_records", None)
            for client in (self._dynamodb, getattr(records, "client", None)):
                if client is not None:
                    client.meta.events.register("before-send.dynamodb", self._count_call)
        # Sanity, outside the timing: both answer the echo, and dedup did its work.
        self.wxtoken_requests.refill()
        self.wechatpy_requests.refill()
        self.check()

    # --- the two subjects ---------------------------------------------------------------
    def wxtoken(self) -> None:
        self.app.lambda_handler(self.wxtoken_requests.take(), self.context)

    def wechatpy(self) -> None:
        self._wechatpy(*self.wechatpy_requests.take())

    def _wechatpy(self, q: dict[str, str], body: str) -> str:
        from wechatpy import create_reply, parse_message
        from wechatpy.utils import check_signature

        crypto = self._crypto
        check_signature(TOKEN, q["signature"], q["timestamp"], q["nonce"])
        message = parse_message(crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"]))

        def answer() -> str:
            reply: str = create_reply(message.content, message).render()
            return reply

        reply = self._dedup(f"{APPID}:{message.id}", answer)
        out: str = crypto.encrypt_message(reply, q["nonce"], q["timestamp"])
        return out

    def _redis_dedup(self, key: str, answer: Callable[[], str]) -> str:
        name = f"wechatpy-dedup:{key}"
        if not self._redis.set(name, "in-progress", nx=True, px=IN_PROGRESS_MS):
            raise AssertionError("every request is a first delivery")
        reply = answer()
        self._redis.set(name, reply, xx=True, px=ANSWER_MS)
        return reply

    def _dynamodb_dedup(self, key: str, answer: Callable[[], str]) -> str:
        name = {"S": f"wechatpy-dedup#{key}"}
        now = int(time.time())
        self._dynamodb.put_item(
            TableName=TOKEN_TABLE,
            Item={
                "name": name,
                "status": {"S": "INPROGRESS"},
                "expires_at": {"N": str(now + 3600)},
                "in_progress_expiration": {"N": str(now * 1000 + IN_PROGRESS_MS)},
            },
            ConditionExpression="attribute_not_exists(#name)",
            ExpressionAttributeNames={"#name": "name"},
        )
        reply = answer()
        self._dynamodb.update_item(
            TableName=TOKEN_TABLE,
            Key={"name": name},
            UpdateExpression="SET #status = :done, #data = :reply, #expires = :expires",
            ExpressionAttributeNames={"#status": "status", "#data": "data", "#expires": "expires_at"},
            ExpressionAttributeValues={
                ":done": {"S": "COMPLETED"},
                ":reply": {"S": reply},
                ":expires": {"N": str(now + 3600)},
            },
        )
        return reply

    # --- checks and counts --------------------------------------------------------------
    def check(self) -> None:
        from devtools.wechat.player import WeChatPlayer
        from wxtoken.wechat.messages import parse_xml

        player = WeChatPlayer(APPID, TOKEN, AES_KEY)
        before = self.records()
        response = self.app.lambda_handler(self.wxtoken_requests.take(), self.context)
        assert response["statusCode"] == 200, response
        assert parse_xml(player.decrypt_reply(response["body"]))["Content"] == "hello, benchmark"
        assert self.records() > before, "wxtoken's dedup stored nothing"
        before = self.records()
        assert parse_xml(player.decrypt_reply(self._wechatpy(*self.wechatpy_requests.take())))["Content"] == (
            "hello, benchmark"
        )
        assert self.records() > before, "the baseline's dedup stored nothing"

    def records(self) -> int:
        if self.kind == "redis":
            return int(self._redis.dbsize())
        return int(self._dynamodb.scan(TableName=TOKEN_TABLE, Select="COUNT")["Count"])

    def calls_per_request(self, requests: int = 20) -> tuple[float, float]:
        """Store calls per first delivery, counted at the wire (untimed): HTTP requests botocore
        sends to DynamoDB, or commands ``redis-server`` ran (``INFO commandstats``), for
        ``(wxtoken, wechatpy)``."""
        counts = []
        for pool, fn in ((self.wxtoken_requests, self.wxtoken), (self.wechatpy_requests, self.wechatpy)):
            pool.size = requests
            pool.refill()
            before = self._calls()
            for _ in range(requests):
                fn()
            counts.append((self._calls() - before) / requests)
        return counts[0], counts[1]

    def _count_call(self, **_: Any) -> None:
        self.services_calls += 1  # returns None: the request goes out as usual

    def _calls(self) -> int:
        if self.kind == "redis":
            stats = self._redis.info("commandstats")
            return sum(
                int(v["calls"])
                for k, v in stats.items()
                if k in {"cmdstat_get", "cmdstat_set", "cmdstat_del"}
            )
        return self.services_calls

    def size_pools(self) -> None:
        """Enough prepared requests for a burst: three times what one burst takes, judged by 30
        calls (the machine may be faster later in the run)."""
        for pool, fn in ((self.wxtoken_requests, self.wxtoken), (self.wechatpy_requests, self.wechatpy)):
            pool.size = 40
            pool.refill()
            started = time.perf_counter()
            for _ in range(30):
                fn()
            per_call = (time.perf_counter() - started) / 30
            pool.size = int(3 * BURST_SECONDS / per_call) + 100

    def subjects(self) -> dict[str, Subject]:
        return {
            "wxtoken": Subject(self.wxtoken, self.wxtoken_requests.refill),
            "wechatpy": Subject(self.wechatpy, self.wechatpy_requests.refill),
        }

    def close(self) -> None:
        if self.kind == "redis":
            self._redis.close()


def _create_token_table(services: Services) -> None:
    """The token table of ``TOKEN_STORE=dynamodb`` as template.yaml defines it (TokenTable)."""
    client = services.client("dynamodb")
    client.create_table(
        TableName=TOKEN_TABLE,
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=TOKEN_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


@contextlib.contextmanager
def _memory_redis() -> Iterator[str]:
    from tests.fixtures.redis_server import spawn_redis_server

    directory = Path(tempfile.mkdtemp(prefix="wxtoken-bench-redis-"))
    server = spawn_redis_server(directory, durable=False)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def measure(
    rounds: int = 9, backends: tuple[str, ...] = ("redis", "dynamodb")
) -> dict[str, dict[str, float]]:
    """Seconds per request of each side, per backend (each backend's pair timed interleaved)."""
    results: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack, quiet_stdout():
        services = stack.enter_context(Services(redis=False))
        services.reset()
        _create_token_table(services)
        redis_url = stack.enter_context(_memory_redis()) if "redis" in backends and have_redis() else None
        for kind in backends:
            if kind == "redis" and not redis_url:
                continue
            backend = Backend(services, kind, redis_url)
            try:
                backend.size_pools()
                if kind == "dynamodb":
                    results[kind] = _measure_dynamodb(services, backend, rounds)
                    continue
                timings = interleaved(backend.subjects(), rounds=rounds, burst_seconds=BURST_SECONDS)
                dry = backend.wxtoken_requests.ran_dry + backend.wechatpy_requests.ran_dry
                ours, theirs = backend.calls_per_request()
                results[kind] = {**timings, "ran_dry": float(dry), "calls": ours, "baseline_calls": theirs}
            finally:
                backend.close()
    return results


def _measure_dynamodb(services: Services, backend: Backend, rounds: int) -> dict[str, float]:
    """The moto figures, and what the model needs: each side's CPU per request, and the round
    trips it waits for. Those are counted by time: both sides again, interleaved with the
    first pair, through two relays (:mod:`bench.latency_relay`) that add ``2 * d`` to every
    round trip for each ``d`` of :data:`ADDED_ONE_WAY_SECONDS`; what a request gains from the
    first relay to the second, over what a round trip gains, is its number of round trips
    waited for (a difference, so the relays' own cost per request cancels)."""
    from bench.latency_relay import latency_relay

    near, far = ADDED_ONE_WAY_SECONDS
    with (
        latency_relay(services.moto_endpoint, near) as near_url,
        latency_relay(services.moto_endpoint, far) as far_url,
    ):
        slowed = {"near": Backend(services, "dynamodb", endpoint_url=near_url)}
        slowed["far"] = Backend(services, "dynamodb", endpoint_url=far_url)
        subjects = dict(backend.subjects())
        for label, twin in slowed.items():
            twin.size_pools()
            subjects.update({f"{name} {label}": subject for name, subject in twin.subjects().items()})
        timings = interleaved(subjects, rounds=rounds, burst_seconds=BURST_SECONDS)
        dry = sum(
            b.wxtoken_requests.ran_dry + b.wechatpy_requests.ran_dry for b in (backend, *slowed.values())
        )
    cpu = _cpu_per_request(backend, rounds)
    ours, theirs = backend.calls_per_request()
    added = 2 * (far - near)
    return {
        "wxtoken": timings["wxtoken"],
        "wechatpy": timings["wechatpy"],
        "wxtoken_waits": (timings["wxtoken far"] - timings["wxtoken near"]) / added,
        "wechatpy_waits": (timings["wechatpy far"] - timings["wechatpy near"]) / added,
        "wxtoken_cpu": cpu["wxtoken"],
        "wechatpy_cpu": cpu["wechatpy"],
        "ran_dry": float(dry),
        "calls": ours,
        "baseline_calls": theirs,
    }


def _cpu_per_request(backend: Backend, rounds: int) -> dict[str, float]:
    """Median CPU seconds per request of each side in this process (every thread; moto runs in
    a process of its own), in interleaved samples of ``CPU_CALLS`` requests."""
    samples: dict[str, list[float]] = {"wxtoken": [], "wechatpy": []}
    for _ in range(rounds):
        for name, subject in backend.subjects().items():
            if subject.before:
                subject.before()
            started = time.process_time()
            for _ in range(CPU_CALLS):
                subject.fn()
            samples[name].append((time.process_time() - started) / CPU_CALLS)
    return {name: statistics.median(values) for name, values in samples.items()}


def dynamodb_model(t: dict[str, float], latency_ms: float) -> float:
    """wechatpy / wxtoken at DynamoDB's latency: each side's CPU per request plus the round
    trips it waits for, each ``latency_ms``, all measured but the latency. moto's own time is
    left out: it answers one request at a time in 4–5 ms of CPU on the benchmark's two
    cores, where DynamoDB answers requests in parallel within its latency."""
    latency = latency_ms / 1000
    theirs = t["wechatpy_cpu"] + t["wechatpy_waits"] * latency
    return theirs / (t["wxtoken_cpu"] + t["wxtoken_waits"] * latency)


def figures(rounds: int = 9) -> list[Figure]:
    version = wechatpy_version()
    name = "1b. webhook round trip with dedup: wechatpy / wxtoken"
    if not version:
        return [Figure(name, "-", f">= {TARGET:.1f}x", None, "wechatpy is not installed; no baseline")]
    results = measure(rounds)
    out = []
    for kind in ("redis", "dynamodb"):
        label = f"{name} ({'Redis' if kind == 'redis' else 'DynamoDB, moto'})"
        if kind not in results:
            out.append(Figure(label, "-", f">= {TARGET:.1f}x", None, "redis-server is not on PATH"))
            continue
        t = results[kind]
        ratio = t["wechatpy"] / t["wxtoken"]
        calls = "redis-py SET NX PX, SET XX PX" if kind == "redis" else "boto3 PutItem, UpdateItem"
        note = (
            f"wxtoken {t['wxtoken'] * 1e6:.0f} µs (handler, INFO logs, dedup as deployed) vs wechatpy "
            f"{version} + {calls} {t['wechatpy'] * 1e6:.0f} µs; fresh MsgId per request; "
            f"{'commands' if kind == 'redis' else 'requests'} to the store per request: wxtoken "
            f"{t['calls']:.0f}, wechatpy {t['baseline_calls']:.0f}"
        )
        if t["ran_dry"]:
            note += f"; {t['ran_dry']:.0f} requests made inside the timing"
        out.append(Figure(label, f"{ratio:.2f}x", f">= {TARGET:.1f}x", ratio >= TARGET, note))
        if kind == "dynamodb":
            out.append(_model_figure(name, t))
    return out


def _model_figure(name: str, t: dict[str, float]) -> Figure:
    models = {latency: dynamodb_model(t, latency) for latency in MODEL_LATENCIES_MS}
    near, far = (2 * d * 1e3 for d in ADDED_ONE_WAY_SECONDS)
    note = (
        f"modelled, not measured against DynamoDB: CPU per request wxtoken {t['wxtoken_cpu'] * 1e6:.0f} µs, "
        f"wechatpy {t['wechatpy_cpu'] * 1e6:.0f} µs; round trips waited for per request wxtoken "
        f"{t['wxtoken_waits']:.2f}, wechatpy {t['wechatpy_waits']:.2f} (round trips made "
        f"{near:.0f} and {far:.0f} ms longer); at "
        + ", ".join(f"{latency:.0f} ms {ratio:.2f}x" for latency, ratio in models.items())
        + " per DynamoDB request"
    )
    lowest = models[min(models)]
    return Figure(
        f"{name} (DynamoDB at {min(models):.0f}-{max(models):.0f} ms a request, model)",
        f"{lowest:.2f}x",
        f">= {TARGET:.1f}x",
        None,
        note,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--backend", default="redis,dynamodb")
    args = parser.parse_args()
    if not wechatpy_version():
        parser.error("wechatpy is not installed (pip install -r requirements-dev.txt)")
    backends = tuple(b.strip() for b in args.backend.split(",") if b.strip())
    if "redis" in backends and not have_redis():
        print("redis-server is not on PATH: Redis skipped")
    results = measure(args.rounds, backends)
    print(f"{'backend':10} {'wxtoken µs':>11} {'wechatpy µs':>12} {'wechatpy / wxtoken':>19}")
    for kind, t in results.items():
        print(
            f"{kind:10} {t['wxtoken'] * 1e6:11.0f} {t['wechatpy'] * 1e6:12.0f} "
            f"{t['wechatpy'] / t['wxtoken']:18.2f}x  (target >= {TARGET:.1f}x)"
            + (f"  [{t['ran_dry']:.0f} requests made inside the timing]" if t["ran_dry"] else "")
        )
        unit = "commands" if kind == "redis" else "requests"
        print(
            f"{'':10} store {unit} per request: wxtoken {t['calls']:.1f}, wechatpy {t['baseline_calls']:.1f}"
        )
        if kind == "dynamodb":
            print(
                f"{'':10} CPU µs per request: wxtoken {t['wxtoken_cpu'] * 1e6:.0f}, wechatpy "
                f"{t['wechatpy_cpu'] * 1e6:.0f}; round trips waited for: wxtoken {t['wxtoken_waits']:.2f}, "
                f"wechatpy {t['wechatpy_waits']:.2f}"
            )
            for latency in MODEL_LATENCIES_MS:
                print(
                    f"{'':10} model at {latency:.0f} ms a DynamoDB request: "
                    f"{dynamodb_model(t, latency):.2f}x (CPU + round trips; not measured on DynamoDB)"
                )
    micros = {k: {n: round(t[n] * 1e6, 1) for n in ("wxtoken", "wechatpy")} for k, t in results.items()}
    print(json.dumps(micros))


if __name__ == "__main__":
    main()
