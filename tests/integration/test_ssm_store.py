"""SSMTokenStore against moto's SSM (a server shared by this process and its children)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.fixtures.aws import AWS, inject_error, throttle
from wxtoken.config import Settings
from wxtoken.errors import LeaseBusyError, StoreError
from wxtoken.store import open_store
from wxtoken.store.base import Credential, RecordName
from wxtoken.store.ssm_store import SSMTokenStore

APPID = "wx0123456789abcdef"
PARAMETER = f"/wxtoken/{APPID}/access_token"
LEASE = f"/wxtoken/{APPID}/lease"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def credential(value: str = "TOKEN-A", fetched_at: float = 1_700_000_000.123) -> Credential:
    return Credential(value=value, expires_at=int(fetched_at) + 7200, fetched_at=fetched_at)


@pytest.fixture(scope="module", autouse=True)
def _moto_ssm_loaded(moto_endpoint: str) -> None:
    """moto loads its SSM backend on the first SSM request, which can take seconds on a
    busy machine; do that here, patiently, so the store's 3 s read timeout never fires
    on moto's start-up instead of on the behaviour under test."""
    client = boto3.client(
        "ssm",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(read_timeout=60),
    )
    client.describe_parameters()


@pytest.fixture
def lease_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(aws: AWS, lease_clock: FakeClock) -> SSMTokenStore:
    # The factory Lambdas use: standard retries, short timeouts, endpoint from the env.
    return SSMTokenStore.from_settings(Settings(apps_secret_id="unused"), clock=lease_clock)


# -- records ---------------------------------------------------------------------------------


def test_records_are_standard_tier_secure_strings_under_the_prefix(aws: AWS) -> None:
    store = SSMTokenStore(aws.client("ssm"), prefix="/prod/wxtoken")

    store.write_if_newer(
        APPID, RecordName.ACCESS_TOKEN, credential().to_record(RecordName.ACCESS_TOKEN), None
    )

    (parameter,) = aws.client("ssm").describe_parameters()["Parameters"]
    assert parameter["Name"] == f"/prod/wxtoken/{APPID}/access_token"
    assert parameter["Type"] == "SecureString"
    assert parameter["Tier"] == "Standard"


def test_records_are_encrypted_with_the_given_kms_key(aws: AWS) -> None:
    key_id = aws.client("kms").create_key()["KeyMetadata"]["KeyId"]
    store = SSMTokenStore(aws.client("ssm"), kms_key_id=key_id)

    store.write_if_newer(
        APPID, RecordName.ACCESS_TOKEN, credential().to_record(RecordName.ACCESS_TOKEN), None
    )

    (parameter,) = aws.client("ssm").describe_parameters()["Parameters"]
    assert parameter["KeyId"] == key_id
    encrypted = aws.client("ssm").get_parameter(Name=PARAMETER, WithDecryption=False)["Parameter"]["Value"]
    assert "TOKEN-A" in json.dumps(store.read(APPID, RecordName.ACCESS_TOKEN))
    assert not encrypted.startswith("{")  # stored encrypted; read decrypts


# -- lease -----------------------------------------------------------------------------------


def test_the_lease_is_a_parameter_naming_its_owner_and_ttl_deleted_on_release(
    store: SSMTokenStore, aws: AWS
) -> None:
    with store.lease(APPID, 30):
        stored = json.loads(aws.client("ssm").get_parameter(Name=LEASE)["Parameter"]["Value"])
        assert set(stored) == {"owner", "ttl", "expires_at"}
        assert stored["ttl"] == 30
        assert stored["expires_at"] == pytest.approx(1_700_000_030.0)

    assert aws.client("ssm").describe_parameters()["Parameters"] == []


def test_busy_lease_is_left_to_its_holder(store: SSMTokenStore, aws: AWS) -> None:
    other = SSMTokenStore(aws.client("ssm"), clock=store.clock)
    with store.lease(APPID, 30):
        before = aws.client("ssm").get_parameter(Name=LEASE)["Parameter"]

        with pytest.raises(LeaseBusyError, match=APPID), other.lease(APPID, 30):
            pass

        after = aws.client("ssm").get_parameter(Name=LEASE)["Parameter"]
        assert (after["Value"], after["Version"]) == (before["Value"], before["Version"])


def test_expired_lease_of_a_dead_holder_is_taken_over_and_its_late_release_keeps_it(
    aws: AWS, lease_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = SSMTokenStore(aws.client("ssm"), clock=lease_clock)
    taker = SSMTokenStore(aws.client("ssm"), clock=lease_clock)
    # Given a holder that stopped (died, or overran) past its 1 s lease: expiry is judged on
    # SSM's clock (real time here), so moving a writer's clock changes nothing
    held = stuck.lease(APPID, 1)
    held.__enter__()
    lease_clock.now += 3600
    with pytest.raises(LeaseBusyError), taker.lease(APPID, 30):
        pass
    time.sleep(3.1)  # the lease's second, and one more for the Date header's whole seconds

    # When another process takes the expired lease, and only then the first one releases
    with caplog.at_level(logging.WARNING, logger="wxtoken.store.ssm_store"):
        taken = taker.lease(APPID, 30)
        taken.__enter__()
        held.__exit__(None, None, None)

    # Then the late release neither raises nor frees the new holder's lease
    assert "taking over an expired refresh lease" in caplog.text
    assert "taken over" in caplog.text
    with pytest.raises(LeaseBusyError), stuck.lease(APPID, 30):
        pass
    taken.__exit__(None, None, None)
    assert aws.client("ssm").describe_parameters()["Parameters"] == []


@pytest.mark.parametrize("skew", [-120.0, 120.0])
def test_a_writer_with_a_skewed_clock_neither_writes_an_expired_lease_nor_takes_a_live_one(
    aws: AWS, skew: float
) -> None:
    """Issue 9, finding 7: a writer 45 s behind used to write a lease already expired for the
    others (two mints); one ahead took live leases. Leases are judged on SSM's clock now."""
    skewed = SSMTokenStore(aws.client("ssm"), clock=lambda: time.time() + skew)
    honest = SSMTokenStore(aws.client("ssm"), clock=time.time)

    with skewed.lease(APPID, 45), pytest.raises(LeaseBusyError), honest.lease(APPID, 45):
        pass
    with honest.lease(APPID, 45), pytest.raises(LeaseBusyError), skewed.lease(APPID, 45):
        pass


def test_a_lease_put_whose_answer_was_lost_is_held_by_its_owner(store: SSMTokenStore, aws: AWS) -> None:
    # SSM made the put, the answer timed out, botocore sent it again: ParameterAlreadyExists
    # for our own lease must not make us wait for ourselves.
    real_put = store.client.put_parameter

    def put_then_lose_the_answer(**kwargs):
        real_put(**kwargs)
        if kwargs.get("Overwrite") is False:
            real_put(**kwargs)  # the retry, which SSM refuses

    store.client.put_parameter = put_then_lose_the_answer
    try:
        with store.lease(APPID, 30):
            assert "owner" in aws.client("ssm").get_parameter(Name=LEASE)["Parameter"]["Value"]
    finally:
        store.client.put_parameter = real_put
    assert aws.client("ssm").describe_parameters()["Parameters"] == []


def test_lease_that_is_not_json_counts_as_expired(store: SSMTokenStore, aws: AWS) -> None:
    aws.client("ssm").put_parameter(Name=LEASE, Value="garbage", Type="String")

    with store.lease(APPID, 30):
        pass


# -- failures --------------------------------------------------------------------------------


def test_throttled_put_is_retried_by_botocore_and_succeeds(store: SSMTokenStore) -> None:
    # Given SSM throttles the next two PutParameter calls (the client makes three attempts in all)
    throttle(store.client, "PutParameter", 2)

    written = store.write_if_newer(
        APPID, RecordName.ACCESS_TOKEN, credential().to_record(RecordName.ACCESS_TOKEN), None
    )

    assert written
    assert store.read(APPID, RecordName.ACCESS_TOKEN) == credential().to_record(RecordName.ACCESS_TOKEN)


def test_throttled_past_the_retries_raises_store_error_naming_the_code(store: SSMTokenStore) -> None:
    throttle(store.client, "PutParameter", 3)

    with pytest.raises(StoreError) as caught:
        store.write_if_newer(
            APPID,
            RecordName.ACCESS_TOKEN,
            credential("SECRET-TOKEN").to_record(RecordName.ACCESS_TOKEN),
            None,
        )

    assert str(caught.value) == "SSM PutParameter failed: ThrottlingException"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert store.read(APPID, RecordName.ACCESS_TOKEN) is None


def test_access_denied_raises_store_error_naming_the_code(store: SSMTokenStore) -> None:
    inject_error(store.client, "GetParameter", 1, code="AccessDeniedException")

    with pytest.raises(StoreError, match=r"^SSM GetParameter failed: AccessDeniedException$"):
        store.read(APPID, RecordName.ACCESS_TOKEN)


def test_lease_that_cannot_be_written_raises_store_error_not_busy(store: SSMTokenStore) -> None:
    inject_error(store.client, "PutParameter", 1, code="AccessDeniedException")

    with pytest.raises(StoreError) as caught, store.lease(APPID, 30):
        pass

    assert not isinstance(caught.value, LeaseBusyError)
    assert str(caught.value) == "SSM PutParameter failed: AccessDeniedException"


def test_unreachable_endpoint_raises_store_error(aws: AWS) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "ssm",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )

    with pytest.raises(StoreError, match=r"^SSM GetParameter failed: EndpointConnectionError$"):
        SSMTokenStore(client).read(APPID, RecordName.ACCESS_TOKEN)


# -- open_store ------------------------------------------------------------------------------


def test_open_store_picks_ssm_and_never_imports_redis(aws: AWS) -> None:
    code = (
        "import sys\n"
        "from wxtoken.config import Settings\n"
        "from wxtoken.store import open_store\n"
        "store = open_store(Settings.from_env({'WECHAT_APPS_SECRET_ID': 'x'}))\n"
        "assert type(store).__name__ == 'SSMTokenStore', store\n"
        "assert not any(m == 'redis' or m.startswith('redis.') for m in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "layers" / "wxtoken")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)


def test_open_store_on_ssm_uses_prefix_and_kms_key(aws: AWS, lease_clock: FakeClock) -> None:
    settings = Settings(apps_secret_id="x", parameter_prefix="/prod/wxtoken", kms_key_id="alias/wxtoken")

    store = open_store(settings, clock=lease_clock)

    assert isinstance(store, SSMTokenStore)
    assert (store.prefix, store.kms_key_id, store.clock) == ("/prod/wxtoken", "alias/wxtoken", lease_clock)


def test_replace_reports_a_write_that_landed_between_its_read_and_its_put(
    store: SSMTokenStore, aws: AWS
) -> None:
    """SSM has no conditional put: two holders of one lease can interleave read, read, put,
    put. The version PutParameter returns shows it; the later writer is told 'not written'
    (the refresher then marks the stored token suspect and mints once more)."""
    record = {"access_token": "first", "expires_at": 1, "fetched_at": 1.0}
    assert store.replace(APPID, RecordName.ACCESS_TOKEN, record, None, expected=None)
    seen = store.read_raw(APPID, RecordName.ACCESS_TOKEN)
    real_get = store.client.get_parameter

    def get_then_another_writer_puts(**kwargs):
        answer = real_get(**kwargs)
        aws.client("ssm").put_parameter(
            Name=kwargs["Name"], Value='{"access_token":"theirs"}', Type="SecureString", Overwrite=True
        )
        return answer

    store.client.get_parameter = get_then_another_writer_puts
    try:
        newer = {"access_token": "ours", "expires_at": 2, "fetched_at": 2.0}
        assert not store.replace(APPID, RecordName.ACCESS_TOKEN, newer, None, expected=seen)
    finally:
        store.client.get_parameter = real_get
