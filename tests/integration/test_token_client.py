"""The reader: cached tokens, calls that recover from a rejected token, on both stores.

Store reads are counted with :class:`CountingStore`, a proxy around the real store; the
refresh Lambda is reached through botocore's ``before-send`` event (moto cannot run Lambda
code without Docker), answered either with a canned payload or by the real handler.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.awsrequest import AWSResponse

from devtools.wechat.standin import ErrCode
from tests.fixtures.aws import inject_error
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, APPID_B, SECRET_A
from wxtoken.client import LambdaRefreshRequester, TokenClient, get_client
from wxtoken.client import token_client as client_module
from wxtoken.deadline import Deadline
from wxtoken.errors import ConfigError, RefreshRequestError, TokenRejectedError, TokenUnavailableError
from wxtoken.refresh import RefreshRequest, Trigger
from wxtoken.refresh.in_process import InProcessRefreshRequester
from wxtoken.store.base import Credential, RecordName
from wxtoken.wechat.wiring import build_wechat_api

EVENTS = Path(__file__).parents[2] / "events"
FUNCTION_NAME = "wxtoken-dev-RefreshTokenFunction"
API_PATH = "/cgi-bin/get_api_domain_ip"


class CountingStore:
    """The store under test, counting its reads; ``delay`` slows them so threads overlap."""

    def __init__(self, inner: Any, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.reads = 0
        self._lock = threading.Lock()

    def read(self, appid: str, name: RecordName) -> dict[str, Any] | None:
        with self._lock:
            self.reads += 1
        time.sleep(self.delay)
        return self.inner.read(appid, name)

    def write_if_newer(self, *args: Any) -> bool:
        return self.inner.write_if_newer(*args)

    def lease(self, *args: Any) -> Any:
        return self.inner.lease(*args)


class CountingRequester:
    """A requester that records what it was asked, then passes it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        with self._lock:
            self.calls.append((appid, invalid_token))
        self.inner.compare_and_refresh(appid, invalid_token)


@dataclass
class Reader:
    client: TokenClient
    store: CountingStore
    requester: CountingRequester


def reader(system, *, delay: float = 0.0, requester: Any = None) -> Reader:
    store = CountingStore(system.store(), delay)
    counted = CountingRequester(
        requester or InProcessRefreshRequester(system.refresher(), clock=system.clock)
    )
    client = TokenClient(
        store=store, wechat=build_wechat_api(system.settings), refresher=counted, clock=system.clock
    )
    return Reader(client, store, counted)


def refresh(system, trigger: Trigger = Trigger.SCHEDULED, appid: str | None = None) -> None:
    request = RefreshRequest(trigger, system.clock(), (appid,) if appid else None)
    report = system.refresher().run(request, Deadline.after(30))
    assert report.failed == []


def in_threads[T](count: int, fn: Callable[[], T]) -> list[T]:
    """``fn`` in ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def together() -> T:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: together(), range(count)))


def api_errcodes(system) -> list[int | None]:
    return [call.errcode for call in system.wechat.calls("api")]


# --- reading -------------------------------------------------------------------------------


def test_warm_client_reads_the_store_once_per_cache_window(system):
    refresh(system)
    r = reader(system)

    first_window = {r.client.access_token(APPID_A) for _ in range(10_000)}
    assert first_window == {system.stored(APPID_A).value}
    assert r.store.reads == 1

    system.clock.advance(61)
    second_window = {r.client.access_token(APPID_A) for _ in range(10_000)}
    assert second_window == first_window
    assert r.store.reads == 2


def test_threads_on_a_cold_cache_share_one_store_read(system):
    refresh(system)
    r = reader(system, delay=0.05)

    tokens = in_threads(50, lambda: r.client.access_token(APPID_A))

    assert set(tokens) == {system.stored(APPID_A).value}
    assert r.store.reads == 1


def test_apps_and_records_are_cached_apart(system):
    refresh(system)
    r = reader(system)

    assert r.client.access_token(APPID_A) == system.stored(APPID_A).value
    assert r.client.access_token(APPID_B) == system.stored(APPID_B).value
    assert r.client.jsapi_ticket(APPID_A) == system.stored(APPID_A, RecordName.JSAPI_TICKET).value
    for _ in range(100):
        r.client.access_token(APPID_A)
        r.client.access_token(APPID_B)
        r.client.jsapi_ticket(APPID_A)
    assert r.store.reads == 3


def _store_short_lived(system, value: str, lifetime: int) -> None:
    now = system.clock()
    credential = Credential(value=value, expires_at=int(now) + lifetime, fetched_at=round(now, 3))
    record = credential.to_record(RecordName.ACCESS_TOKEN)
    assert system.store().write_if_newer(APPID_A, RecordName.ACCESS_TOKEN, record, lifetime)


def test_cache_never_outlives_the_records_expiry(system):
    # Given a stored token with 40 s left: inside the 60 s cache window, but only ~10 s of
    # it before the token enters its last 30 s
    _store_short_lived(system, "short-lived-token", 40)
    r = reader(system)
    assert r.client.access_token(APPID_A) == "short-lived-token"
    system.clock.advance(5)
    assert r.client.access_token(APPID_A) == "short-lived-token"
    assert r.store.reads == 1

    # When the refresh function replaces it, and 15 s have passed
    refresh(system, Trigger.FORCE, APPID_A)
    system.clock.advance(10)

    # Then the client has read the store again, well before its 60 s window ended
    assert r.client.access_token(APPID_A) == system.stored(APPID_A).value
    assert r.store.reads == 2


def test_a_token_in_its_last_seconds_is_not_handed_out(system):
    _store_short_lived(system, "short-lived-token", 40)
    r = reader(system)
    r.client.access_token(APPID_A)

    system.clock.advance(15)

    with pytest.raises(TokenUnavailableError, match=r"expires in 2\ds") as caught:
        r.client.access_token(APPID_A)
    assert "short-lived-token" not in str(caught.value)


def test_forced_refresh_reaches_readers_while_wechat_still_accepts_the_old_token(system):
    # Given a reader that has just cached the stored token
    refresh(system)
    r = reader(system)
    old = r.client.access_token(APPID_A)

    # When someone forces a refresh (say, after a leak)
    system.clock.advance(1)
    refresh(system, Trigger.FORCE, APPID_A)
    forced_at = system.clock()
    new = system.stored(APPID_A).value
    assert new != old

    # Then, second by second, the reader hands out the old token only while WeChat accepts it,
    # and moves to the new one within its 60 s cache window
    switched_at = None
    while switched_at is None:
        system.clock.advance(1)
        token = r.client.access_token(APPID_A)
        assert system.wechat.is_valid(APPID_A, token)
        if token == new:
            switched_at = system.clock()
    assert switched_at - forced_at <= 60
    assert system.wechat.is_valid(APPID_A, old)  # the 5-minute overlap has 4 minutes to go
    system.clock.advance(forced_at + 300 - system.clock())
    assert not system.wechat.is_valid(APPID_A, old)
    assert r.store.reads == 2


def test_nothing_stored_raises_token_unavailable_naming_the_fix(system):
    r = reader(system)

    with pytest.raises(TokenUnavailableError, match="none stored") as caught:
        r.client.access_token(APPID_A)
    assert APPID_A in str(caught.value)
    assert '"force": true' in str(caught.value)

    # An empty store is asked again only every 5 s, however often the reader is called
    refresh(system)
    for _ in range(1000):
        with pytest.raises(TokenUnavailableError):
            r.client.access_token(APPID_A)
    assert r.store.reads == 1
    system.clock.advance(5)
    assert r.client.access_token(APPID_A) == system.stored(APPID_A).value
    assert r.store.reads == 2


# --- calling WeChat ------------------------------------------------------------------------


def test_call_sends_the_stored_token_and_returns_wechats_answer(system):
    refresh(system)
    r = reader(system)

    answer = r.client.call(APPID_A, "GET", API_PATH)

    assert answer["errcode"] == 0
    assert answer["ip_list"]
    (call,) = system.wechat.calls("api")
    assert call.params["access_token"] == system.stored(APPID_A).value
    assert r.requester.calls == []


def _revoke(system) -> None:
    system.wechat.revoke_tokens(APPID_A)


def _rogue_token_call_and_overlap_passes(system) -> None:
    """Another program fetches a token itself; 301 s later WeChat drops the stored one."""
    answer = requests.get(
        f"{system.wechat.base_url}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A},
        timeout=5,
    ).json()
    assert "access_token" in answer
    system.clock.advance(301)


@pytest.mark.parametrize("retire", [_revoke, _rogue_token_call_and_overlap_passes], ids=["revoked", "rogue"])
def test_rejected_token_is_replaced_once_and_the_call_retried(system, retire):
    # Given a reader holding the stored token, which WeChat then stops accepting
    refresh(system)
    r = reader(system)
    rejected = r.client.access_token(APPID_A)
    retire(system)
    token_calls = system.wechat.token_calls(APPID_A)

    # When the reader calls the API
    answer = r.client.call(APPID_A, "GET", API_PATH)

    # Then one compare-and-refresh replaced the token, and the retry went through with it
    assert answer["errcode"] == 0
    assert r.requester.calls == [(APPID_A, rejected)]
    assert system.wechat.token_calls(APPID_A) == token_calls + 1
    assert api_errcodes(system) == [40001, 0]
    replacement = system.stored(APPID_A).value
    assert system.wechat.calls("api")[-1].params["access_token"] == replacement
    assert r.client.access_token(APPID_A) == replacement


def test_a_second_rejection_is_raised_not_retried(system):
    refresh(system)
    r = reader(system)
    token_calls = system.wechat.token_calls(APPID_A)
    system.wechat.fail_always("api", ErrCode(40001))

    with pytest.raises(TokenRejectedError, match="rejected again") as caught:
        r.client.call(APPID_A, "GET", API_PATH)

    assert caught.value.errcode == 40001
    assert len(system.wechat.calls("api")) == 2
    assert len(r.requester.calls) == 1
    assert system.wechat.token_calls(APPID_A) == token_calls + 1


def test_threads_seeing_the_same_rejected_token_cause_one_refresh(system):
    refresh(system)
    r = reader(system)
    rejected = r.client.access_token(APPID_A)
    _revoke(system)
    token_calls = system.wechat.token_calls(APPID_A)

    answers = in_threads(50, lambda: r.client.call(APPID_A, "GET", API_PATH))

    assert all(answer["errcode"] == 0 for answer in answers)
    assert r.requester.calls == [(APPID_A, rejected)]
    assert system.wechat.token_calls(APPID_A) == token_calls + 1
    assert r.store.reads == 2  # the warm-up, and the one re-read after the refresh
    assert sorted(api_errcodes(system)) == [0] * 50 + [40001] * 50


@pytest.mark.parametrize("system", ["redis"], indirect=True)  # nothing here depends on the store
def test_a_failed_refresh_is_shared_and_not_asked_again_for_5_seconds(system):
    # Given a rejected token, and WeChat refusing to hand out a new one
    refresh(system)
    r = reader(system)
    r.client.access_token(APPID_A)
    _revoke(system)
    system.wechat.fail_always("token", ErrCode(40164))

    # When 20 threads call, and then 100 more calls follow within 5 s
    outcomes = in_threads(20, lambda: _outcome(lambda: r.client.call(APPID_A, "GET", API_PATH)))
    for _ in range(100):
        outcomes.append(_outcome(lambda: r.client.call(APPID_A, "GET", API_PATH)))

    # Then all of them get the refresh's error, which names the fix, from one request
    assert {type(o) for o in outcomes} == {RefreshRequestError}
    assert "40164" in str(outcomes[0])
    assert "allow-list" in str(outcomes[0])
    assert len(r.requester.calls) == 1
    assert system.wechat.token_calls(APPID_A) == 1 + 1  # the first refresh, and this one

    # And once WeChat hands out tokens again, the next request after 5 s succeeds
    system.wechat.fail_always("token", None)
    system.clock.advance(5)
    assert r.client.call(APPID_A, "GET", API_PATH)["errcode"] == 0
    assert len(r.requester.calls) == 2


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return exc


# --- asking the refresh Lambda -------------------------------------------------------------


class _Raw(io.BytesIO):
    """The ``raw`` of an :class:`AWSResponse`: botocore reads streaming bodies, else streams."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def answer_invoke(lambda_client: Any, reply: Callable[[dict[str, Any]], tuple[Any, str | None]]) -> list[Any]:
    """Answer every ``Invoke`` of ``lambda_client`` with ``reply(event)``; returns the requests.

    ``reply`` gives the function's result and ``None``, or an error object and ``"Unhandled"``
    (what Lambda puts in ``X-Amz-Function-Error``). The answer is a real HTTP response handed to
    botocore before it sends, so its parser runs as against Lambda.
    """
    seen: list[Any] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        result, function_error = reply(json.loads(request.body))
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Executed-Version": "$LATEST",
            "x-amzn-RequestId": "answered-by-the-tests",
        }
        if function_error:
            headers["X-Amz-Function-Error"] = function_error
        return AWSResponse(request.url, 200, headers, _Raw(json.dumps(result).encode()))

    lambda_client.meta.events.register("before-send.lambda.Invoke", answer)
    return seen


def run_refresh_handler() -> Callable[[dict[str, Any]], tuple[Any, str | None]]:
    """Lambda's runtime, in short: the real refresh handler, its exception as Lambda reports it."""
    handler = load_handler("refresh_token")

    def reply(event: dict[str, Any]) -> tuple[Any, str | None]:
        try:
            return handler.lambda_handler(event, FakeLambdaContext()), None
        except Exception as exc:
            return {"errorMessage": str(exc), "errorType": type(exc).__name__}, "Unhandled"

    return reply


def test_lambda_requester_sends_exactly_the_compare_and_refresh_event(aws):
    lambda_client = aws.client("lambda")
    seen = answer_invoke(lambda_client, lambda event: ({"refreshed": [event["appid"]]}, None))

    LambdaRefreshRequester(FUNCTION_NAME, lambda_client).compare_and_refresh(APPID_A, "the-rejected-token")

    (request,) = seen
    event = json.loads(request.body)
    assert event == {"appid": APPID_A, "invalid_token": "the-rejected-token"}
    assert event.keys() == json.loads((EVENTS / "compare_and_refresh.json").read_text()).keys()
    assert request.url.endswith(f"/functions/{FUNCTION_NAME}/invocations")
    assert request.headers["X-Amz-Invocation-Type"] == b"RequestResponse"


def test_lambda_function_error_is_raised_without_the_token(aws):
    lambda_client = aws.client("lambda")
    message = "RefreshFailedError: compare the-rejected-token failed: WeChat errcode 40164"
    answer_invoke(
        lambda_client, lambda _: ({"errorMessage": message, "errorType": "RefreshFailedError"}, "Unhandled")
    )

    with pytest.raises(RefreshRequestError, match="40164") as caught:
        LambdaRefreshRequester(FUNCTION_NAME, lambda_client).compare_and_refresh(
            APPID_A, "the-rejected-token"
        )

    assert FUNCTION_NAME in str(caught.value)
    assert "the-rejected-token" not in str(caught.value)


def test_lambda_that_cannot_be_invoked_names_the_permission(aws):
    lambda_client = aws.client("lambda")
    inject_error(lambda_client, "Invoke", 2, code="AccessDeniedException", status=403)

    with pytest.raises(RefreshRequestError, match=r"AccessDeniedException.*lambda:InvokeFunction") as caught:
        LambdaRefreshRequester(FUNCTION_NAME, lambda_client).compare_and_refresh(
            APPID_A, "the-rejected-token"
        )
    assert "the-rejected-token" not in str(caught.value)


def test_call_recovers_through_the_refresh_function(system):
    # Given readers that reach the refresh function by Lambda invoke, answered by its handler
    refresh(system)
    lambda_client = system.aws.client("lambda")
    seen = answer_invoke(lambda_client, run_refresh_handler())
    r = reader(system, requester=LambdaRefreshRequester(FUNCTION_NAME, lambda_client))
    r.client.access_token(APPID_A)
    _revoke(system)
    token_calls = system.wechat.token_calls(APPID_A)

    answer = r.client.call(APPID_A, "GET", API_PATH)

    assert answer["errcode"] == 0
    assert len(seen) == 1
    assert system.wechat.token_calls(APPID_A) == token_calls + 1


@pytest.mark.parametrize("system", ["redis"], indirect=True)  # nothing here depends on the store
def test_call_reports_a_failing_refresh_function_with_its_fix(system):
    refresh(system)
    lambda_client = system.aws.client("lambda")
    answer_invoke(lambda_client, run_refresh_handler())
    r = reader(system, requester=LambdaRefreshRequester(FUNCTION_NAME, lambda_client))
    rejected = r.client.access_token(APPID_A)
    _revoke(system)
    system.wechat.fail_always("token", ErrCode(40164))

    with pytest.raises(RefreshRequestError, match="allow-list") as caught:
        r.client.call(APPID_A, "GET", API_PATH)
    assert rejected not in str(caught.value)


# --- building it from the environment ------------------------------------------------------


def test_from_env_without_a_function_name_refreshes_in_process(system):
    refresh(system)
    client = TokenClient.from_env(system.env)
    client.access_token(APPID_A)
    _revoke(system)
    token_calls = system.wechat.token_calls(APPID_A)

    assert client.call(APPID_A, "GET", API_PATH)["errcode"] == 0
    assert system.wechat.token_calls(APPID_A) == token_calls + 1


def reader_env(system) -> dict[str, str]:
    """What a reader outside the functions is given: the store's settings, no apps secret."""
    return {name: value for name, value in system.env.items() if name != "WECHAT_APPS_SECRET_ID"}


def test_from_env_reads_tokens_without_the_apps_secret(system):
    refresh(system)

    client = TokenClient.from_env(reader_env(system))

    assert client.access_token(APPID_A) == system.stored(APPID_A).value
    assert system.wechat.is_valid(APPID_A, client.access_token(APPID_A))


def test_a_rejected_token_without_a_function_or_apps_secret_names_both_and_calls_nobody(system):
    # Given a reader with the store's settings only, whose token WeChat then rejects
    refresh(system)
    client = TokenClient.from_env(reader_env(system))
    client.access_token(APPID_A)
    _revoke(system)
    token_calls = system.wechat.token_calls(APPID_A)

    # When it calls the API, Then the error names what compare-and-refresh needs
    with pytest.raises(ConfigError, match="REFRESH_FUNCTION_NAME") as caught:
        client.call(APPID_A, "GET", API_PATH)
    assert "WECHAT_APPS_SECRET_ID" in str(caught.value)
    assert APPID_A in str(caught.value)
    assert system.wechat.token_calls(APPID_A) == token_calls
    assert api_errcodes(system) == [40001]


@pytest.mark.parametrize("system", ["redis"], indirect=True)  # nothing here depends on the store
def test_from_env_with_a_function_name_asks_that_function(system):
    client = TokenClient.from_env({**system.env, "REFRESH_FUNCTION_NAME": FUNCTION_NAME})

    requester = client._refresher
    assert isinstance(requester, LambdaRefreshRequester)
    assert requester.function_name == FUNCTION_NAME


@pytest.mark.parametrize("system", ["redis"], indirect=True)  # nothing here depends on the store
def test_get_client_builds_one_client_per_process(system, monkeypatch):
    monkeypatch.setattr(client_module, "_default_client", None)
    refresh(system)

    clients = in_threads(8, get_client)

    assert len({id(c) for c in clients}) == 1
    assert clients[0].access_token(APPID_A) == system.stored(APPID_A).value
