"""The DynamoDB dedup answer's ``UpdateItem`` is sent and not waited for (issue 12,
:mod:`wxtoken.store.unawaited_writes`): a first delivery waits for its claim's round trip
only, the answer still reaches the table, a refusal is logged with the next write, and a
connection the server closed is never written on. Against moto over a real socket, through
a relay that can hold DynamoDB's responses or cut the connection."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from tests.fixtures.aws import AWS, REGION, TOKEN_TABLE, create_token_table
from tests.fixtures.lambda_context import FakeLambdaContext
from wxtoken.budget import DEDUP, CallBudget
from wxtoken.errors import StoreError
from wxtoken.store.base import DedupClaim
from wxtoken.store.dynamodb_dedup import DynamoDBDedupRecords
from wxtoken.store.dynamodb_store import DynamoDBTokenStore
from wxtoken.webhook.dedup import StoreDeduplicator, store_deduplicator

APPID = "wx2222222222222222"


class HoldingRelay:
    """``127.0.0.1:<port>`` relayed to moto. While :attr:`hold_updates` is set, a connection
    that carries an ``UpdateItem`` gets none of its responses until :meth:`release`;
    :meth:`cut` closes every connection, as DynamoDB closes idle ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.hold_updates = False
        self._released = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def release(self) -> None:
        self._released.set()

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                sock.close()

    def close(self) -> None:
        self.release()
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        held = False
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [])
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("closed")
                    if sock is client:
                        held = held or (self.hold_updates and b"DynamoDB_20120810.UpdateItem" in data)
                        server.sendall(data)
                        continue
                    if held:
                        self._released.wait()
                    client.sendall(data)
        except (OSError, ValueError):
            for sock in (client, server):
                sock.close()


@pytest.fixture
def relay(aws: AWS) -> Iterator[HoldingRelay]:
    host, port = aws.endpoint_url.removeprefix("http://").split(":")
    relay = HoldingRelay((host, int(port)))
    yield relay
    relay.close()


@pytest.fixture
def dedup(aws: AWS, relay: HoldingRelay) -> StoreDeduplicator:
    """A deduplicator on the token table as the webhook builds it, its client through the relay."""
    create_token_table(aws)
    store = DynamoDBTokenStore(_client(relay.url), table=TOKEN_TABLE)
    backend = store.dedup_backend()
    # DEDUP's timeouts but a longer read: on a loaded machine moto may take more than DEDUP's
    # 0.3 s, and a claim botocore sent again would find its own first write in progress.
    budget = CallBudget(connect_timeout=DEDUP.connect_timeout, read_timeout=2.0, attempts=DEDUP.attempts)
    backend.records._client_factory = lambda: _client(  # type: ignore[attr-defined]
        relay.url, config=budget.botocore_config()
    )
    backend.records._budget = budget  # type: ignore[attr-defined]
    dedup = store_deduplicator(backend, expires_after_seconds=3600)
    dedup.register_context(FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6))
    return dedup


def _client(endpoint_url: str, **kwargs: Any) -> Any:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint_url, **kwargs)


def _records(dedup: StoreDeduplicator) -> DynamoDBDedupRecords:
    records = dedup._records
    assert isinstance(records, DynamoDBDedupRecords)
    return records


def _stored(aws: AWS, dedup: StoreDeduplicator, key: str) -> dict[str, Any]:
    """The record of ``key`` as the table holds it, polled until it is completed (the answer's
    write is not waited for by the deduplicator; nothing here is timed)."""
    client = aws.client("dynamodb")
    deadline = time.monotonic() + 5
    while True:
        name = {"S": dedup._stored_key(key)}
        item = client.get_item(TableName=TOKEN_TABLE, Key={"name": name}).get("Item", {})
        if item.get("status", {}).get("S") == "COMPLETED" or time.monotonic() > deadline:
            return dict(item)
        time.sleep(0.01)


def _warm(dedup: StoreDeduplicator) -> None:
    """Two first deliveries, as a container's first two messages: the second starts opening
    the connection the answers go out on, which is then awaited here."""
    for n in (1, 2):
        assert dedup.once(f"{APPID}:warm:{n}", lambda: "warm") == "warm"
    answers = _records(dedup)._answers
    assert answers is not None
    assert answers.wait_ready(5), "the answers' connection never opened"


def _answer_into_a_deleted_table(aws: AWS, dedup: StoreDeduplicator) -> DynamoDBDedupRecords:
    """A warm container's records, an answer handed over after the table was deleted: its
    refusal is owed, not yet read."""
    _warm(dedup)
    records = _records(dedup)
    aws.client("dynamodb").delete_table(TableName=TOKEN_TABLE)
    records.complete(dedup._stored_key("late"), "<xml>lost</xml>", int(time.time()) + 60)
    return records


def _in_thread(call: Callable[[], str]) -> tuple[threading.Event, list[str]]:
    done, out = threading.Event(), []

    def run() -> None:
        out.append(call())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, out


def test_a_first_delivery_returns_before_dynamodb_answers_its_answers_write(
    aws: AWS, relay: HoldingRelay, dedup: StoreDeduplicator, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a warm container
    _warm(dedup)

    # When DynamoDB's responses to the answer's write are held back
    relay.hold_updates = True
    done, out = _in_thread(lambda: dedup.once(f"{APPID}:msg:1", lambda: "<xml>one</xml>"))

    # Then the delivery is answered all the same (it waited for its claim only)
    assert done.wait(10), "the delivery waited for the answer's write"
    assert out == ["<xml>one</xml>"]
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]  # not by timing out
    # And the answer reached the table
    assert _stored(aws, dedup, f"{APPID}:msg:1")["data"]["S"] == '{"answer": "<xml>one</xml>"}'

    # And when that response never comes, the next delivery waits for it no longer than a
    # read's timeout, then sends that write again through botocore (which would have retried
    # it), and stores its own answer too
    relay.hold_updates = False
    assert dedup.once(f"{APPID}:msg:2", lambda: "<xml>two</xml>") == "<xml>two</xml>"
    assert not [r for r in caplog.records if r.getMessage() == "dedup answer not stored"]
    relay.release()
    assert _stored(aws, dedup, f"{APPID}:msg:2")["status"]["S"] == "COMPLETED"
    assert _stored(aws, dedup, f"{APPID}:msg:1")["status"]["S"] == "COMPLETED"


def test_a_retry_in_another_container_gets_the_answer_written_unawaited(
    aws: AWS, dedup: StoreDeduplicator
) -> None:
    _warm(dedup)
    assert dedup.once(f"{APPID}:msg:3", lambda: "<xml>three</xml>") == "<xml>three</xml>"
    _stored(aws, dedup, f"{APPID}:msg:3")

    other = StoreDeduplicator(_records(dedup), key_prefix=dedup._prefix, expires_after_seconds=3600)

    def never() -> str:
        raise AssertionError("the handler ran twice")

    assert other.once(f"{APPID}:msg:3", never) == "<xml>three</xml>"


def test_an_answers_write_dynamodb_refuses_is_logged_with_the_next_one(
    aws: AWS, dedup: StoreDeduplicator, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a warm container whose table then disappears, when an answer is written:
    # nothing raises (the refusal is not known yet)
    records = _answer_into_a_deleted_table(aws, dedup)
    assert not [r for r in caplog.records if r.getMessage() == "dedup answer not stored"]

    # Then the next write reads the refusal and logs it, with DynamoDB's code only
    create_token_table(aws)
    records.complete(dedup._stored_key("next"), "<xml>next</xml>", int(time.time()) + 60)
    refused = [r for r in caplog.records if r.getMessage() == "dedup answer not stored"]
    assert [getattr(r, "error", None) for r in refused] == ["ResourceNotFoundException"]
    assert "lost" not in caplog.text


def test_a_connection_the_server_closed_is_not_written_on(
    aws: AWS, relay: HoldingRelay, dedup: StoreDeduplicator, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a warm container, its answers' connection in use, whose connections DynamoDB then
    # closes (idle)
    _warm(dedup)
    assert dedup.once(f"{APPID}:msg:3", lambda: "<xml>3</xml>") == "<xml>3</xml>"
    _stored(aws, dedup, f"{APPID}:msg:3")  # relayed: the relay holds that connection
    time.sleep(0.05)  # and has relayed the write's response too (no timing asserted)
    relay.cut()
    time.sleep(0.05)  # the FIN reaches the client's sockets (no timing asserted)

    # When the next deliveries come, each answer reaches the table
    for n in range(4, 8):
        assert dedup.once(f"{APPID}:msg:{n}", lambda n=n: f"<xml>{n}</xml>") == f"<xml>{n}</xml>"  # type: ignore[misc]
        assert _stored(aws, dedup, f"{APPID}:msg:{n}")["data"]["S"] == f'{{"answer": "<xml>{n}</xml>"}}'
    # And nothing was lost on the closed connection
    assert not [r for r in caplog.records if r.getMessage() == "dedup answer not stored"]
    answers = _records(dedup)._answers
    assert answers is not None
    assert answers.wait_ready(5)  # a new one opened


def test_behind_a_proxy_every_answer_is_sent_by_botocore(aws: AWS, relay: HoldingRelay) -> None:
    # botocore sends through the proxy its client is configured with; this code does not.
    from botocore.config import Config

    create_token_table(aws)
    proxied = DEDUP.botocore_config().merge(Config(proxies={"http": relay.url}))
    records = DynamoDBDedupRecords(
        lambda: aws.client("dynamodb", config=proxied),
        table=TOKEN_TABLE,
        key_attr="name",
        expiry_attr="expires_at",
    )
    dedup = StoreDeduplicator(records, key_prefix="wxtoken-dedup", expires_after_seconds=3600)
    for n in range(1, 5):
        assert dedup.once(f"{APPID}:msg:{n}", lambda: "<xml>via proxy</xml>") == "<xml>via proxy</xml>"
        assert _stored(aws, dedup, f"{APPID}:msg:{n}")["status"]["S"] == "COMPLETED"
    assert records._answers is not None
    assert not records._answers.wait_ready(0.5)


def test_a_refusal_is_logged_with_the_next_claim_once_its_response_has_come(
    aws: AWS, dedup: StoreDeduplicator, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a warm container whose table then disappears, and an answer written to it
    records = _answer_into_a_deleted_table(aws, dedup)

    # When claims come (the next write does not), the refusal is read with one of them once
    # DynamoDB's response is there: polled, since the claim never waits for it
    deadline = time.monotonic() + 5
    while not [r for r in caplog.records if r.getMessage() == "dedup answer not stored"]:
        assert time.monotonic() < deadline, "the refusal was never read"
        with contextlib.suppress(StoreError):  # the table is gone: the claim fails too
            records.claim([DedupClaim(dedup._stored_key("next"), int(time.time()) + 60, None)])
        time.sleep(0.01)
    refused = [r for r in caplog.records if r.getMessage() == "dedup answer not stored"]
    assert [getattr(r, "error", None) for r in refused] == ["ResourceNotFoundException"]
