"""What only the DynamoDB store does (moto): the item layout readers rely on, TTL only where
items should vanish, damaged items replaced, leases taken over by exactly one contender and
judged on DynamoDB's clock, dedup in the same table, the Open Platform queues on its sparse
index. What every store does is in test_store_contract.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest

from tests.fixtures.aws import AWS, TOKEN_TABLE, create_token_table, inject_error, throttle
from tests.fixtures.lambda_context import FakeLambdaContext
from wxtoken.errors import DamagedRecordError, LeaseBusyError, StoreError
from wxtoken.store.base import Credential, PlatformStore, QueuedAuthorizer, RecordName, encode
from wxtoken.store.dynamodb_store import CLIENT_CONFIG, DEDUP_KEY_PREFIX, QUEUE_INDEX, DynamoDBTokenStore

APPID = "wx0123456789abcdef"
TOKEN_ITEM = f"{APPID}/access_token"
LEASE_ITEM = f"{APPID}/lease"


def credential(value: str = "TOKEN-A", fetched_at: float = 1_700_000_000.123) -> Credential:
    return Credential(value=value, expires_at=int(fetched_at) + 7200, fetched_at=fetched_at)


@pytest.fixture
def table(aws: AWS) -> str:
    return create_token_table(aws)


def new_store(aws: AWS, clock: Any = time.time) -> DynamoDBTokenStore:
    return DynamoDBTokenStore(aws.client("dynamodb"), table=TOKEN_TABLE, clock=clock)


@pytest.fixture
def store(aws: AWS, table: str) -> DynamoDBTokenStore:
    return new_store(aws)


def item(aws: AWS, name: str) -> dict[str, Any] | None:
    answer = aws.client("dynamodb").get_item(
        TableName=TOKEN_TABLE, Key={"name": {"S": name}}, ConsistentRead=True
    )
    return answer.get("Item")


def put_item(aws: AWS, **attributes: dict[str, str]) -> None:
    aws.client("dynamodb").put_item(TableName=TOKEN_TABLE, Item=attributes)


# -- the item readers in any language read ---------------------------------------------------


def test_a_record_is_one_item_named_appid_slash_record_whose_value_is_the_json(
    store: DynamoDBTokenStore, aws: AWS
) -> None:
    record = credential().to_record(RecordName.ACCESS_TOKEN)

    assert store.write_if_newer(APPID, RecordName.ACCESS_TOKEN, record, ttl_seconds=7200)

    stored = item(aws, TOKEN_ITEM)
    assert stored == {
        "name": {"S": TOKEN_ITEM},
        "value": {"S": encode(record)},  # the same JSON string SSM and Redis hold
        "fetched_at": {"N": "1700000000.123"},
    }
    # no TTL attribute: DynamoDB deletes expired items within days, and never a token record
    assert "expires_at" not in stored


def test_every_read_is_strongly_consistent(store: DynamoDBTokenStore) -> None:
    # A lease holder's token must be seen by the next read, or a waiting caller mints again.
    sent: list[dict[str, Any]] = []
    store.client.meta.events.register(
        "provide-client-params.dynamodb.GetItem", lambda params, **_: sent.append(dict(params))
    )

    store.read(APPID, RecordName.ACCESS_TOKEN)
    store.read_raw(APPID, RecordName.MINT_INTENT)

    assert [params["ConsistentRead"] for params in sent] == [True, True]


# -- damaged items ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [
        # a hand edit of value that left a fetched_at claiming to be newer than anything
        {"value": {"S": "garbage"}, "fetched_at": {"N": "9999999999"}},
        # a value whose JSON is fine but whose fetched_at attribute is gone
        {"value": {"S": '{"access_token":"x","expires_at":1,"fetched_at":Infinity}'}},
        # no value at all, or one that is not a string
        {"fetched_at": {"N": "1"}},
        {"value": {"N": "42"}, "fetched_at": {"S": "yesterday"}},
    ],
    ids=["not-json-newer-attribute", "infinity-no-attribute", "no-value", "value-not-a-string"],
)
def test_a_damaged_item_never_blocks_the_write_that_replaces_it(
    store: DynamoDBTokenStore, aws: AWS, attributes: dict[str, Any]
) -> None:
    put_item(aws, name={"S": TOKEN_ITEM}, **attributes)
    with pytest.raises(DamagedRecordError):  # not a record readers can use
        Credential.from_record(RecordName.ACCESS_TOKEN, store.read(APPID, RecordName.ACCESS_TOKEN) or {})
    record = credential().to_record(RecordName.ACCESS_TOKEN)

    assert store.write_if_newer(APPID, RecordName.ACCESS_TOKEN, record, None)

    assert store.read(APPID, RecordName.ACCESS_TOKEN) == record
    assert item(aws, TOKEN_ITEM)["fetched_at"] == {"N": "1700000000.123"}


def test_a_valid_value_is_judged_by_its_own_fetched_at_when_the_attribute_is_missing(
    store: DynamoDBTokenStore, aws: AWS
) -> None:
    # Another tool wrote only name and value (the documented contract): its record is newer.
    newer = credential("THEIRS", 1_700_000_100.0).to_record(RecordName.ACCESS_TOKEN)
    put_item(aws, name={"S": TOKEN_ITEM}, value={"S": encode(newer)})

    older = credential("OURS", 1_700_000_000.0).to_record(RecordName.ACCESS_TOKEN)
    assert not store.write_if_newer(APPID, RecordName.ACCESS_TOKEN, older, None)
    assert store.read(APPID, RecordName.ACCESS_TOKEN) == newer


def test_replace_over_an_item_without_a_value_expects_the_empty_string(
    store: DynamoDBTokenStore, aws: AWS
) -> None:
    put_item(aws, name={"S": TOKEN_ITEM}, fetched_at={"N": "1"})
    seen = store.read_raw(APPID, RecordName.ACCESS_TOKEN)
    assert seen == ""
    record = credential().to_record(RecordName.ACCESS_TOKEN)

    assert not store.replace(APPID, RecordName.ACCESS_TOKEN, record, None, expected=None)
    assert store.replace(APPID, RecordName.ACCESS_TOKEN, record, None, expected=seen)
    assert not store.replace(APPID, RecordName.ACCESS_TOKEN, record, None, expected=seen)


# -- lease -----------------------------------------------------------------------------------


def test_the_lease_item_names_its_owner_and_carries_the_ttl_attribute(
    store: DynamoDBTokenStore, aws: AWS
) -> None:
    with store.lease(APPID, 30):
        lease = item(aws, LEASE_ITEM)
        assert lease is not None
        assert set(lease) == {"name", "owner", "lease_until", "expires_at"}
        until = float(lease["lease_until"]["N"])
        assert until == pytest.approx(time.time() + 30, abs=3)
        # DynamoDB's TTL wants whole epoch seconds; it deletes a dead holder's lease in time
        assert int(lease["expires_at"]["N"]) >= until

    assert item(aws, LEASE_ITEM) is None


def test_an_expired_lease_is_taken_over_by_exactly_one_of_many_contenders(aws: AWS, table: str) -> None:
    # Given the lease of a holder that died a minute ago
    put_item(
        aws,
        name={"S": LEASE_ITEM},
        owner={"S": "dead-holder"},
        lease_until={"N": str(time.time() - 60)},
        expires_at={"N": str(int(time.time()))},
    )
    contenders = 12
    stores = [new_store(aws) for _ in range(contenders)]
    start = threading.Barrier(contenders)
    done = threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def contend(store: DynamoDBTokenStore) -> None:
        start.wait(timeout=30)
        try:
            with store.lease(APPID, 30):
                with lock:
                    outcomes.append("held")
                done.wait(timeout=30)  # hold it until every other contender has tried
        except LeaseBusyError:
            with lock:
                outcomes.append("busy")

    # When they all see it expired at the same moment and try to take it over
    threads = [threading.Thread(target=contend, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(outcomes) < contenders and time.monotonic() < deadline:
        if outcomes.count("busy") == contenders - 1:
            break
        time.sleep(0.05)
    done.set()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one holds it: the takeover is conditioned on the dead holder's owner id
    assert sorted(outcomes) == ["busy"] * (contenders - 1) + ["held"]


def test_a_late_release_never_frees_the_lease_its_successor_took(
    aws: AWS, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    stuck, taker = new_store(aws), new_store(aws)
    held = stuck.lease(APPID, 0.1)
    held.__enter__()
    time.sleep(2.2)  # past the lease, and the Date header's whole second

    with caplog.at_level(logging.WARNING, logger="wxtoken.store.dynamodb_store"):
        taken = taker.lease(APPID, 30)
        taken.__enter__()
        held.__exit__(None, None, None)

    assert "taking over an expired refresh lease" in caplog.text
    assert "taken over" in caplog.text
    with pytest.raises(LeaseBusyError), stuck.lease(APPID, 30):
        pass
    taken.__exit__(None, None, None)
    assert item(aws, LEASE_ITEM) is None


@pytest.mark.parametrize("skew", [-120.0, 120.0])
def test_a_writer_with_a_skewed_clock_neither_writes_an_expired_lease_nor_takes_a_live_one(
    aws: AWS, table: str, skew: float
) -> None:
    """Leases are written and judged on DynamoDB's clock (its Date header), as SSM's are:
    a container whose clock is two minutes off changes nothing (issue 9)."""
    skewed = new_store(aws, clock=lambda: time.time() + skew)
    honest = new_store(aws)

    with skewed.lease(APPID, 45), pytest.raises(LeaseBusyError), honest.lease(APPID, 45):
        pass
    with honest.lease(APPID, 45), pytest.raises(LeaseBusyError), skewed.lease(APPID, 45):
        pass


@pytest.mark.parametrize(
    "attributes",
    [{"owner": {"S": "x"}}, {"owner": {"S": "x"}, "lease_until": {"S": "soon"}}, {"lease_until": {"N": "1"}}],
    ids=["no-expiry", "expiry-not-a-number", "no-owner"],
)
def test_a_lease_item_that_cannot_be_read_counts_as_expired(
    store: DynamoDBTokenStore, aws: AWS, attributes: dict[str, Any]
) -> None:
    put_item(aws, name={"S": LEASE_ITEM}, **attributes)

    with store.lease(APPID, 30):
        assert item(aws, LEASE_ITEM)["owner"] != attributes.get("owner")


def test_a_lease_put_whose_answer_was_lost_is_held_by_its_owner(store: DynamoDBTokenStore, aws: AWS) -> None:
    # DynamoDB made the put, its answer was lost, botocore sent it again: the condition now
    # fails on our own lease, which must not make us wait for ourselves.
    def send_twice(params: dict[str, Any], **_: Any) -> None:
        if params["Item"]["name"]["S"] == LEASE_ITEM:
            aws.client("dynamodb").put_item(TableName=TOKEN_TABLE, Item=params["Item"])

    store.client.meta.events.register("provide-client-params.dynamodb.PutItem", send_twice)

    with store.lease(APPID, 30):
        assert item(aws, LEASE_ITEM) is not None
    assert item(aws, LEASE_ITEM) is None


# -- dedup -------------------------------------------------------------------------------------


def test_dedup_records_live_in_the_token_table_under_their_prefix_with_a_ttl(
    store: DynamoDBTokenStore, aws: AWS, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wxtoken.webhook.dedup import store_deduplicator

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wxtoken-webhook")
    backend = store.dedup_backend()
    dedup = store_deduplicator(backend, expires_after_seconds=3600)
    dedup.register_context(FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6))
    produced: list[str] = []

    def produce() -> str:
        produced.append("answer")
        return "answer"

    assert dedup.once(f"{APPID}:msg-1", produce) == "answer"
    assert dedup.once(f"{APPID}:msg-1", produce) == "answer"

    assert produced == ["answer"]
    items = aws.client("dynamodb").scan(TableName=TOKEN_TABLE)["Items"]
    (dedup_item,) = items
    assert dedup_item["name"]["S"].startswith(f"{DEDUP_KEY_PREFIX}#")
    assert int(dedup_item["expires_at"]["N"]) == pytest.approx(time.time() + 3600, abs=10)


# -- Open Platform queues (the sparse queue-due index) ----------------------------------------

COMPONENT = "wxc0mp0nent000001"
OTHER_COMPONENT = "wxc0mp0nent000002"
NOW = 1_700_000_000.0


def schedule_record(due_at: float) -> dict[str, Any]:
    return {"due_at": due_at, "fetched_at": NOW}


def event(kind: str, create_time: float) -> dict[str, Any]:
    return {"event": kind, "fetched_at": create_time}


def platform(store: DynamoDBTokenStore) -> PlatformStore:
    queues = store.platform_store()
    assert queues is not None
    return queues


def test_the_dynamodb_store_offers_the_open_platform_queues(store: DynamoDBTokenStore) -> None:
    assert store.platform_store() is store


def test_due_lists_only_authorizers_due_by_now_earliest_first(store: DynamoDBTokenStore) -> None:
    queues = platform(store)
    # Given four authorizers of one component, two due, one not yet, one due elsewhere
    for appid, due_at in [("wxlate", NOW + 600), ("wxsecond", NOW - 60), ("wxfirst", NOW - 3600)]:
        queues.schedule(appid, COMPONENT, due_at, schedule_record(due_at))
    queues.schedule("wxforeign", OTHER_COMPONENT, NOW - 7200, schedule_record(NOW - 7200))

    # Then only the component's due ones come back, earliest first
    assert queues.due(COMPONENT, NOW, limit=10) == [
        QueuedAuthorizer(appid="wxfirst", due_at=NOW - 3600),
        QueuedAuthorizer(appid="wxsecond", due_at=NOW - 60),
    ]
    assert queues.due(COMPONENT, NOW + 600, limit=10)[-1] == QueuedAuthorizer(
        appid="wxlate", due_at=NOW + 600
    )
    assert [q.appid for q in queues.due(OTHER_COMPONENT, NOW, limit=10)] == ["wxforeign"]


def test_due_takes_at_most_limit_paging_past_short_pages(store: DynamoDBTokenStore) -> None:
    queues = platform(store)
    for n in range(7):
        queues.schedule(f"wx{n:02d}", COMPONENT, NOW - 100 + n, schedule_record(NOW - 100 + n))
    # DynamoDB ends a page at 1 MB, whatever Limit says: pages of two stand in for that
    asked: list[int] = []

    def short_pages(params: dict[str, Any], **_: Any) -> None:
        asked.append(params["Limit"])
        params["Limit"] = min(params["Limit"], 2)

    store.client.meta.events.register("provide-client-params.dynamodb.Query", short_pages)

    assert [q.appid for q in queues.due(COMPONENT, NOW, limit=5)] == ["wx00", "wx01", "wx02", "wx03", "wx04"]
    assert asked == [5, 3, 1]  # never more than what is still wanted


def test_the_schedule_item_is_the_record_with_its_queue_and_due_at(
    store: DynamoDBTokenStore, aws: AWS
) -> None:
    record = schedule_record(NOW + 60)
    platform(store).schedule("wxauth", COMPONENT, NOW + 60, record)

    assert item(aws, "wxauth/refresh_schedule") == {
        "name": {"S": "wxauth/refresh_schedule"},
        "value": {"S": encode(record)},
        "fetched_at": {"N": repr(NOW)},
        "queue": {"S": COMPONENT},
        "due_at": {"N": repr(NOW + 60)},
    }
    assert store.read("wxauth", RecordName.REFRESH_SCHEDULE) == record


def test_scheduling_again_moves_the_authorizer_and_unschedule_removes_it(store: DynamoDBTokenStore) -> None:
    queues = platform(store)
    queues.schedule("wxauth", COMPONENT, NOW - 10, schedule_record(NOW - 10))
    queues.schedule("wxauth", COMPONENT, NOW + 7000, schedule_record(NOW + 7000))

    assert queues.due(COMPONENT, NOW, limit=10) == []
    assert queues.due(COMPONENT, NOW + 7000, limit=10) == [
        QueuedAuthorizer(appid="wxauth", due_at=NOW + 7000)
    ]

    queues.unschedule("wxauth")
    queues.unschedule("wxauth")  # already gone: nothing to do, no error

    assert queues.due(COMPONENT, NOW + 7000, limit=10) == []
    assert store.read("wxauth", RecordName.REFRESH_SCHEDULE) is None


def test_only_schedule_items_are_handed_out_as_authorizers(store: DynamoDBTokenStore, aws: AWS) -> None:
    # a hand-written item that happens to carry a queue is not an authorizer to refresh
    put_item(aws, name={"S": "wxodd/access_token"}, queue={"S": COMPONENT}, due_at={"N": str(NOW - 5)})
    platform(store).schedule("wxauth", COMPONENT, NOW - 1, schedule_record(NOW - 1))

    assert [q.appid for q in platform(store).due(COMPONENT, NOW, limit=10)] == ["wxauth"]


def test_the_queues_are_read_on_the_index_and_never_copy_a_value(store: DynamoDBTokenStore) -> None:
    sent: list[dict[str, Any]] = []
    store.client.meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: sent.append(dict(params))
    )
    platform(store).schedule("wxauth", COMPONENT, NOW - 1, schedule_record(NOW - 1))

    platform(store).due(COMPONENT, NOW, limit=3)
    platform(store).pending_events(COMPONENT, limit=3)

    assert [params["IndexName"] for params in sent] == [QUEUE_INDEX, QUEUE_INDEX]
    assert all("ConsistentRead" not in params for params in sent)  # an index has no consistent read
    description = store.client.describe_table(TableName=TOKEN_TABLE)["Table"]
    (index,) = description["GlobalSecondaryIndexes"]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_a_newer_authorization_event_wins_and_an_older_one_is_refused(store: DynamoDBTokenStore) -> None:
    queues = platform(store)
    authorized = event("authorized", NOW)
    unauthorized = event("unauthorized", NOW + 30)

    assert queues.post_event("wxauth", COMPONENT, authorized)
    assert queues.post_event("wxauth", COMPONENT, unauthorized)
    # WeChat retries the first push after the second: it must not bring the account back
    assert not queues.post_event("wxauth", COMPONENT, authorized)
    assert not queues.post_event("wxauth", COMPONENT, unauthorized)  # a retry of the same push

    assert store.read("wxauth", RecordName.AUTHORIZATION_EVENT) == unauthorized
    assert queues.pending_events(COMPONENT, limit=10) == ["wxauth"]


def test_pending_events_are_per_component_oldest_first_and_not_in_the_refresh_queue(
    store: DynamoDBTokenStore,
) -> None:
    queues = platform(store)
    queues.post_event("wxlater", COMPONENT, event("updateauthorized", NOW + 5))
    queues.post_event("wxearlier", COMPONENT, event("authorized", NOW))
    queues.post_event("wxforeign", OTHER_COMPONENT, event("authorized", NOW - 5))
    queues.schedule("wxscheduled", COMPONENT, NOW - 5, schedule_record(NOW - 5))

    assert queues.pending_events(COMPONENT, limit=10) == ["wxearlier", "wxlater"]
    assert queues.pending_events(COMPONENT, limit=1) == ["wxearlier"]
    assert queues.pending_events(OTHER_COMPONENT, limit=10) == ["wxforeign"]
    # events are not authorizers due for refresh, nor the other way round
    assert [q.appid for q in queues.due(COMPONENT, NOW + 3600, limit=10)] == ["wxscheduled"]


def test_an_event_acted_on_is_deleted_only_if_no_newer_one_came_meanwhile(store: DynamoDBTokenStore) -> None:
    queues = platform(store)
    queues.post_event("wxauth", COMPONENT, event("authorized", NOW))
    seen = store.read_raw("wxauth", RecordName.AUTHORIZATION_EVENT)
    assert seen is not None
    # Given a newer event posted while the refresher acted on the one it read
    queues.post_event("wxauth", COMPONENT, event("unauthorized", NOW + 1))

    assert not queues.delete("wxauth", RecordName.AUTHORIZATION_EVENT, expected=seen)
    assert queues.pending_events(COMPONENT, limit=10) == ["wxauth"]

    newer = store.read_raw("wxauth", RecordName.AUTHORIZATION_EVENT)
    assert queues.delete("wxauth", RecordName.AUTHORIZATION_EVENT, expected=newer)
    assert queues.pending_events(COMPONENT, limit=10) == []


def test_delete_says_whether_it_deleted(store: DynamoDBTokenStore, aws: AWS) -> None:
    queues = platform(store)
    record = credential().to_record(RecordName.ACCESS_TOKEN)
    store.write_if_newer(APPID, RecordName.ACCESS_TOKEN, record, None)

    assert queues.delete(APPID, RecordName.ACCESS_TOKEN)
    assert item(aws, TOKEN_ITEM) is None
    assert not queues.delete(APPID, RecordName.ACCESS_TOKEN)  # no item
    assert not queues.delete(APPID, RecordName.ACCESS_TOKEN, expected=encode(record))

    # an item with no value (a hand edit) is what read_raw calls "": deleted by that
    put_item(aws, name={"S": TOKEN_ITEM}, fetched_at={"N": "1"})
    assert not queues.delete(APPID, RecordName.ACCESS_TOKEN, expected=encode(record))
    assert queues.delete(
        APPID, RecordName.ACCESS_TOKEN, expected=store.read_raw(APPID, RecordName.ACCESS_TOKEN)
    )
    assert item(aws, TOKEN_ITEM) is None


@pytest.mark.parametrize("limit", [0, -1])
def test_a_queue_read_wants_a_positive_limit(store: DynamoDBTokenStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        platform(store).due(COMPONENT, NOW, limit=limit)


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("Query", lambda q: q.due(COMPONENT, NOW, 5)),
        ("Query", lambda q: q.pending_events(COMPONENT, 5)),
        ("PutItem", lambda q: q.schedule("wxauth", COMPONENT, NOW, {"secret": "REFRESH-TOKEN"})),
        (
            "PutItem",
            lambda q: q.post_event("wxauth", COMPONENT, {"secret": "REFRESH-TOKEN", "fetched_at": NOW}),
        ),
        ("DeleteItem", lambda q: q.unschedule("wxauth")),
        (
            "DeleteItem",
            lambda q: q.delete("wxauth", RecordName.AUTHORIZER_REFRESH_TOKEN, expected="REFRESH-TOKEN"),
        ),
    ],
    ids=["due", "pending_events", "schedule", "post_event", "unschedule", "delete"],
)
def test_queue_errors_are_store_errors_naming_the_operation_only(
    aws: AWS, table: str, operation: str, call: Any
) -> None:
    store = new_store(aws)
    inject_error(store.client, operation, 5, code="AccessDeniedException", message="REFRESH-TOKEN")

    with pytest.raises(StoreError) as raised:
        call(platform(store))

    assert str(raised.value) == f"DynamoDB {operation} failed: AccessDeniedException"
    assert raised.value.__cause__ is None


def test_queue_reads_on_a_table_without_the_index_are_store_errors(aws: AWS) -> None:
    client = aws.client("dynamodb")
    client.create_table(
        TableName=TOKEN_TABLE,
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # a table created before the index (an old stack not yet updated)
    with pytest.raises(StoreError, match=r"^DynamoDB Query failed: "):
        platform(new_store(aws)).due(COMPONENT, NOW, 5)


# -- failures --------------------------------------------------------------------------------


def test_a_missing_table_is_a_store_error_naming_token_table(aws: AWS) -> None:
    store = new_store(aws)  # no table created

    with pytest.raises(StoreError, match=r"ResourceNotFoundException.*TOKEN_TABLE"):
        store.read(APPID, RecordName.ACCESS_TOKEN)


def test_a_throttled_write_is_retried_by_botocore_and_succeeds(aws: AWS, table: str) -> None:
    client = aws.client("dynamodb", config=CLIENT_CONFIG)
    store = DynamoDBTokenStore(client, table=TOKEN_TABLE)
    throttle(client, "PutItem", 2)

    record = credential().to_record(RecordName.ACCESS_TOKEN)
    assert store.write_if_newer(APPID, RecordName.ACCESS_TOKEN, record, None)


def test_errors_name_the_operation_and_code_never_the_item(aws: AWS, table: str) -> None:
    store = new_store(aws)
    inject_error(store.client, "PutItem", 5, code="AccessDeniedException", message="TOKEN-A is secret")
    record = credential().to_record(RecordName.ACCESS_TOKEN)

    with pytest.raises(StoreError) as raised:
        store.write_if_newer(APPID, RecordName.ACCESS_TOKEN, record, None)

    assert str(raised.value) == "DynamoDB PutItem failed: AccessDeniedException"
    assert raised.value.__cause__ is None
    assert "TOKEN-A" not in json.dumps(str(raised.value))
