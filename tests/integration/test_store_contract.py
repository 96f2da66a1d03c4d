"""What every token store does, one suite over every backend (SSM and DynamoDB on moto, a
real Redis).

Adding a store is one module plus a row in :data:`BACKENDS` (and its own file for what only
it does: TTL, SecureString, cluster slots). Each backend's file keeps only that.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.aws import create_token_table
from wxtoken.errors import DamagedRecordError, LeaseBusyError
from wxtoken.store.base import Credential, RecordName, TokenStore

APPID = "wx0123456789abcdef"
BACKENDS = ["ssm", "redis", "dynamodb"]


def credential(value: str = "TOKEN-A", fetched_at: float = 1_700_000_000.123) -> Credential:
    return Credential(value=value, expires_at=int(fetched_at) + 7200, fetched_at=fetched_at)


class Backend:
    """A backend under test: how to open a store on it, and to reach behind the store."""

    def __init__(self, kind: str, target: str, put_raw: Callable[[str, str], None]) -> None:
        self.kind = kind
        self.target = target  # the Redis URL, or moto's endpoint
        self._put_raw = put_raw

    def open(self) -> TokenStore:
        return open_backend(self.kind, self.target)

    def put_raw(self, name: RecordName, raw: str) -> None:
        """Write ``raw`` as the record, bypassing the store (a hand edit, another program)."""
        self._put_raw(str(name), raw)


def open_backend(kind: str, target: str) -> TokenStore:
    """A store on ``target``; importable by a child process (the lease contest)."""
    if kind == "redis":
        from wxtoken.store.redis_store import RedisTokenStore

        return RedisTokenStore.from_url(target)
    import boto3

    if kind == "dynamodb":
        from tests.fixtures.aws import TOKEN_TABLE
        from wxtoken.store.dynamodb_store import DynamoDBTokenStore

        client = boto3.client("dynamodb", endpoint_url=target, region_name="us-east-1")
        return DynamoDBTokenStore(client, table=TOKEN_TABLE)

    from wxtoken.store.ssm_store import SSMTokenStore

    return SSMTokenStore(boto3.client("ssm", endpoint_url=target, region_name="us-east-1"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "redis":
        import redis

        url = request.getfixturevalue("redis_url")

        def put_redis(name: str, raw: str) -> None:
            redis.Redis.from_url(url).set(f"wxtoken:{{{APPID}}}:{name}", raw)

        return Backend("redis", url, put_redis)
    aws = request.getfixturevalue("aws")
    if request.param == "dynamodb":
        table = create_token_table(aws)

        def put_item(name: str, raw: str) -> None:
            aws.client("dynamodb").put_item(
                TableName=table, Item={"name": {"S": f"{APPID}/{name}"}, "value": {"S": raw}}
            )

        return Backend("dynamodb", aws.endpoint_url, put_item)

    def put_ssm(name: str, raw: str) -> None:
        aws.client("ssm").put_parameter(
            Name=f"/wxtoken/{APPID}/{name}", Value=raw, Type="SecureString", Overwrite=True
        )

    return Backend("ssm", aws.endpoint_url, put_ssm)


@pytest.fixture
def store(backend: Backend) -> TokenStore:
    return backend.open()


# -- records ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [RecordName.ACCESS_TOKEN, RecordName.JSAPI_TICKET])
def test_credential_round_trips(store: TokenStore, name: RecordName) -> None:
    stored = credential()

    assert store.write_if_newer(APPID, name, stored.to_record(name), ttl_seconds=7200)

    record = store.read(APPID, name)
    assert record is not None
    assert Credential.from_record(name, record) == stored


def test_read_of_a_missing_record_is_none(store: TokenStore) -> None:
    assert store.read(APPID, RecordName.ACCESS_TOKEN) is None
    assert store.read_raw(APPID, RecordName.ACCESS_TOKEN) is None


@pytest.mark.parametrize(
    ("name", "value_field"),
    [(RecordName.ACCESS_TOKEN, "access_token"), (RecordName.JSAPI_TICKET, "ticket")],
)
def test_stored_json_is_exactly_the_record_contract(
    store: TokenStore, name: RecordName, value_field: str
) -> None:
    store.write_if_newer(APPID, name, credential().to_record(name), ttl_seconds=None)

    raw = store.read_raw(APPID, name)
    assert raw is not None
    assert json.loads(raw) == {
        value_field: "TOKEN-A",
        "expires_at": 1_700_007_200,
        "fetched_at": 1_700_000_000.123,
    }


@pytest.mark.parametrize("offset", [-0.001, 0.0], ids=["older", "equal"])
def test_write_if_newer_refuses_an_older_or_equal_fetched_at(store: TokenStore, offset: float) -> None:
    name = RecordName.ACCESS_TOKEN
    store.write_if_newer(APPID, name, credential("NEW", 1_700_000_000.5).to_record(name), None)

    written = store.write_if_newer(
        APPID, name, credential("OLD", 1_700_000_000.5 + offset).to_record(name), None
    )

    assert written is False
    record = store.read(APPID, name)
    assert record is not None
    assert record["access_token"] == "NEW"


def test_write_if_newer_replaces_a_record_one_millisecond_older(store: TokenStore) -> None:
    name = RecordName.ACCESS_TOKEN
    store.write_if_newer(APPID, name, credential("OLD", 1_700_000_000.123).to_record(name), None)

    assert store.write_if_newer(APPID, name, credential("NEW", 1_700_000_000.124).to_record(name), None)
    assert store.read(APPID, name) == credential("NEW", 1_700_000_000.124).to_record(name)


@pytest.mark.parametrize(
    "raw",
    ["garbage", '{"access_token":"x","expires_at":1,"fetched_at":Infinity}'],
    ids=["not-json", "infinity"],
)
def test_write_if_newer_replaces_a_damaged_record(store: TokenStore, backend: Backend, raw: str) -> None:
    backend.put_raw(RecordName.ACCESS_TOKEN, raw)

    assert store.write_if_newer(
        APPID, RecordName.ACCESS_TOKEN, credential().to_record(RecordName.ACCESS_TOKEN), None
    )


def test_reading_a_record_that_is_not_json_raises_damaged_record_error(
    store: TokenStore, backend: Backend
) -> None:
    backend.put_raw(RecordName.ACCESS_TOKEN, "garbage")

    with pytest.raises(DamagedRecordError, match="not JSON"):
        store.read(APPID, RecordName.ACCESS_TOKEN)
    assert store.read_raw(APPID, RecordName.ACCESS_TOKEN) == "garbage"


# -- compare-and-set ------------------------------------------------------------------------


def test_replace_writes_only_over_exactly_what_was_read(store: TokenStore, backend: Backend) -> None:
    name = RecordName.ACCESS_TOKEN
    first = credential("FIRST").to_record(name)
    # no record expected, none there: written; expected none but one is there: refused
    assert store.replace(APPID, name, first, None, expected=None)
    assert not store.replace(APPID, name, credential("SECOND").to_record(name), None, expected=None)
    seen = store.read_raw(APPID, name)
    assert seen is not None

    # someone else writes meanwhile: what was read is no longer there
    backend.put_raw(name, json.dumps(credential("THEIRS").to_record(name)))
    assert not store.replace(APPID, name, credential("OURS").to_record(name), None, expected=seen)
    assert store.read(APPID, name) == credential("THEIRS").to_record(name)

    # over exactly what is there — damaged or not, older or newer — it writes
    backend.put_raw(name, "garbage")
    assert store.replace(APPID, name, credential("OURS", 1.0).to_record(name), None, expected="garbage")
    assert store.read(APPID, name) == credential("OURS", 1.0).to_record(name)


# -- lease -----------------------------------------------------------------------------------


def test_lease_is_exclusive_and_released_after_the_block(store: TokenStore, backend: Backend) -> None:
    other = backend.open()

    with store.lease(APPID, 30), pytest.raises(LeaseBusyError), other.lease(APPID, 30):
        pass

    with other.lease(APPID, 30):
        pass


def test_lease_is_released_when_the_block_raises(store: TokenStore) -> None:
    with pytest.raises(RuntimeError), store.lease(APPID, 30):
        raise RuntimeError("refresh failed")

    with store.lease(APPID, 30):
        pass


def test_leases_of_different_apps_do_not_conflict(store: TokenStore) -> None:
    with store.lease(APPID, 30), store.lease("wx_other_app", 30):
        pass


def _contend(kind: str, target: str, log_path: str, rounds: int, start: Any) -> None:
    """One process of the contest: take the lease ``rounds`` times, logging enter/exit."""
    store = open_backend(kind, target)
    start.wait(timeout=30)
    held = 0
    deadline = time.monotonic() + 15
    while held < rounds and time.monotonic() < deadline:
        try:
            with store.lease(APPID, 10):
                with open(log_path, "a") as log:
                    log.write(f"enter {os.getpid()}\n")
                time.sleep(0.01)
                with open(log_path, "a") as log:
                    log.write(f"exit {os.getpid()}\n")
            held += 1
        except LeaseBusyError:
            # moto serves ~100 requests/s; a busy attempt costs two, so back off enough
            # that the holder's release is not queued behind the contenders.
            time.sleep(random.uniform(0.02, 0.06))


def test_lease_contested_by_8_processes_is_held_by_one_at_a_time(backend: Backend, tmp_path: Path) -> None:
    processes, rounds = 8, 1
    log_path = tmp_path / "holders.log"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [
        ctx.Process(target=_contend, args=(backend.kind, backend.target, str(log_path), rounds, start))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=30)

    assert [worker.exitcode for worker in workers] == [0] * processes
    lines = log_path.read_text().splitlines()
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("enter "), lines
        assert leave == enter.replace("enter", "exit"), lines
    holders = Counter(line.split()[1] for line in lines[::2])
    assert sorted(holders.values()) == [rounds] * processes, holders


def test_dedup_backend_is_offered_only_where_the_store_can_hold_it(
    store: TokenStore, backend: Backend
) -> None:
    offered = store.dedup_backend()
    if backend.kind in {"redis", "dynamodb"}:
        assert offered is not None
        assert offered.key_prefix == "wxtoken-dedup"
    else:  # no expiry, a few writes per second: the webhook uses its DynamoDB table
        assert offered is None
