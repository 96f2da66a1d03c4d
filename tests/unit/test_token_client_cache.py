"""The reader's cache and recovery rules, on an in-memory store: no I/O."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from tests.fixtures.wechat import APPID_A, FakeClock
from wxtoken.client import TokenClient
from wxtoken.errors import StoreError, TokenRejectedError, TokenUnavailableError
from wxtoken.store.base import Credential, RecordName


class MemoryStore:
    """A TokenStore in a dict; ``down`` makes every read fail as an unreachable backend would."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, RecordName], dict[str, Any]] = {}
        self.reads = 0
        self.down = False

    def put(self, value: str, expires_at: float, fetched_at: float, name=RecordName.ACCESS_TOKEN) -> None:
        credential = Credential(value, int(expires_at), fetched_at)
        self.records[(APPID_A, name)] = credential.to_record(name)

    def read(self, appid: str, name: RecordName) -> dict[str, Any] | None:
        self.reads += 1
        if self.down:
            raise StoreError("SSM GetParameter failed: ThrottlingException")
        return self.records.get((appid, name))

    def write_if_newer(self, *args: Any) -> bool:
        raise AssertionError("readers never write")

    def lease(self, *args: Any) -> AbstractContextManager[None]:
        return nullcontext()


class FakeWeChat:
    """WeChat's generic API: tokens in ``rejected`` get 40001."""

    def __init__(self) -> None:
        self.rejected: set[str] = set()
        self.sent: list[str] = []

    def call(self, method: str, path: str, *, access_token: str, **_: Any) -> dict[str, Any]:
        self.sent.append(access_token)
        if access_token in self.rejected:
            raise TokenRejectedError(40001, "invalid credential", "compare-and-refresh")
        return {"errcode": 0}


class Requester:
    def __init__(self, on_call=None) -> None:
        self.calls: list[str] = []
        self.on_call = on_call

    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        self.calls.append(invalid_token)
        if self.on_call:
            self.on_call()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def store(clock) -> MemoryStore:
    store = MemoryStore()
    store.put("token-1", clock() + 7200, clock())
    return store


def make_client(store, clock, wechat=None, requester=None) -> TokenClient:
    return TokenClient(
        store=store, wechat=wechat or FakeWeChat(), refresher=requester or Requester(), clock=clock
    )


def test_a_store_outage_serves_the_cached_token_and_retries_every_5_seconds(store, clock):
    client = make_client(store, clock)
    assert client.access_token(APPID_A) == "token-1"
    store.down = True
    clock.advance(61)

    for _ in range(100):
        assert client.access_token(APPID_A) == "token-1"
    assert store.reads == 2
    clock.advance(5)
    assert client.access_token(APPID_A) == "token-1"
    assert store.reads == 3


def test_a_store_outage_with_nothing_usable_cached_raises_store_error(store, clock):
    client = make_client(store, clock)
    client.access_token(APPID_A)
    store.down = True

    clock.advance(7200 - 29)  # the cached token is in its last 30 s

    with pytest.raises(StoreError, match="ThrottlingException"):
        client.access_token(APPID_A)


def test_a_clock_that_steps_back_does_not_stretch_the_cache_window(store, clock):
    client = make_client(store, clock)
    client.access_token(APPID_A)
    clock._now -= 10  # an NTP step backwards

    client.access_token(APPID_A)

    assert store.reads == 2


def test_a_missing_ticket_says_which_apps_get_one(store, clock):
    client = make_client(store, clock)

    with pytest.raises(TokenUnavailableError, match='"jsapi_ticket": true'):
        client.jsapi_ticket(APPID_A)
    assert client.access_token(APPID_A) == "token-1"


def test_cache_seconds_is_the_read_interval(store, clock):
    client = TokenClient(
        store=store, wechat=FakeWeChat(), refresher=Requester(), cache_seconds=10, clock=clock
    )
    client.access_token(APPID_A)
    clock.advance(9.9)
    client.access_token(APPID_A)
    assert store.reads == 1
    clock.advance(0.1)
    client.access_token(APPID_A)
    assert store.reads == 2


def test_a_refresh_that_keeps_the_rejected_token_is_raised_without_a_retry(store, clock):
    # Given WeChat rejecting the stored token, and a refresher that leaves it in place
    wechat = FakeWeChat()
    wechat.rejected.add("token-1")
    requester = Requester()
    client = make_client(store, clock, wechat, requester)

    with pytest.raises(TokenRejectedError, match="kept the rejected token"):
        client.call(APPID_A, "GET", "/cgi-bin/user/info")

    assert requester.calls == ["token-1"]
    assert wechat.sent == ["token-1"]


def test_a_token_is_compared_and_refreshed_once_even_when_rejected_again_later(store, clock):
    # Given a refresher that stores token-2 in place of the rejected token-1
    wechat = FakeWeChat()
    wechat.rejected.add("token-1")
    requester = Requester(on_call=lambda: store.put("token-2", clock() + 7200, clock() + 0.001))
    client = make_client(store, clock, wechat, requester)
    assert client.call(APPID_A, "GET", "/cgi-bin/user/info") == {"errcode": 0}

    # When the store still serves token-1 (a replica behind) and WeChat rejects it again
    store.put("token-1", clock() + 7200, clock())
    clock.advance(61)
    with pytest.raises(TokenRejectedError):
        client.call(APPID_A, "GET", "/cgi-bin/user/info")

    # Then the refresher was not asked about token-1 a second time
    assert requester.calls == ["token-1"]
