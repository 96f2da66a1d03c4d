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

    def __init__(self, services: Services, kind: str, redis_url: str | None = None) -> None:
        from devtools.wechat.player import apigw_event

        self.kind = kind
        self.services = services
        if kind == "redis":
            env = {**services.env("ssm"), "TOKEN_STORE": "redis", "REDIS_URL": str(redis_url)}
        else:
            env = services.env("dynamodb", TOKEN_TABLE=TOKEN_TABLE)
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
            self._dynamodb = services.client("dynamodb")
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
                timings = interleaved(backend.subjects(), rounds=rounds, burst_seconds=BURST_SECONDS)
                dry = backend.wxtoken_requests.ran_dry + backend.wechatpy_requests.ran_dry
                ours, theirs = backend.calls_per_request()
                results[kind] = {**timings, "ran_dry": float(dry), "calls": ours, "baseline_calls": theirs}
            finally:
                backend.close()
    return results


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
    return out


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
    micros = {k: {n: round(t[n] * 1e6, 1) for n in ("wxtoken", "wechatpy")} for k, t in results.items()}
    print(json.dumps(micros))


if __name__ == "__main__":
    main()
