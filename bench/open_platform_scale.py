"""Open Platform at scale: thousands of authorizers through a simulated day, and what it costs.

One third-party platform with N authorizers (5,000; ``--quick``: 500) that authorized it
before wxtoken, so the first run imports them from ``api_get_authorizer_list``. A fake clock
moves minute by minute through 24 hours (``--quick``: 3). Every minute WeChat's side moves
first — a ``component_verify_ticket`` pushed every 10 minutes and stored as the webhook stores
it — then the refresh function's schedules in ``template.yaml`` fire on time with their
deployed payloads (the 100-minute scheduled run, the 1-minute guard), through
``parse_refresh_event`` and the ``Refresher`` (on the fake clock), the DynamoDB store on a moto
server (its own process) and the WeChat stand-in over a real socket (on the same clock). Each
run gets the function's timeout (``Timeout`` in the template, less the handler's 2 s reserve)
on the wall clock; the fake clock moves only between runs. After each run the metrics are
flushed, as the handler's ``@metrics.log_metrics`` does.

At the last second of every minute the stored tokens are read as a reader in another language
reads them (``BatchGetItem`` of ``{appid}/access_token``, 100 at a time, strongly consistent)
and judged by the stand-in. Reading thousands of items a minute through moto costs more than
the simulation itself, so at 5,000 a random sample of 500 is judged every minute and every
authorizer every 10 minutes (the output says which). An authorizer with no token counts as
invalid once it has had one, and once the import's first cycle is over.

What is counted, and how it becomes a monthly cost:

- **WeChat**: every request the stand-in received, by endpoint, by minute, by authorizer.
- **DynamoDB**: every request the refresh function's boto3 client sends (a botocore event
  hook on its Session), by operation, turned into on-demand request units as DynamoDB bills
  them: a write of up to 1 KB is 1 write unit, a strongly consistent read of up to 4 KB 1 read
  unit, a query of the eventually consistent index 0.5 per 4 KB returned (0.5 at least); a
  write to an item in the ``queue-due`` index writes the index too (2 index writes when it
  moves an entry: a delete and a put), a conditional write DynamoDB refuses still costs its
  unit. moto's timings are not DynamoDB's, so costs come from these counts.
- **Lambda**: the wall time of every run (on moto and the stand-in on localhost: a figure of
  this machine), and a model of a run on AWS from the counts (one DynamoDB request = 5 ms; one
  WeChat call = 100–300 ms from outside mainland China; 16 authorizers at a time, in batches
  of 64, as ``wxtoken.refresh.platform`` does).
- **CloudWatch**: the EMF documents the runs write (each metric name and dimension set, and
  the hours of the day it was sent: CloudWatch bills a custom metric by the hours it is
  sent), and the bytes of every line written (CloudWatch Logs ingestion, at the template's
  ``LogLevel``, INFO).

Prices: us-east-1 on-demand list prices as docs/costs.md reads them (November 2026).

How long it takes: moto is the bottleneck. Its DynamoDB sorts every item of the table for each
query; :func:`serve_indexed_moto` answers the index's queries from the matching items (same
answers), without which the runs' queries timed out at 5,000. What is left is about 5 ms a
request on moto (one request at a time, on a shared 2-vCPU machine): the first cycle at 5,000
(import and 5,000 refreshes, 60,000 requests) takes about 8 minutes, every simulated minute
after it about 2 s, so 24 hours took 56 minutes on a quiet machine (``--hours 4``: about 15).
``--save`` keeps the simulated day, ``--load`` prints its figures again.

    .venv/bin/python -m bench.open_platform_scale [--quick] [--authorizers N] [--hours H] [--save PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import ROOT, Figure, Services, print_table

COMPONENT = "wx3333333333333333"
COMPONENT_SECRET = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"  # pragma: allowlist secret
PUSH_TOKEN = "componentpushtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TOKEN_TABLE = "wxtoken-tokens"
MINUTE = 60
TICKET_EVERY_MINUTES = 10
# Authorizers judged every minute at scale (all of them every FULL_CHECK_EVERY minutes).
SAMPLE = 500
FULL_CHECK_EVERY = 10
# The handler's reserve (Deadline.from_context): the run gets the timeout less this.
HANDLER_RESERVE_SECONDS = 2.0

# --- prices: us-east-1, on-demand list prices (docs/costs.md, read November 2026) --------------
HOURS_A_MONTH = 730
DAYS_A_MONTH = HOURS_A_MONTH / 24
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1_000_000
DYNAMODB_WRU = 0.625 / 1_000_000
DYNAMODB_RRU = 0.125 / 1_000_000
DYNAMODB_STORAGE_GB_MONTH = 0.25
DYNAMODB_PITR_GB_MONTH = 0.20
CLOUDWATCH_METRIC_MONTH = 0.30
CLOUDWATCH_LOGS_GB = 0.50
# The model of a run on AWS: DynamoDB in the same region answers in single-digit
# milliseconds; WeChat's API from outside mainland China takes 100-300 ms a round trip.
DYNAMODB_REQUEST_SECONDS = 0.005
WECHAT_ROUND_TRIP_SECONDS = (0.1, 0.3)
# Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
LAMBDA_MB_PER_VCPU = 1769
SCALES = (5_000, 50_000)


@dataclass(frozen=True)
class Scale:
    authorizers: int
    minutes: int
    sample: int | None  # None: every authorizer every minute

    def describe_check(self) -> str:
        if self.sample is None:
            return f"all {self.authorizers} authorizers judged every minute"
        return (
            f"a random {self.sample} of {self.authorizers} judged every minute, all every "
            f"{FULL_CHECK_EVERY} minutes"
        )


FULL = Scale(5_000, 24 * 60, SAMPLE)
QUICK = Scale(500, 3 * 60, None)


# --- DynamoDB requests as DynamoDB bills them ------------------------------------------------
def _attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (strings and numbers as written)."""
    (kind, inner), *_ = value.items()
    if kind in ("S", "N", "B"):
        return len(str(inner).encode())
    if kind == "M":
        return 3 + sum(len(k.encode()) + _attribute_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_attribute_size(v) for v in inner)
    return 1


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB rounds it: attribute names plus values."""
    return sum(len(name.encode()) + _attribute_size(value) for name, value in item.items())


@dataclass
class Units:
    """Request counts by operation and the request units they cost."""

    requests: Counter[str] = field(default_factory=Counter)
    rru: float = 0.0
    wru: float = 0.0
    index_wru: float = 0.0

    def add(self, other: Units) -> None:
        self.requests.update(other.requests)
        self.rru += other.rru
        self.wru += other.wru
        self.index_wru += other.index_wru

    @property
    def reads(self) -> int:
        return self.requests["GetItem"] + self.requests["BatchGetItem"]

    @property
    def writes(self) -> int:
        return self.requests["PutItem"] + self.requests["DeleteItem"] + self.requests["UpdateItem"]

    @property
    def queries(self) -> int:
        return self.requests["Query"] + self.requests["Scan"]

    @property
    def total(self) -> int:
        return sum(self.requests.values())


class DynamoDBMeter:
    """Counts the DynamoDB requests of every client made from a boto3 Session (attach it
    before the first client is built) and prices them in request units."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = threading.local()
        self._indexed: set[str] = set()  # items in the queue-due index, as our writes left them
        self.units = Units()
        self.other: Counter[str] = Counter()  # requests to other services (Secrets Manager)

    def attach(self, session: Any) -> None:
        session.events.register("before-parameter-build.dynamodb", self._request)
        session.events.register("after-call.dynamodb", self._response)
        session.events.register("before-call", self._any_call)

    def take(self) -> Units:
        """The units counted since the last take."""
        with self._lock:
            units, self.units = self.units, Units()
            return units

    def _any_call(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        if service != "dynamodb":
            with self._lock:
                self.other[f"{service}.{model.name}"] += 1

    def _request(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self._pending.params = dict(params)

    def _response(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        params: dict[str, Any] = getattr(self._pending, "params", {})
        operation = model.name
        refused = bool((parsed.get("Error") or {}).get("Code"))
        with self._lock:
            units = self.units
            units.requests[operation] += 1
            if operation == "GetItem":
                size = item_size(parsed.get("Item") or {})
                per = 1.0 if params.get("ConsistentRead") else 0.5
                units.rru += per * max(1, math.ceil(size / 4096))
            elif operation == "Query":
                size = sum(item_size(item) for item in parsed.get("Items") or [])
                per = 1.0 if params.get("ConsistentRead") else 0.5
                units.rru += per * max(1, math.ceil(size / 4096))
            elif operation == "PutItem":
                item = params.get("Item") or {}
                name = item.get("name", {}).get("S", "")
                units.wru += max(1, math.ceil(item_size(item) / 1024))
                if not refused:
                    was = name in self._indexed
                    now = "queue" in item and "due_at" in item
                    # Into the index: 1; moved in it: a delete and a put; out of it: 1.
                    units.index_wru += (2 if was else 1) if now else (1 if was else 0)
                    (self._indexed.add if now else self._indexed.discard)(name)
            elif operation == "DeleteItem":
                name = (params.get("Key") or {}).get("name", {}).get("S", "")
                units.wru += 1
                if not refused and name in self._indexed:
                    units.index_wru += 1
                    self._indexed.discard(name)
            elif operation in ("UpdateItem", "BatchWriteItem"):
                units.wru += 1  # not used by the store; counted so a change shows


# --- moto, answering index queries at a table of thousands ------------------------------------
def serve_indexed_moto(port_out: Any) -> None:
    """The tests' moto server (``devtools.sam.moto_server``), whose DynamoDB answers a query of a
    global secondary index from the items that can match it.

    moto 5 sorts every item of the table for each query (``Table.all_items``) and then every
    item of the index partition with DynamoType comparisons: at 5,000 authorizers (15,000
    items) a ``queue-due`` query took 1 to 3 s, past the store's 0.75 s read timeout, so the
    runs stopped at their first query. DynamoDB answers it in milliseconds. Here moto's own
    query runs unchanged on the items whose index hash key and range condition match (the
    ones it would keep), so its answers — order, ``Limit``, pages — are what they were.
    """
    from moto.dynamodb.models.table import Table

    from devtools.sam.moto_server import serve_moto_forever

    original = Table.query

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Table.query(hash_key, range_comparison, range_objs, limit, exclusive_start_key,
        # scan_index_forward, projection_expressions, index_name, ...), as moto calls it.
        index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions")
        if not index_name or not conditions or self.range_key_attr:
            return original(self, *args, **kwargs)
        range_comparison, range_objs = args[1], args[2]
        range_conditions = kwargs.get("range_key_conditions")
        ranges = [k["AttributeName"] for k in self.get_index(index_name).schema if k["KeyType"] == "RANGE"]
        compared = range_conditions[-1][0] if range_conditions else (ranges[0] if len(ranges) == 1 else None)
        candidates = []
        for item in self.items.values():
            attrs = item.attrs
            if any((mine := attrs.get(name)) is None or mine != value for name, value in conditions):
                continue
            if range_comparison and compared is not None:
                value = attrs.get(compared)
                if value is None or not value.compare(range_comparison, range_objs):
                    continue
            candidates.append(item)
        candidates.sort(key=lambda item: item.hash_key)  # as all_items orders them
        self.all_items = lambda: list(candidates)
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]
    serve_moto_forever(port_out)


# --- what the runs write to stdout: EMF metrics and log lines ---------------------------------
class Stdout:
    """File descriptor 1 sent to a temporary file, read back after every run: the bytes
    CloudWatch Logs would ingest and the EMF metrics among them."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self._saved = -1
        self.real: Any = None

    def __enter__(self) -> Stdout:
        sys.stdout.flush()
        self._saved = os.dup(1)
        os.dup2(self._file.fileno(), 1)
        self.real = os.fdopen(os.dup(self._saved), "w", buffering=1)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)
        self.real.close()
        self._file.close()

    def take(self) -> bytes:
        sys.stdout.flush()
        self._file.seek(0)
        data = self._file.read()
        self._file.seek(0)
        self._file.truncate()
        return data


def emf_metrics(text: bytes) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every (metric name, dimensions) the EMF documents in ``text`` carry."""
    found: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text.splitlines():
        if not line.startswith(b'{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                labels = tuple((name, str(document.get(name))) for name in dimensions)
                for metric in directive["Metrics"]:
                    found.add((metric["Name"], labels))
    return found


# --- the day ---------------------------------------------------------------------------------
@dataclass
class Run:
    minute: int
    trigger: str
    seconds: float
    cpu_seconds: float
    units: Units
    refreshed: int
    failed: int
    due_left: int
    wechat_calls: int
    log_bytes: int


@dataclass
class Day:
    scale: Scale
    timeout: int
    memory_mb: int
    runs: list[Run] = field(default_factory=list)
    invalid_minutes: dict[int, list[str]] = field(default_factory=dict)
    missing_first_minutes: list[int] = field(default_factory=list)  # the import's first cycle
    calls_per_minute: list[Counter[str]] = field(default_factory=list)
    authorizer_calls: Counter[str] = field(default_factory=Counter)
    # Refreshes that failed, by authorizer (the runs' reports): each is retried, a call more.
    authorizer_failures: Counter[str] = field(default_factory=Counter)
    appids: list[str] = field(default_factory=list)
    metric_hours: dict[tuple[str, tuple[tuple[str, str], ...]], set[int]] = field(default_factory=dict)
    stored_bytes: int = 0
    stored_items: int = 0
    first_cycle_minutes: int = 0
    import_done_minute: int | None = None
    all_refreshed_minute: int | None = None
    other_requests: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0
    check_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def template_function() -> tuple[int, int]:
    """The refresh function's Timeout and MemorySize in template.yaml (MemorySize from the
    Globals when the function sets none)."""
    import yaml

    from devtools.sam.template import CloudFormationLoader

    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506
    function = template["Resources"]["RefreshTokenFunction"]["Properties"]
    defaults = template.get("Globals", {}).get("Function", {})
    timeout = _on_platform(function.get("Timeout", defaults.get("Timeout", 3)))
    memory = _on_platform(function.get("MemorySize", defaults.get("MemorySize", 128)))
    return int(timeout), int(memory)


def _on_platform(value: Any) -> Any:
    """A property's value on a deployment with ``OpenPlatform`` set: the template picks some
    (``MemorySize``) with ``!If [UseOpenPlatform, ...]``."""
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        return _on_platform(when_true if condition == "UseOpenPlatform" else when_false)
    return value


class _LambdaContext:
    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def simulate(services: Services, scale: Scale, *, seed: int = 13, progress: Any = None) -> Day:  # noqa: C901
    """The day (module docstring), on fresh moto state."""
    import boto3

    from bench.quota import SCHEDULED_TIME, deployed_schedules
    from devtools.wechat.component import ComponentPush
    from tests.fixtures.aws import AWS, create_token_table
    from tests.fixtures.wechat import FakeClock
    from wxtoken.apps import AppsSource
    from wxtoken.config import Settings
    from wxtoken.deadline import Deadline
    from wxtoken.observability import metrics
    from wxtoken.refresh.events import parse_refresh_event
    from wxtoken.refresh.refresher import Refresher
    from wxtoken.store import open_store
    from wxtoken.store.base import RecordName
    from wxtoken.wechat.messages import parse_xml
    from wxtoken.wechat.wiring import build_wechat_api

    clock = services.clock
    assert isinstance(clock, FakeClock)
    timeout, memory = template_function()
    day = Day(scale, timeout, memory)
    rng = random.Random(seed)
    apps = {
        COMPONENT: {
            "kind": "component",
            "app_secret": COMPONENT_SECRET,
            "token": PUSH_TOKEN,
            "encoding_aes_key": AES_KEY,
        }
    }
    services.reset(apps=apps)
    create_token_table(AWS(endpoint_url=services.moto_endpoint), TOKEN_TABLE)
    env = services.env("dynamodb", TOKEN_TABLE=TOKEN_TABLE, POWERTOOLS_LOG_LEVEL="INFO")
    os.environ.update(env)
    settings = Settings.from_env(env)

    # The function's objects, as build_refresher makes them, on a Session whose requests
    # are counted.
    session = boto3.session.Session()
    meter = DynamoDBMeter()
    meter.attach(session)
    refresher = Refresher(
        settings=settings,
        store=open_store(settings, clock=clock, boto3_session=session),
        wechat=build_wechat_api(settings),
        apps=AppsSource(
            settings.required_apps_secret_id, max_age=settings.secret_cache_seconds, boto3_session=session
        ),
        clock=clock,
    )
    webhook_store = open_store(settings, clock=clock)  # the webhook's: not the function's cost
    checker = services.client("dynamodb")

    wechat = services.wechat
    platform = wechat.open_platform
    platform.add_component(COMPONENT, COMPONENT_SECRET, PUSH_TOKEN, AES_KEY)
    day.appids = appids = platform.add_authorizers(COMPONENT, scale.authorizers)
    wechat.reset_calls()

    def deliver(push: ComponentPush) -> None:
        """Stored as the webhook stores a ticket push (its tests take it through the handler)."""
        created = float(parse_xml(push.xml)["CreateTime"])
        assert push.ticket is not None
        record = {"ticket": push.ticket, "expires_at": created + 43200, "fetched_at": created}
        webhook_store.write_if_newer(COMPONENT, RecordName.COMPONENT_VERIFY_TICKET, record, 43200)

    had_token: set[str] = set()

    def invalid(checked: list[str], first_cycle: bool) -> list[str]:
        stored: dict[str, str] = {}
        for start in range(0, len(checked), 100):
            keys = [{"name": {"S": f"{a}/access_token"}} for a in checked[start : start + 100]]
            request: dict[str, Any] = {TOKEN_TABLE: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = checker.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(TOKEN_TABLE, []):
                    value = json.loads(item["value"]["S"])["access_token"]
                    stored[item["name"]["S"].split("/", 1)[0]] = value
                request = answer.get("UnprocessedKeys") or {}
        bad = []
        for appid in checked:
            token = stored.get(appid)
            if token is None:
                if appid in had_token or not first_cycle:
                    bad.append(appid)
                continue
            had_token.add(appid)
            if not platform.is_authorizer_token_valid(appid, token):
                bad.append(appid)
        return bad

    schedules = deployed_schedules()
    context_seconds = float(timeout)
    from datetime import UTC, datetime

    deliver(platform.push_ticket(COMPONENT))
    day.first_cycle_minutes = 110  # the 100-minute cycle after the import, and the margin
    started = time.monotonic()
    with Stdout() as out:
        for minute in range(scale.minutes):
            if minute and minute % TICKET_EVERY_MINUTES == 0:
                deliver(platform.push_ticket(COMPONENT))
            fired_at = datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for schedule in schedules:
                if minute % schedule.every_minutes:
                    continue
                payload = json.loads(schedule.payload.replace(SCHEDULED_TIME, fired_at))
                request = parse_refresh_event(payload, clock=clock)
                cpu, wall = time.process_time(), time.perf_counter()
                report = refresher.run(request, Deadline.from_context(_LambdaContext(context_seconds)))
                metrics.flush_metrics()
                seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
                text = out.take()
                calls = wechat.calls()
                wechat.reset_calls()
                run_calls = Counter(c.endpoint for c in calls)
                day.calls_per_minute.append(run_calls)  # folded by minute below
                day.authorizer_calls.update(
                    c.appid for c in calls if c.endpoint == "authorizer_token" and c.appid
                )
                for key in emf_metrics(text):
                    day.metric_hours.setdefault(key, set()).add(minute // 60)
                mine = report.platforms.get(COMPONENT, {})
                day.authorizer_failures.update(
                    failure["appid"] for failure in mine.get("failures", []) if failure.get("appid")
                )
                day.runs.append(
                    Run(
                        minute,
                        request.trigger.value,
                        seconds,
                        cpu_seconds,
                        meter.take(),
                        int(mine.get("authorizers_refreshed", 0)),
                        int(mine.get("authorizers_failed", 0)),
                        int(mine.get("due_left", 0)),
                        len(calls),
                        len(text),
                    )
                )
                if report.failed or mine.get("errors"):
                    day.notes.append(f"minute {minute}: {report.failed} {mine.get('errors')}")
                if day.import_done_minute is None and mine.get("imported"):
                    day.import_done_minute = minute
                if progress is not None and seconds > 10:
                    print(
                        f"  minute {minute} {request.trigger.value} run: {seconds:.1f} s, "
                        f"{day.runs[-1].units.total} DynamoDB requests, {len(calls)} WeChat calls, "
                        f"{day.runs[-1].refreshed} refreshed, {day.runs[-1].due_left} due left",
                        file=progress,
                        flush=True,
                    )
            if day.all_refreshed_minute is None and len(day.authorizer_calls) == len(appids):
                day.all_refreshed_minute = minute
            # The minute's last second: every token must still be good for readers.
            clock.advance(MINUTE - 1)
            check_started = time.monotonic()
            first_cycle = minute < day.first_cycle_minutes
            if scale.sample is None or minute % FULL_CHECK_EVERY == FULL_CHECK_EVERY - 1:
                checked = appids
            else:
                checked = rng.sample(appids, scale.sample)
            bad = invalid(checked, first_cycle)
            day.check_seconds += time.monotonic() - check_started
            if bad:
                day.invalid_minutes[minute] = bad
            if first_cycle and len(had_token) < len(appids):
                day.missing_first_minutes.append(minute)
            clock.advance(1)
            if progress is not None and minute % 10 == 9:
                last = day.runs[-1]
                print(
                    f"  {minute + 1:4} min  {time.monotonic() - started:6.0f} s  "
                    f"last run {last.seconds:.2f} s, {last.units.total} DynamoDB requests; "
                    f"invalid minutes so far {len(day.invalid_minutes)}",
                    file=progress,
                    flush=True,
                )
    day.wall_seconds = time.monotonic() - started
    day.other_requests = meter.other
    # What the table holds at the end (storage): every item, as DynamoDB sizes them.
    pages = services.client("dynamodb").get_paginator("scan").paginate(TableName=TOKEN_TABLE)
    for page in pages:
        for item in page["Items"]:
            day.stored_items += 1
            day.stored_bytes += item_size(item) + 100  # DynamoDB's per-item overhead
    return day


# --- what the day says ---------------------------------------------------------------------
@dataclass(frozen=True)
class Month:
    authorizers: int
    lambda_gb_seconds: float
    lambda_cost: float
    dynamodb_cost: float
    storage_cost: float
    metrics_cost: float
    logs_cost: float
    guard_seconds: tuple[float, float]  # a steady guard run on AWS, modelled (fast, slow WeChat)
    first_cycle_minutes: tuple[float, float]  # to refresh every authorizer after the import
    cpu_seconds_per_run: float
    requests_per_refresh: float
    lambda_seconds_a_day: float  # modelled, with the slow WeChat

    @property
    def total(self) -> float:
        return self.lambda_cost + self.dynamodb_cost + self.storage_cost + self.metrics_cost + self.logs_cost


def _minute_calls(day: Day, endpoint: str) -> list[int]:
    per_minute: dict[int, int] = defaultdict(int)
    for run, calls in zip(day.runs, day.calls_per_minute, strict=True):
        per_minute[run.minute] += calls[endpoint]
    return [per_minute[m] for m in range(day.scale.minutes)]


def steady(day: Day) -> list[Run]:
    return [run for run in day.runs if run.minute >= day.first_cycle_minutes]


def modelled_run_seconds(
    refreshes: float, requests_per_refresh: float, fixed_requests: float, rtt: float
) -> float:
    """A run on AWS: its fixed requests one after another, then the refreshes in batches of
    64, 16 at a time, each its DynamoDB requests one after another and one WeChat call."""
    per_refresh = requests_per_refresh * DYNAMODB_REQUEST_SECONDS + rtt
    full, rest = divmod(math.ceil(refreshes), 64)
    waves = full * 4 + math.ceil(rest / 16)
    batches = full + (1 if rest else 0)
    return (fixed_requests + batches) * DYNAMODB_REQUEST_SECONDS + waves * per_refresh


def split(runs: list[Run], value: Callable[[Run], float]) -> tuple[float, float]:
    """``value`` of a run as (fixed per run, per refreshed authorizer): a least-squares line
    through the runs (a run's refreshes vary from minute to minute); with no spread, all of it
    per refresh."""
    xs = [float(run.refreshed) for run in runs]
    ys = [value(run) for run in runs]
    try:
        slope, intercept = statistics.linear_regression(xs, ys)
    except statistics.StatisticsError:
        return 0.0, sum(ys) / max(1.0, sum(xs))
    if intercept < 0 or slope < 0:
        return 0.0, sum(ys) / max(1.0, sum(xs))
    return intercept, slope


def month(day: Day, authorizers: int) -> Month:
    """A month of the steady day (after the first cycle), scaled to ``authorizers`` where the
    work grows with them (refreshes and what each costs); runs and what each costs whatever it
    refreshes stay (module docstring)."""
    runs = steady(day)
    minutes = day.scale.minutes - day.first_cycle_minutes
    per_day = 24 * 60 / minutes
    factor = authorizers / day.scale.authorizers
    refreshes = sum(run.refreshed for run in runs)
    runs_a_month = len(runs) * per_day * DAYS_A_MONTH
    refreshes_a_month = refreshes * per_day * DAYS_A_MONTH * factor

    def monthly(value: Callable[[Run], float]) -> float:
        fixed, per_refresh = split(runs, value)
        return fixed * runs_a_month + per_refresh * refreshes_a_month

    rru = monthly(lambda run: run.units.rru)
    wru = monthly(lambda run: run.units.wru + run.units.index_wru)
    # The daily import re-reads every listed authorizer's refresh token (one consistent read).
    rru += authorizers * DAYS_A_MONTH
    dynamodb_cost = rru * DYNAMODB_RRU + wru * DYNAMODB_WRU

    fixed_requests, per_refresh = split(runs, lambda run: float(run.units.total))
    per_minute = refreshes * factor / minutes
    seconds = {
        rtt: modelled_run_seconds(per_minute, per_refresh, fixed_requests, rtt)
        for rtt in WECHAT_ROUND_TRIP_SECONDS
    }
    # Billed: every run at the modelled time with the slow WeChat.
    gb_seconds = runs_a_month * seconds[WECHAT_ROUND_TRIP_SECONDS[1]] * day.memory_mb / 1024
    lambda_cost = gb_seconds * LAMBDA_ARM_GB_SECOND + runs_a_month * LAMBDA_REQUEST

    storage_gb = day.stored_bytes * factor / 1e9
    storage_cost = storage_gb * (DYNAMODB_STORAGE_GB_MONTH + DYNAMODB_PITR_GB_MONTH)
    metric_months = sum(len(hours) for hours in day.metric_hours.values()) / (day.scale.minutes / 60)
    metrics_cost = metric_months * CLOUDWATCH_METRIC_MONTH
    logs_cost = monthly(lambda run: float(run.log_bytes)) / 1e9 * CLOUDWATCH_LOGS_GB

    # The first cycle after an import: every authorizer is due at once; a run has its timeout
    # less the handler's reserve and platform.py's 12 s reserve for batches.
    usable = day.timeout - HANDLER_RESERVE_SECONDS - 12.0
    first = tuple(
        authorizers / (usable / (per_refresh * DYNAMODB_REQUEST_SECONDS + rtt) * 16)
        for rtt in WECHAT_ROUND_TRIP_SECONDS
    )
    fixed_cpu, cpu_per_refresh = split(runs, lambda run: run.cpu_seconds)
    return Month(
        authorizers,
        gb_seconds,
        lambda_cost,
        dynamodb_cost,
        storage_cost,
        metrics_cost,
        logs_cost,
        (seconds[WECHAT_ROUND_TRIP_SECONDS[0]], seconds[WECHAT_ROUND_TRIP_SECONDS[1]]),
        (first[0], first[1]),
        fixed_cpu + cpu_per_refresh * per_minute,
        per_refresh,
        runs_a_month / DAYS_A_MONTH * seconds[WECHAT_ROUND_TRIP_SECONDS[1]],
    )


def figures_of(day: Day) -> list[Figure]:
    scale = day.scale
    n = scale.authorizers
    hours = scale.minutes / 60
    rows: list[Figure] = []
    invalid_note = scale.describe_check()
    if day.invalid_minutes:
        first = min(day.invalid_minutes)
        invalid_note += (
            f"; first at minute {first}: {len(day.invalid_minutes[first])} authorizers, e.g. "
            f"{day.invalid_minutes[first][:3]}; minutes {sorted(day.invalid_minutes)[:10]}"
        )
    rows.append(
        Figure(
            f"6. platform, {n} authorizers, {hours:g} h: minutes with a stored token invalid",
            f"{len(day.invalid_minutes)} of {scale.minutes}",
            "0",
            not day.invalid_minutes,
            invalid_note + "; an authorizer without a token yet in the import's first cycle is not counted "
            f"(every one had a token by minute {day.all_refreshed_minute})",
        )
    )
    never = [a for a in day.appids if a not in day.authorizer_calls]
    later = sum(_minute_calls(day, "authorizer_token")[day.first_cycle_minutes :])
    steady_calls = later / n * 24 * 60 / max(1, scale.minutes - day.first_cycle_minutes)
    per = [day.authorizer_calls[a] for a in day.appids]
    cycles = scale.minutes / 100
    allowed = math.ceil(cycles) + 1
    failures = getattr(day, "authorizer_failures", Counter())  # absent from days saved before
    # A refresh that failed after its call (a store write timing out, say) is retried: a call
    # more for that authorizer, and only for it.
    over = [a for a in day.appids if day.authorizer_calls[a] > allowed + failures[a]]
    rows.append(
        Figure(
            f"6. platform, {n} authorizers, {hours:g} h: api_authorizer_token calls per authorizer",
            f"mean {statistics.mean(per):.2f}, max {max(per)}",
            f"<= {allowed} + its failed refreshes",
            not over and not never,
            f"{hours:g} h = {cycles:g} cycles of 100 minutes, plus the import's refresh; "
            f"min {min(per)}; never refreshed: {len(never)}; over {allowed}: "
            f"{sum(1 for calls in per if calls > allowed)}; failed refreshes {sum(failures.values())} "
            f"of {len(failures)} authorizers; over their allowance: {len(over)}; after the first "
            f"cycle {steady_calls:.1f} a day (24 h / 100 min = 14.4)",
        )
    )
    per_minute = _minute_calls(day, "authorizer_token")
    after = per_minute[day.first_cycle_minutes :]
    busiest = max(after) if after else 0
    rows.append(
        Figure(
            f"6. platform, {n} authorizers: busiest minute's authorizer calls, after the first cycle",
            str(busiest),
            f"<= {n // 10} (a tenth)",
            busiest <= n / 10,
            f"mean {statistics.mean(after):.1f} a minute after minute {day.first_cycle_minutes}"
            if after
            else "",
        )
    )
    in_first = per_minute[: day.first_cycle_minutes]
    rows.append(
        Figure(
            f"6. platform, {n} authorizers: busiest minute's authorizer calls, first cycle",
            str(max(in_first)),
            "-",
            None,
            f"every authorizer had a token by minute {day.all_refreshed_minute}; "
            f"first minutes: {in_first[:6]}",
        )
    )
    component = sum(_minute_calls(day, "component_token"))
    others = Counter[str]()
    for calls in day.calls_per_minute:
        others.update({k: v for k, v in calls.items() if k not in ("authorizer_token", "component_token")})
    rows.append(
        Figure(
            f"6. platform, {hours:g} h: component token calls",
            str(component),
            f"<= {math.ceil(cycles) + 1}",
            component <= math.ceil(cycles) + 1,
            f"other WeChat calls: {dict(others)}",
        )
    )
    seconds = [run.seconds for run in day.runs]
    guard = [run.seconds for run in steady(day) if run.trigger == "guard"]
    rows.append(
        Figure(
            f"6. platform, {n} authorizers, {hours:g} h: Lambda wall time on this machine (moto)",
            f"{sum(seconds):.0f} s",
            "-",
            None,
            f"{len(day.runs)} runs; a run: p50 {statistics.median(seconds):.2f} s, max {max(seconds):.1f} s "
            f"(timeout {day.timeout} s); steady guard p50 {statistics.median(guard):.2f} s; "
            f"moto on localhost is not DynamoDB: costs use the request counts",
        )
    )
    runs = steady(day)
    units = Units()
    for run in runs:
        units.add(run.units)
    refreshes = sum(run.refreshed for run in runs) or 1
    fixed, per_refresh = split(runs, lambda run: float(run.units.total))
    rows.append(
        Figure(
            f"6. platform, {n} authorizers: DynamoDB requests per run after the first cycle",
            f"{units.total / len(runs):.1f}",
            "-",
            None,
            f"reads {units.reads / len(runs):.1f}, writes {units.writes / len(runs):.1f}, queries "
            f"{units.queries / len(runs):.1f}; fitted: {fixed:.1f} a run + {per_refresh:.1f} per refreshed "
            f"authorizer; {dict(units.requests)} over {refreshes} refreshes; RRU {units.rru:.0f}, "
            f"WRU {units.wru:.0f} + index {units.index_wru:.0f}",
        )
    )
    usable = day.timeout - HANDLER_RESERVE_SECONDS - 12.0
    vcpu = day.memory_mb / LAMBDA_MB_PER_VCPU
    for authorizers in SCALES:
        m = month(day, authorizers)
        rows.append(
            Figure(
                f"6. platform, {authorizers} authorizers: a steady guard run on AWS, modelled",
                f"{m.guard_seconds[0]:.1f}-{m.guard_seconds[1]:.1f} s",
                f"<= {usable:g} s",
                m.guard_seconds[1] <= usable,
                f"{authorizers / 100:.0f} refreshes a minute, 16 at a time, {m.requests_per_refresh:.1f} "
                f"DynamoDB requests each at 5 ms, WeChat 100-300 ms; {usable:g} s = the timeout less the "
                f"handler's 2 s and the platform's 12 s reserve; first cycle after an import: "
                f"{m.first_cycle_minutes[0]:.0f}-{m.first_cycle_minutes[1]:.0f} min",
            )
        )
        cpu_at_memory = m.cpu_seconds_per_run / vcpu
        rows.append(
            Figure(
                f"6. platform, {authorizers} authorizers: CPU of a steady guard run at {day.memory_mb} MB",
                f"{cpu_at_memory:.1f} s",
                f"<= {usable:g} s",
                cpu_at_memory <= usable,
                f"{m.cpu_seconds_per_run:.2f} CPU-s a run on this machine (the WeChat stand-in's share "
                f"included: an upper bound), at the {vcpu:.2f} vCPU Lambda gives {day.memory_mb} MB",
            )
        )
        rows.append(
            Figure(
                f"6. platform, {authorizers} authorizers: AWS a month (us-east-1)",
                f"USD {m.total:.2f}",
                "-",
                None,
                f"Lambda {m.lambda_cost:.2f} ({m.lambda_gb_seconds:,.0f} GB-s at {day.memory_mb} MB, "
                f"{m.lambda_seconds_a_day / 60:.0f} min a day modelled), DynamoDB requests "
                f"{m.dynamodb_cost:.2f}, storage+PITR {m.storage_cost:.2f}, CloudWatch metrics "
                f"{m.metrics_cost:.2f} ({len(day.metric_hours)} metric/dimension sets), "
                f"logs {m.logs_cost:.2f}",
            )
        )
    return rows


def measure(scale: Scale, progress: Any = None) -> Day:
    from tests.fixtures.wechat import FakeClock

    # Midnight Beijing time (WeChat's quota day), as bench/quota.py.
    start = (int(time.time()) // 86400 + 1) * 86400 - 8 * 3600
    with Services(clock=FakeClock(float(start)), redis=False, moto_entry=serve_indexed_moto) as services:
        return simulate(services, scale, progress=progress)


def figures(quick: bool = True) -> list[Figure]:
    """``make bench``'s rows: the quick scale unless ``quick`` is False (the full day takes
    about an hour on moto: ``make bench-platform``)."""
    return figures_of(measure(QUICK if quick else FULL, progress=sys.stderr))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK.authorizers} authorizers, {QUICK.minutes // 60} h"
    )
    parser.add_argument("--authorizers", type=int)
    parser.add_argument("--hours", type=float)
    parser.add_argument(
        "--sample", type=int, help=f"authorizers judged every minute (0: all); default {SAMPLE}"
    )
    parser.add_argument("--save", metavar="PATH", help="keep the simulated day (pickle) to print again")
    parser.add_argument("--load", metavar="PATH", help="print the figures of a day kept with --save")
    args = parser.parse_args()
    if args.load:
        with open(args.load, "rb") as kept:
            print_table(figures_of(pickle.load(kept)))  # noqa: S301 (a file this program wrote)
        return
    base = QUICK if args.quick else FULL
    authorizers = args.authorizers or base.authorizers
    minutes = int(args.hours * 60) if args.hours else base.minutes
    sample = base.sample if args.sample is None else (args.sample or None)
    if sample is not None and sample >= authorizers:
        sample = None
    scale = Scale(authorizers, minutes, sample)
    print(
        f"simulating {authorizers} authorizers for {minutes} minutes ({scale.describe_check()})",
        file=sys.stderr,
        flush=True,
    )
    day = measure(scale, progress=sys.stderr)
    print(
        f"simulated in {day.wall_seconds:.0f} s ({day.check_seconds:.0f} s of it checking tokens)",
        file=sys.stderr,
    )
    if args.save:
        with open(args.save, "wb") as kept:
            pickle.dump(day, kept)
    for note in day.notes[:10]:
        print(f"  {note}", file=sys.stderr)
    print_table(figures_of(day))


if __name__ == "__main__":
    main()
