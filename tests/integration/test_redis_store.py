"""RedisTokenStore against a real redis-server (spawned by tests.fixtures.redis_server)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis.crc import key_slot

from wxtoken.config import Settings, StoreKind
from wxtoken.errors import LeaseBusyError, StoreError
from wxtoken.store import open_store
from wxtoken.store.base import Credential, RecordName
from wxtoken.store.redis_store import RedisTokenStore, lease_key, record_key

if TYPE_CHECKING:
    from tests.fixtures.aws import AWS
    from tests.fixtures.redis_server import RedisServer

pytestmark = pytest.mark.redis

APPID = "wx0123456789abcdef"


def credential(value: str = "TOKEN-A", fetched_at: float = 1_700_000_000.123) -> Credential:
    return Credential(value=value, expires_at=int(fetched_at) + 7200, fetched_at=fetched_at)


@pytest.fixture
def store(redis_url: str) -> RedisTokenStore:
    return RedisTokenStore.from_url(redis_url)


# -- records ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [RecordName.ACCESS_TOKEN, RecordName.JSAPI_TICKET])
def test_credential_round_trips(store: RedisTokenStore, name: RecordName) -> None:
    stored = credential()

    assert store.write_if_newer(APPID, name, stored.to_record(name), ttl_seconds=7200)

    record = store.read(APPID, name)
    assert record is not None
    assert Credential.from_record(name, record) == stored


def test_read_of_a_missing_record_is_none(store: RedisTokenStore) -> None:
    assert store.read(APPID, RecordName.ACCESS_TOKEN) is None


@pytest.mark.parametrize(
    ("name", "value_field"),
    [(RecordName.ACCESS_TOKEN, "access_token"), (RecordName.JSAPI_TICKET, "ticket")],
)
def test_stored_json_is_exactly_the_record_contract(
    store: RedisTokenStore, redis_server: RedisServer, name: RecordName, value_field: str
) -> None:
    store.write_if_newer(APPID, name, credential().to_record(name), ttl_seconds=None)

    with redis_server.client() as client:
        raw = client.get(f"wxtoken:{{{APPID}}}:{name}")
    assert raw is not None
    assert json.loads(raw) == {
        value_field: "TOKEN-A",
        "expires_at": 1_700_007_200,
        "fetched_at": 1_700_000_000.123,
    }


def test_every_key_of_one_app_shares_a_cluster_slot() -> None:
    keys = [record_key(APPID, name) for name in RecordName] + [lease_key(APPID)]

    assert keys[0] == "wxtoken:{wx0123456789abcdef}:access_token"
    assert len({key_slot(key.encode()) for key in keys}) == 1


@pytest.mark.parametrize("offset", [-0.001, 0.0], ids=["older", "equal"])
def test_write_if_newer_refuses_an_older_or_equal_fetched_at(store: RedisTokenStore, offset: float) -> None:
    name = RecordName.ACCESS_TOKEN
    store.write_if_newer(APPID, name, credential("NEW", 1_700_000_000.5).to_record(name), None)

    written = store.write_if_newer(
        APPID, name, credential("OLD", 1_700_000_000.5 + offset).to_record(name), None
    )

    assert written is False
    record = store.read(APPID, name)
    assert record is not None
    assert record["access_token"] == "NEW"


def test_write_if_newer_replaces_a_record_one_millisecond_older(store: RedisTokenStore) -> None:
    name = RecordName.ACCESS_TOKEN
    store.write_if_newer(APPID, name, credential("OLD", 1_700_000_000.123).to_record(name), None)

    assert store.write_if_newer(APPID, name, credential("NEW", 1_700_000_000.124).to_record(name), None)
    assert store.read(APPID, name) == credential("NEW", 1_700_000_000.124).to_record(name)


def test_write_if_newer_replaces_a_record_that_is_not_json(
    store: RedisTokenStore, redis_server: RedisServer
) -> None:
    with redis_server.client() as client:
        client.set(record_key(APPID, RecordName.ACCESS_TOKEN), "garbage")

    assert store.write_if_newer(
        APPID, RecordName.ACCESS_TOKEN, credential().to_record(RecordName.ACCESS_TOKEN), None
    )


def test_reading_a_record_that_is_not_json_raises_store_error(
    store: RedisTokenStore, redis_server: RedisServer
) -> None:
    with redis_server.client() as client:
        client.set(record_key(APPID, RecordName.ACCESS_TOKEN), "garbage")

    with pytest.raises(StoreError, match="not JSON"):
        store.read(APPID, RecordName.ACCESS_TOKEN)


def test_ttl_seconds_becomes_the_key_expiry(store: RedisTokenStore, redis_server: RedisServer) -> None:
    name = RecordName.ACCESS_TOKEN
    store.write_if_newer(APPID, name, credential().to_record(name), ttl_seconds=300.5)

    with redis_server.client() as client:
        pttl = client.pttl(record_key(APPID, name))
    assert 299_000 < pttl <= 300_500


def test_no_ttl_seconds_means_no_expiry(store: RedisTokenStore, redis_server: RedisServer) -> None:
    name = RecordName.JSAPI_TICKET
    store.write_if_newer(APPID, name, credential().to_record(name), ttl_seconds=None)

    with redis_server.client() as client:
        assert client.ttl(record_key(APPID, name)) == -1


def test_a_record_is_gone_once_its_ttl_has_passed(store: RedisTokenStore) -> None:
    name = RecordName.ACCESS_TOKEN
    store.write_if_newer(APPID, name, credential().to_record(name), ttl_seconds=0.05)

    time.sleep(0.1)

    assert store.read(APPID, name) is None


def test_a_server_error_becomes_store_error_naming_its_code(
    store: RedisTokenStore, redis_server: RedisServer
) -> None:
    # Given a key of the wrong type where the record should be
    with redis_server.client() as client:
        client.rpush(record_key(APPID, RecordName.ACCESS_TOKEN), "x")

    with pytest.raises(StoreError, match=r"^Redis GET failed: ResponseError WRONGTYPE$"):
        store.read(APPID, RecordName.ACCESS_TOKEN)


# -- lease -----------------------------------------------------------------------------------


def test_lease_is_exclusive_and_released_after_the_block(store: RedisTokenStore, redis_url: str) -> None:
    other = RedisTokenStore.from_url(redis_url)

    with store.lease(APPID, 30), pytest.raises(LeaseBusyError), other.lease(APPID, 30):
        pass

    with other.lease(APPID, 30):
        pass


def test_lease_is_released_when_the_block_raises(store: RedisTokenStore) -> None:
    with pytest.raises(RuntimeError), store.lease(APPID, 30):
        raise RuntimeError("refresh failed")

    with store.lease(APPID, 30):
        pass


def test_leases_of_different_apps_do_not_conflict(store: RedisTokenStore) -> None:
    with store.lease(APPID, 30), store.lease("wx_other_app", 30):
        pass


def test_lease_whose_holder_overran_its_ttl_is_taken_and_the_late_release_keeps_it(
    store: RedisTokenStore, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = RedisTokenStore.from_url(redis_url)
    # Given a holder that stops renewing (dies, or overruns) past its 0.2 s lease
    stuck = store.lease(APPID, 0.2)
    stuck.__enter__()
    time.sleep(0.3)

    # When another process takes the lease, and only then the first one releases
    taken = other.lease(APPID, 30)
    taken.__enter__()
    with caplog.at_level(logging.WARNING, logger="wxtoken.store.redis_store"):
        stuck.__exit__(None, None, None)

    # Then the late release neither raises nor frees the new holder's lease
    assert "expired before release" in caplog.text
    with pytest.raises(LeaseBusyError), store.lease(APPID, 30):
        pass
    taken.__exit__(None, None, None)


def _contend(url: str, log_path: str, rounds: int, start: Any) -> None:
    """One process of the contest: take the lease ``rounds`` times, logging enter/exit."""
    store = RedisTokenStore.from_url(url)
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
            time.sleep(random.uniform(0.001, 0.01))


def assert_one_holder_at_a_time(log_path: Path, processes: int, rounds: int) -> None:
    lines = log_path.read_text().splitlines()
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("enter "), lines
        assert leave == enter.replace("enter", "exit"), lines
    holders = Counter(line.split()[1] for line in lines[::2])
    assert sorted(holders.values()) == [rounds] * processes, holders


def test_lease_contested_by_8_processes_is_held_by_one_at_a_time(redis_url: str, tmp_path: Path) -> None:
    processes, rounds = 8, 2
    log_path = tmp_path / "holders.log"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [
        ctx.Process(target=_contend, args=(redis_url, str(log_path), rounds, start)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=30)

    assert [worker.exitcode for worker in workers] == [0] * processes
    assert_one_holder_at_a_time(log_path, processes, rounds)


# -- failures --------------------------------------------------------------------------------


def test_unreachable_redis_raises_store_error_without_url_or_password(
    store: RedisTokenStore, redis_server: RedisServer
) -> None:
    store.write_if_newer(
        APPID, RecordName.ACCESS_TOKEN, credential().to_record(RecordName.ACCESS_TOKEN), None
    )
    redis_server.kill()

    for attempt in (
        lambda: store.read(APPID, RecordName.ACCESS_TOKEN),
        lambda: store.write_if_newer(
            APPID,
            RecordName.ACCESS_TOKEN,
            credential(fetched_at=1_800_000_000).to_record(RecordName.ACCESS_TOKEN),
            60,
        ),
        lambda: store.lease(APPID, 30).__enter__(),
    ):
        with pytest.raises(StoreError) as caught:
            attempt()
        shown = "".join(traceback.format_exception(caught.value))
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__
        for secret in (redis_server.password, redis_server.url, f"127.0.0.1:{redis_server.port}"):
            assert secret not in str(caught.value)
            assert secret not in shown
        assert str(caught.value).startswith("Redis ")


def test_records_survive_sigkill_and_restart(store: RedisTokenStore, redis_server: RedisServer) -> None:
    stored = credential()
    store.write_if_newer(APPID, RecordName.ACCESS_TOKEN, stored.to_record(RecordName.ACCESS_TOKEN), 7200)

    redis_server.kill()
    redis_server.start()

    # The same store: its pooled connection died with the server, one retry reconnects.
    record = store.read(APPID, RecordName.ACCESS_TOKEN)
    assert record is not None
    assert Credential.from_record(RecordName.ACCESS_TOKEN, record) == stored


# -- cluster mode ----------------------------------------------------------------------------


def test_store_works_on_a_redis_cluster(redis_cluster_server: RedisServer) -> None:
    redis_cluster_server.start()
    store = RedisTokenStore.from_url(redis_cluster_server.url, cluster=True)
    name = RecordName.JSAPI_TICKET

    assert store.write_if_newer(APPID, name, credential().to_record(name), ttl_seconds=60)
    assert not store.write_if_newer(APPID, name, credential("OLD", 1).to_record(name), ttl_seconds=60)
    assert store.read(APPID, name) == credential().to_record(name)
    with store.lease(APPID, 30), pytest.raises(LeaseBusyError), store.lease(APPID, 30):
        pass
    with store.lease(APPID, 30):
        pass


# -- open_store ------------------------------------------------------------------------------


@pytest.mark.parametrize("secret_shape", ["password", "username and password"], ids=["plain", "json"])
def test_open_store_authenticates_with_the_auth_secret(
    aws: AWS, redis_server: RedisServer, redis_url: str, secret_shape: str
) -> None:
    # Given the Redis password only in Secrets Manager, not in REDIS_URL
    secret_id = f"wxtoken/redis-auth/{secret_shape.replace(' ', '-')}"
    value = (
        redis_server.password
        if secret_shape == "password"
        else json.dumps({"username": "default", "password": redis_server.password})
    )
    aws.client("secretsmanager").create_secret(Name=secret_id, SecretString=value)
    settings = Settings(
        apps_secret_id="unused",
        token_store=StoreKind.REDIS,
        redis_url=f"redis://127.0.0.1:{redis_server.port}/0",
        redis_auth_secret_id=secret_id,
    )

    store = open_store(settings)

    assert isinstance(store, RedisTokenStore)
    name = RecordName.ACCESS_TOKEN
    assert store.write_if_newer(APPID, name, credential().to_record(name), 60)
    assert store.read(APPID, name) == credential().to_record(name)


def test_open_store_without_the_password_raises_store_error(
    redis_server: RedisServer, redis_url: str
) -> None:
    settings = Settings(
        apps_secret_id="unused",
        token_store=StoreKind.REDIS,
        redis_url=f"redis://127.0.0.1:{redis_server.port}/0",
    )

    with pytest.raises(StoreError, match=r"^Redis GET failed: AuthenticationError"):
        open_store(settings).read(APPID, RecordName.ACCESS_TOKEN)
