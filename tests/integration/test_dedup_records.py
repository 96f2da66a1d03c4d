"""The webhook's dedup records (issue 12): wxtoken's own deduplicator, on real Redis (plain and
cluster mode) and on DynamoDB (moto, over a socket), read and write what powertools
Idempotency did — the same keys and the same records — so a deploy neither forgets the hour's
answers nor runs a handler twice; and a first delivery costs as few calls as it can.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer

from tests.fixtures.aws import AWS, TOKEN_TABLE, create_dedup_table, create_token_table
from tests.fixtures.lambda_context import FakeLambdaContext
from tests.fixtures.redis_proxy import RedisProxy
from tests.fixtures.redis_server import RedisServer
from wxtoken.store.dynamodb_store import DynamoDBTokenStore
from wxtoken.store.redis_store import RedisTokenStore
from wxtoken.webhook.dedup import StoreDeduplicator, dynamodb_deduplicator, store_deduplicator
from wxtoken.webhook.pipeline import BindingRefused
from wxtoken.wechat.replies import SUCCESS

APPID = "wx1111111111111111"
FUNCTION = "wxtoken-webhook"


class Backend:
    """A deduplicator as the webhook builds it, and powertools' layer on the same records."""

    def __init__(self, dedup: StoreDeduplicator, layer: Any, key_prefix: str | None) -> None:
        self.dedup = dedup
        self.layer = layer
        self.key_prefix = key_prefix
        dedup.register_context(FakeLambdaContext(function_name=FUNCTION, remaining_seconds=6))

    def powertools_answer(self, key: str, answer: str, *, remaining_seconds: float = 6) -> None:
        """What the previous version stored for ``key``: its PowertoolsDeduplicator, verbatim."""
        config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=3600, raise_on_no_idempotency_key=True
        )
        config.register_lambda_context(
            FakeLambdaContext(function_name=FUNCTION, remaining_seconds=remaining_seconds)
        )

        def answer_once(*, delivery: dict[str, str], produce: Callable[[], str]) -> dict[str, str]:
            return {"answer": produce()}

        wrapped = self.previous_version(answer_once, config)
        assert wrapped(delivery={"key": key}, produce=lambda: answer) == {"answer": answer}

    def previous_version(self, answer_once: Callable[..., Any], config: IdempotencyConfig) -> Any:
        """``answer_once`` as the previous version's PowertoolsDeduplicator ran it: at its
        qualified name (the DedupTable's key has it), under powertools Idempotency."""
        answer_once.__module__ = "wxtoken.webhook.dedup"
        answer_once.__qualname__ = "PowertoolsDeduplicator.__init__.<locals>.answer_once"
        return idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=self.layer,
            config=config,
            key_prefix=self.key_prefix,
        )(answer_once)


@pytest.fixture(params=["redis", "redis-before-7", "redis-cluster", "token-table", "dedup-table"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    if request.param.startswith("redis"):
        if request.param != "redis-cluster":
            url = request.getfixturevalue("redis_url")
        else:
            server: RedisServer = request.getfixturevalue("redis_cluster_server")
            with server.client() as admin:
                admin.flushall()
            url = server.url
        store = RedisTokenStore.from_url(url, cluster=request.param == "redis-cluster")
        offered = store.dedup_backend()
        if request.param == "redis-before-7":
            # What a server older than Redis 7.0 gets: SET NX and GET, not SET NX GET (which
            # it refuses, writing nothing: RedisDedupRecords then falls back to this).
            offered.records._set_get = False  # type: ignore[attr-defined]
        layer: Any = CachePersistenceLayer(client=store.client)  # type: ignore[arg-type]
        yield Backend(store_deduplicator(offered, expires_after_seconds=3600), layer, offered.key_prefix)
        store.client.close()
        return
    aws: AWS = request.getfixturevalue("aws")
    if request.param == "token-table":
        create_token_table(aws)
        table_store = DynamoDBTokenStore(aws.client("dynamodb"), table=TOKEN_TABLE)
        offered = table_store.dedup_backend()
        layer = DynamoDBPersistenceLayer(table_name=TOKEN_TABLE, key_attr="name", expiry_attr="expires_at")
        yield Backend(store_deduplicator(offered, expires_after_seconds=3600), layer, offered.key_prefix)
    else:
        create_dedup_table(aws)
        layer = DynamoDBPersistenceLayer(table_name="wxtoken-dedup")
        yield Backend(dynamodb_deduplicator("wxtoken-dedup", expires_after_seconds=3600), layer, None)


def never(reason: str) -> Callable[[], str]:
    def produce() -> str:
        raise AssertionError(reason)

    return produce


def test_a_retry_gets_the_answer_the_previous_version_stored(backend: Backend) -> None:
    # Given the first delivery handled by a container of the previous version (powertools)
    backend.powertools_answer(f"{APPID}:msg:1", "<xml>first</xml>")

    # When WeChat's retry reaches a container of this version
    answer = backend.dedup.once(f"{APPID}:msg:1", never("the handler ran twice across the deploy"))

    # Then it gets the stored answer, and the handler does not run again
    assert answer == "<xml>first</xml>"


def test_the_previous_version_reads_the_answer_this_one_stored(backend: Backend) -> None:
    # Given the first delivery handled by this version
    assert backend.dedup.once(f"{APPID}:msg:2", lambda: "<xml>new</xml>") == "<xml>new</xml>"

    # When the retry reaches a container of the previous version, it gets the same answer
    config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=3600)
    config.register_lambda_context(FakeLambdaContext(function_name=FUNCTION))

    def answer_once(*, delivery: dict[str, str]) -> dict[str, str]:
        raise AssertionError("the handler ran twice across the deploy")

    wrapped = backend.previous_version(answer_once, config)
    assert wrapped(delivery={"key": f"{APPID}:msg:2"}) == {"answer": "<xml>new</xml>"}


def test_a_claim_the_previous_version_left_in_progress_is_answered_success_until_its_invocation_ends(
    backend: Backend,
) -> None:
    # Given a first delivery in progress in a container of the previous version
    layer = backend.layer
    config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=3600)
    layer.configure(
        config,
        "wxtoken.webhook.dedup.PowertoolsDeduplicator.__init__.<locals>.answer_once",
        backend.key_prefix,
    )
    layer.save_inprogress({"key": f"{APPID}:msg:3"}, remaining_time_in_millis=60_000)

    # Then a retry here is answered success, without running the handler
    assert backend.dedup.once(f"{APPID}:msg:3", never("ran while the first is in progress")) == SUCCESS

    # And once that invocation is over (it died), the next retry runs the handler
    layer.save_inprogress({"key": f"{APPID}:msg:4"}, remaining_time_in_millis=1)
    time.sleep(0.01)  # past its deadline (in ms): no timing asserted
    assert backend.dedup.once(f"{APPID}:msg:4", lambda: "handled") == "handled"


def test_a_signature_bound_to_one_body_refuses_another_before_the_handler_runs(backend: Backend) -> None:
    # Given a delivery whose signature is bound to its body
    first = backend.dedup.once(f"{APPID}:msg:5", lambda: "one", binding=(f"{APPID}:sig:S", "sha256:a"))
    assert first == "one"

    # When the same signature comes with another body (from a container with a cold cache too)
    fresh = StoreDeduplicator(
        backend.dedup._records,  # the same store, another container
        key_prefix=backend.dedup._prefix,
        expires_after_seconds=3600,
    )
    for dedup in (backend.dedup, fresh):
        with pytest.raises(BindingRefused):
            dedup.once(
                f"{APPID}:msg:6",
                never("a forged body reached the handler"),
                binding=(f"{APPID}:sig:S", "sha256:b"),
            )

    # Then the forged message left no claim: its MsgId is handled when it really comes
    assert fresh.once(f"{APPID}:msg:6", lambda: "real") == "real"
    # And the same body again (WeChat's retry) gets the first answer
    assert fresh.once(f"{APPID}:msg:5", never("ran twice"), binding=(f"{APPID}:sig:S", "sha256:a")) == "one"


@pytest.fixture
def on_token_table(aws: AWS, monkeypatch: pytest.MonkeyPatch) -> tuple[StoreDeduplicator, Any]:
    """A deduplicator on the token table (TOKEN_STORE=dynamodb) and its boto3 client."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    create_token_table(aws)
    backend = DynamoDBTokenStore(aws.client("dynamodb"), table=TOKEN_TABLE).dedup_backend()
    dedup = store_deduplicator(backend, expires_after_seconds=3600)
    return dedup, backend.records.client  # type: ignore[attr-defined]


def test_a_first_delivery_with_its_binding_costs_three_dynamodb_calls_and_a_retry_none_more(
    on_token_table: tuple[StoreDeduplicator, Any],
) -> None:
    # powertools took four (two PutItem, two UpdateItem) and a GetItem per record found without
    # ALL_OLD; here the binding is one PutItem, the claim one, the answer one UpdateItem.
    dedup, client = on_token_table
    calls: list[str] = []
    client.meta.events.register(
        "before-send.dynamodb",
        lambda request, **_: calls.append(request.headers["X-Amz-Target"].decode().split(".")[-1]),
    )

    assert dedup.once(f"{APPID}:msg:7", lambda: "a", binding=(f"{APPID}:sig:T", "sha256:x")) == "a"
    assert calls == ["PutItem", "PutItem", "UpdateItem"]

    calls.clear()
    assert dedup.once(f"{APPID}:msg:7", never("ran twice"), binding=(f"{APPID}:sig:T", "sha256:x")) == "a"
    assert calls == []  # this container's cache knows both


# --- Redis: the answer's SET is sent, and its reply read with the next claim ----------------
@pytest.fixture
def plain_redis(redis_url: str, redis_server: RedisServer) -> Iterator[tuple[StoreDeduplicator, Any]]:
    """A deduplicator on a plain client, as the webhook builds it, and an admin client."""
    store = RedisTokenStore.from_url(redis_url)
    dedup = store_deduplicator(store.dedup_backend(), expires_after_seconds=3600)
    dedup.register_context(FakeLambdaContext(function_name=FUNCTION, remaining_seconds=6))
    with redis_server.client() as admin:
        yield dedup, admin
        admin.config_set("maxmemory", 0)
    store.client.close()


def _stored(admin: Any, dedup: StoreDeduplicator, key: str) -> dict[str, Any]:
    """The record of ``key`` as Redis holds it, once its answer's SET has been applied (the
    deduplicator sent it without waiting: polled, not timed)."""
    deadline = time.monotonic() + 5
    while True:
        raw = admin.get(dedup._stored_key(key))
        record: dict[str, Any] = json.loads(raw) if raw else {}
        if record.get("status") == "COMPLETED" or time.monotonic() > deadline:
            return record
        time.sleep(0.01)


def test_the_answer_reaches_redis_without_the_claims_connection_being_used_again(
    plain_redis: tuple[StoreDeduplicator, Any],
) -> None:
    dedup, admin = plain_redis

    # When a first delivery is answered, and nothing more is sent on the deduplicator's connection
    assert dedup.once(f"{APPID}:msg:20", lambda: "<xml>20</xml>") == "<xml>20</xml>"

    # Then Redis holds the answer, and another container's retry gets it without the handler
    assert _stored(admin, dedup, f"{APPID}:msg:20")["status"] == "COMPLETED"
    other = StoreDeduplicator(dedup._records, key_prefix=dedup._prefix, expires_after_seconds=3600)
    other._records = RedisTokenStore(admin).dedup_backend().records
    assert other.once(f"{APPID}:msg:20", never("ran twice")) == "<xml>20</xml>"


def test_an_answer_redis_refused_is_logged_with_the_next_claim_which_reads_its_own_replies(
    plain_redis: tuple[StoreDeduplicator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    dedup, admin = plain_redis

    def produce_while_redis_is_full() -> str:
        admin.config_set("maxmemory", 1)  # noeviction: every write is refused with OOM
        return "<xml>21</xml>"

    # Given an answer whose SET Redis refuses (it is returned all the same)
    assert dedup.once(f"{APPID}:msg:21", produce_while_redis_is_full) == "<xml>21</xml>"
    admin.config_set("maxmemory", 0)

    # When the next delivery comes
    assert dedup.once(f"{APPID}:msg:22", lambda: "<xml>22</xml>") == "<xml>22</xml>"

    # Then the refusal is logged, by class only, and that claim read its own replies: it was
    # written (a second delivery of it is a retry), and the refused answer was not
    assert any(r.getMessage() == "dedup answer not stored" for r in caplog.records)
    assert _stored(admin, dedup, f"{APPID}:msg:22")["status"] == "COMPLETED"
    assert dedup.once(f"{APPID}:msg:22", never("ran twice")) == "<xml>22</xml>"
    assert json.loads(admin.get(dedup._stored_key(f"{APPID}:msg:21")))["status"] == "INPROGRESS"


def test_a_connection_closed_with_an_answer_owed_is_opened_again_for_the_next_claim(
    plain_redis: tuple[StoreDeduplicator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    dedup, admin = plain_redis
    assert dedup.once(f"{APPID}:msg:23", lambda: "<xml>23</xml>") == "<xml>23</xml>"
    assert _stored(admin, dedup, f"{APPID}:msg:23")["status"] == "COMPLETED"

    # When Redis closes every client's connection while the answer's reply is unread
    # (a container thawed after the server's idle timeout, or a failover)
    admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    # Then the next delivery is deduplicated on a new connection, not handled without dedup
    assert dedup.once(f"{APPID}:msg:24", lambda: "<xml>24</xml>") == "<xml>24</xml>"
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert _stored(admin, dedup, f"{APPID}:msg:24")["status"] == "COMPLETED"
    assert dedup.once(f"{APPID}:msg:23", never("ran twice")) == "<xml>23</xml>"


def test_a_deliverys_binding_and_claim_are_sent_to_dynamodb_together(
    on_token_table: tuple[StoreDeduplicator, Any],
) -> None:
    # Both PutItems must be in flight at once: each waits at the barrier for the other (sent one
    # after the other, the first would wait alone and break it). A structure, not a timing.
    import threading

    dedup, client = on_token_table
    both_in_flight = threading.Barrier(2, timeout=5)
    met: list[bool] = []

    def meet(request: Any, **_: Any) -> None:
        if request.headers["X-Amz-Target"].decode().endswith("PutItem"):
            both_in_flight.wait()
            met.append(True)

    client.meta.events.register("before-send.dynamodb", meet)

    assert dedup.once(f"{APPID}:msg:30", lambda: "a", binding=(f"{APPID}:sig:U", "sha256:y")) == "a"
    assert met == [True, True]


def _through(proxy: RedisProxy, server: RedisServer, url_options: str = "") -> StoreDeduplicator:
    store = RedisTokenStore.from_url(proxy.url(server.password) + url_options)
    dedup = store_deduplicator(store.dedup_backend(), expires_after_seconds=3600)
    dedup.register_context(FakeLambdaContext(function_name=FUNCTION, remaining_seconds=6))
    return dedup


def test_a_claim_whose_reply_was_lost_after_redis_ran_it_is_known_as_its_own(
    redis_proxy: RedisProxy, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    dedup = _through(redis_proxy, redis_server)
    assert dedup.once(f"{APPID}:msg:40", lambda: "warm") == "warm"  # the connection is open
    runs: list[str] = []

    # When Redis runs the claim and the connection drops before its reply arrives
    redis_proxy.drop_next_reply.set()
    answer = dedup.once(
        f"{APPID}:msg:41",
        lambda: runs.append("ran") or "<xml>41</xml>",
        binding=(f"{APPID}:sig:V", "sha256:z"),
    )

    # Then the claim sent again finds its own record and runs the handler, once: not answered
    # "success" as if another container were handling it (WeChat would not retry: lost)
    assert redis_proxy.dropped == 1
    assert (answer, runs) == ("<xml>41</xml>", ["ran"])
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


def test_a_server_older_than_redis_7_gets_set_nx_and_get(
    redis_proxy: RedisProxy, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a server that refuses SET … NX … GET with a syntax error, as Redis 6 does
    redis_proxy.older_server = True
    dedup = _through(redis_proxy, redis_server)

    # Then deliveries are deduplicated all the same, without a failure logged
    assert dedup.once(f"{APPID}:msg:42", lambda: "<xml>42</xml>", binding=(f"{APPID}:sig:W", "sha256:w")) == (
        "<xml>42</xml>"
    )
    other = StoreDeduplicator(dedup._records, key_prefix=dedup._prefix, expires_after_seconds=3600)
    assert other.once(f"{APPID}:msg:42", never("ran twice")) == "<xml>42</xml>"
    with pytest.raises(BindingRefused):
        other.once(f"{APPID}:msg:43", never("a forged body ran"), binding=(f"{APPID}:sig:W", "sha256:x"))
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "dedup" in r.getMessage()]
    assert dedup._records._set_get is False  # type: ignore[attr-defined]  # it did fall back


def test_a_health_check_does_not_read_an_answer_owed_on_the_dedup_connection(
    redis_proxy: RedisProxy, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a REDIS_URL asking redis-py for health checks (a PING before a command on a
    # connection idle longer than the interval), and an answer whose reply is still owed
    dedup = _through(redis_proxy, redis_server, "?health_check_interval=1")
    assert dedup.once(f"{APPID}:msg:44", lambda: "<xml>44</xml>") == "<xml>44</xml>"
    time.sleep(1.2)  # past the interval: not a timing asserted, the condition for a PING

    # Then the next delivery is deduplicated and answered, its replies read as its own
    assert dedup.once(f"{APPID}:msg:45", lambda: "<xml>45</xml>") == "<xml>45</xml>"
    other = StoreDeduplicator(dedup._records, key_prefix=dedup._prefix, expires_after_seconds=3600)
    assert other.once(f"{APPID}:msg:44", never("ran twice")) == "<xml>44</xml>"
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


def test_a_claim_that_fails_halfway_on_dynamodb_leaves_no_record_in_progress(
    aws: AWS, on_token_table: tuple[StoreDeduplicator, Any]
) -> None:
    from botocore.exceptions import ReadTimeoutError

    dedup, client = on_token_table
    dedup.register_context(FakeLambdaContext(function_name=FUNCTION, remaining_seconds=6))
    binding_key = dedup._stored_key(f"{APPID}:sig:X")
    failing = [True]

    def binding_times_out(request: Any, **_: Any) -> None:
        if failing[0] and binding_key.encode() in request.body:
            raise ReadTimeoutError(endpoint_url="the binding's PutItem")

    client.meta.events.register("before-send.dynamodb", binding_times_out)

    # When the binding's PutItem fails while the message's claim is written beside it
    assert dedup.once(f"{APPID}:msg:46", lambda: "first", binding=(f"{APPID}:sig:X", "sha256:v")) == "first"

    # Then the message was handled without dedup, and its claim was withdrawn: WeChat's retry
    # is handled, not answered "success" for a claim nobody completes
    failing[0] = False
    item = aws.client("dynamodb").get_item(
        TableName=TOKEN_TABLE, Key={"name": {"S": dedup._stored_key(f"{APPID}:msg:46")}}
    )
    assert "Item" not in item
    assert dedup.once(f"{APPID}:msg:46", lambda: "retry", binding=(f"{APPID}:sig:X", "sha256:v")) == "retry"
