"""RedisTokenStore against a real redis-server (spawned by tests.fixtures.redis_server)."""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import TYPE_CHECKING

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


def test_every_key_of_one_app_shares_a_cluster_slot() -> None:
    keys = [record_key(APPID, name) for name in RecordName] + [lease_key(APPID)]

    assert keys[0] == "wxtoken:{wx0123456789abcdef}:access_token"
    assert len({key_slot(key.encode()) for key in keys}) == 1


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
