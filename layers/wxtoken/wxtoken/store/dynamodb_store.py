"""Token store on a DynamoDB table (``TOKEN_TABLE``), through a boto3 ``dynamodb`` client.

One item per record, partition key ``name`` (S) = ``{appid}/{record}`` (``wx123/access_token``),
attribute ``value`` (S) = the record's JSON exactly as every store writes it, so a reader in
any language does one ``GetItem`` and parses ``value``. Beside it a numeric ``fetched_at``,
which the write's condition compares (a condition cannot look inside a JSON string).

What SSM builds from a read and a put (serialized by the lease), DynamoDB does in one
conditional write: ``write_if_newer`` and ``replace`` are each one ``PutItem`` whose
condition DynamoDB evaluates atomically with the write; the lease is a conditional
``PutItem`` and a conditional ``DeleteItem``. Reads that decide a refresh are strongly
consistent (``ConsistentRead``): an eventually consistent read may miss, for up to a second,
the token the lease holder has just stored, and the caller would mint another one.

Open Platform (:class:`~wxtoken.store.base.PlatformStore`) adds a sparse global secondary index,
:data:`QUEUE_INDEX` (partition key ``queue`` (S), sort key ``due_at`` (N), keys only). Only two
kinds of item carry those attributes, so only they are in it: an authorizer's
``refresh_schedule`` (``queue`` = its component's appid, ``due_at`` = when its token is due) and
its ``authorization_event`` (``queue`` = ``{component}#events``, ``due_at`` = WeChat's
CreateTime). A run asks the index for what is due, earliest first, in bounded batches, instead
of reading every authorizer. An index is eventually consistent (DynamoDB has no consistent read
on a global secondary index): callers re-read the item before acting on it.

Items that should vanish carry ``expires_at`` (epoch seconds), the table's TTL attribute:
the lease and the webhook's dedup records. Token records never do: DynamoDB deletes expired
items only within days (its TTL is for clean-up, not expiry), and readers judge a record by
the ``expires_at`` inside ``value``.

Every botocore error becomes :class:`~wxtoken.errors.StoreError` naming the operation and
AWS's error code only (``"DynamoDB PutItem failed: ProvisionedThroughputExceededException"``),
never an item. Throttling and transient errors are first retried by botocore (standard mode,
:data:`CLIENT_CONFIG`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from wxtoken.budget import DEDUP, TOKEN_STORE
from wxtoken.errors import LeaseBusyError, StoreError
from wxtoken.store.base import DedupBackend, QueuedAuthorizer, RecordName, decode, encode
from wxtoken.store.server_clock import DATE_RESOLUTION_SECONDS, ServerClock

if TYPE_CHECKING:
    from wxtoken.config import Settings

logger = logging.getLogger(__name__)

# The same budget as SSM's (wxtoken.budget.TOKEN_STORE): 0.5 s connect, 0.75 s read, three
# attempts, so the webhook's one store read still fails inside WeChat's 5 s. On-demand tables
# throttle rarely (a partition's 3,000 reads and 1,000 writes a second), but when they do
# the two retries absorb it.
CLIENT_CONFIG = TOKEN_STORE.botocore_config()

# The item's attributes. ``name`` and ``value`` are the contract readers rely on.
KEY = "name"
VALUE = "value"
FETCHED_AT = "fetched_at"
OWNER = "owner"
LEASE_UNTIL = "lease_until"
# The sparse queue index (template.yaml, TokenTable's GlobalSecondaryIndexes) and its keys.
QUEUE_INDEX = "queue-due"
QUEUE = "queue"
DUE_AT = "due_at"
# A component's authorization events queue beside its refresh queue: "{component}#events".
EVENTS_QUEUE_SUFFIX = "#events"
# The table's TimeToLiveSpecification attribute (template.yaml, TokenTable).
TTL_ATTRIBUTE = "expires_at"
# Every dedup item's key starts with this (``wxtoken-dedup#<hash>``): the webhook's role may
# write only items whose key starts so (dynamodb:LeadingKeys), and read the tokens.
DEDUP_KEY_PREFIX = "wxtoken-dedup"

_NOT_FOUND = "ResourceNotFoundException"
_REFUSED = "ConditionalCheckFailedException"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "UnknownError")


def _number(value: float) -> dict[str, str]:
    """A DynamoDB number; ``repr`` keeps a float's milliseconds exactly as JSON does."""
    return {"N": repr(float(value)) if isinstance(value, float) else str(value)}


def _finite(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number of unix seconds")
    return number


def _finite_fetched_at(record: dict[str, Any]) -> float:
    return _finite(record["fetched_at"], "record fetched_at")


def _queued(entry: dict[str, Any], suffix: str) -> QueuedAuthorizer | None:
    """The authorizer an index entry (``name``, ``queue``, ``due_at``) stands for; ``None``
    for an entry whose name is not ``{appid}{suffix}`` (an item written by hand with a
    ``queue``). DynamoDB keeps only a numeric ``due_at`` in the index: it refuses any write
    that gives an index key another type."""
    name = entry[KEY]["S"]
    if not name.endswith(suffix) or len(name) == len(suffix):
        return None
    return QueuedAuthorizer(appid=name[: -len(suffix)], due_at=float(entry[DUE_AT]["N"]))


def _stored_fetched_at(raw: str) -> float | None:
    """The ``fetched_at`` inside a stored value; ``None`` when the value is damaged (not JSON,
    no finite ``fetched_at``), which must never block the write that replaces it."""
    try:
        return _finite_fetched_at(decode(raw, "record"))
    except (StoreError, KeyError, TypeError, ValueError, OverflowError):
        return None


def _raw_value(item: dict[str, Any]) -> str:
    """An existing item's ``value`` as stored; ``""`` when it has no string ``value`` (a hand
    edit), which :meth:`DynamoDBTokenStore.replace` with ``expected=""`` replaces."""
    value = item.get(VALUE)
    return value["S"] if isinstance(value, dict) and isinstance(value.get("S"), str) else ""


def _value_is(expected: str | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The condition (expression, names, values) that the stored ``value`` is exactly
    ``expected``: ``None`` no item; ``""`` an item with no string ``value``, or an empty one
    (what :meth:`DynamoDBTokenStore.read_raw` reports for those)."""
    # DynamoDB refuses a name or value placeholder the condition does not use.
    if expected is None:
        return "attribute_not_exists(#key)", {"#key": KEY}, {}
    if expected:
        return "#value = :expected", {"#value": VALUE}, {":expected": {"S": expected}}
    return (
        "attribute_exists(#key) AND (attribute_not_exists(#value)"
        " OR NOT attribute_type(#value, :string) OR #value = :expected)",
        {"#key": KEY, "#value": VALUE},
        {":expected": {"S": ""}, ":string": {"S": "S"}},
    )


@dataclass(frozen=True, slots=True)
class _Refused:
    """A conditional write DynamoDB refused, with the item as it was (``ALL_OLD``; empty if
    there was none) and DynamoDB's clock at its answer."""

    item: dict[str, Any]
    server_now: float


class DynamoDBTokenStore:
    """The :class:`~wxtoken.store.base.TokenStore` on one DynamoDB table.

    ``client`` is a boto3 ``dynamodb`` client (build one with :meth:`from_settings` for the
    retry and timeout policy). Leases expire on DynamoDB's clock (the ``Date`` of its
    answers); ``clock`` (unix seconds) stands in until DynamoDB has answered once.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        table: str,
        clock: Callable[[], float] = time.time,
        client_factory: Callable[[], Any] | None = None,
        boto3_session: Any = None,
    ) -> None:
        if client is None and client_factory is None:
            raise ValueError("DynamoDBTokenStore needs a client or a client_factory")
        self._client = client
        self._client_factory = client_factory
        self._client_lock = threading.Lock()
        self._boto3_session = boto3_session
        self.table = table
        self.server_clock = ServerClock(clock)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time, boto3_session: Any = None
    ) -> Self:
        """A store on ``settings.token_table``, on a boto3 client of its own (region and
        endpoint from the environment) built at its first call, in ``boto3_session`` when
        given (one Session per container keeps botocore's data loaded once)."""
        if not settings.token_table:
            raise ValueError("TOKEN_STORE=dynamodb needs TOKEN_TABLE")  # Settings checks it first

        def client() -> Any:
            import boto3

            if boto3_session is not None:
                return boto3_session.client("dynamodb", config=CLIENT_CONFIG)
            return boto3.client("dynamodb", config=CLIENT_CONFIG)

        return cls(
            table=settings.token_table, clock=clock, client_factory=client, boto3_session=boto3_session
        )

    @property
    def client(self) -> Any:
        """The boto3 ``dynamodb`` client, built at first use: a webhook that never reads the
        store (its message path) does not pay for it at cold start."""
        if self._client is None:
            with self._client_lock:
                if self._client is None and self._client_factory is not None:
                    self._client = self._client_factory()
        return self._client

    @staticmethod
    def item_name(appid: str, name: RecordName | str) -> str:
        """The partition key: ``{appid}/{name}``."""
        return f"{appid}/{name}"

    # -- records ---------------------------------------------------------------------------

    def read(self, appid: str, name: RecordName) -> dict[str, Any] | None:
        raw = self.read_raw(appid, name)
        return None if raw is None else decode(raw, f"{name} record")

    def read_raw(self, appid: str, name: RecordName) -> str | None:
        """The stored ``value`` (strongly consistent: this read decides whether to mint);
        ``""`` for an item without a string ``value``, which :meth:`read` reports damaged."""
        item = self._get(self.item_name(appid, name))
        return None if item is None else _raw_value(item)

    def write_if_newer(
        self, appid: str, name: RecordName, record: dict[str, Any], ttl_seconds: float | None
    ) -> bool:
        """One conditional ``PutItem``: written if there is no item, or its ``fetched_at`` is
        older than the record's.

        When DynamoDB refuses, its answer holds the stored item (``ALL_OLD``), judged by the
        ``fetched_at`` inside its ``value`` (what readers see): at least as new, the write is
        refused. A damaged item — a value that is not JSON, a missing or non-numeric
        ``fetched_at`` attribute (a hand edit) — never blocks it: it is replaced by a second
        ``PutItem`` conditioned on exactly that stored value, so a concurrent writer is never
        overwritten blindly. ``ttl_seconds`` is ignored: records never expire from the table.
        """
        _finite_fetched_at(record)  # ValueError before any call, as every store does
        return self._put_if_newer(self._record_item(self.item_name(appid, name), record))

    def _put_if_newer(self, item: dict[str, Any]) -> bool:
        """Put ``item`` (a record's, with its ``fetched_at``) as :meth:`write_if_newer` says."""
        fetched_at = float(item[FETCHED_AT]["N"])
        refused = self._put(
            item,
            # attribute_type: a fetched_at of another type (a hand edit) fails the condition
            # rather than being compared.
            "attribute_not_exists(#key)"
            " OR (attribute_type(#fetched_at, :number) AND #fetched_at < :fetched_at)",
            names={"#key": KEY, "#fetched_at": FETCHED_AT},
            values={":fetched_at": _number(fetched_at), ":number": {"S": "N"}},
        )
        if refused is None:
            return True
        if not refused.item:  # deleted meanwhile: only an item that is not there refuses nothing
            return self._put_over(item, expected=None)
        stored = _raw_value(refused.item)
        stored_at = _stored_fetched_at(stored)
        if stored_at is not None and stored_at >= fetched_at:
            return False
        return self._put_over(item, expected=stored)

    def replace(
        self,
        appid: str,
        name: RecordName,
        record: dict[str, Any],
        ttl_seconds: float | None,
        *,
        expected: str | None,
    ) -> bool:
        """One ``PutItem`` conditioned on the stored ``value`` being exactly ``expected``
        (``None``: no item). Atomic: two holders of one lease can never both replace the
        same record. ``ttl_seconds`` is ignored, as for :meth:`write_if_newer`."""
        return self._put_over(self._record_item(self.item_name(appid, name), record), expected=expected)

    @staticmethod
    def _record_item(key: str, record: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {KEY: {"S": key}, VALUE: {"S": encode(record)}}
        # A record without a write-ordering time gets none: nothing to compare.
        with suppress(KeyError, TypeError, ValueError, OverflowError):
            item[FETCHED_AT] = _number(_finite_fetched_at(record))
        return item

    def _put_over(self, item: dict[str, Any], *, expected: str | None) -> bool:
        """Put ``item`` if the stored ``value`` is exactly ``expected`` (``None``: no item;
        ``""``: an item with no string ``value``, or an empty one)."""
        condition, names, values = _value_is(expected)
        return self._put(item, condition, names=names, values=values) is None

    # -- Open Platform queues ----------------------------------------------------------------

    def platform_store(self) -> Self:
        """This store: its table indexes the Open Platform queues (:data:`QUEUE_INDEX`)."""
        return self

    def schedule(self, appid: str, component_appid: str, due_at: float, record: dict[str, Any]) -> None:
        """One unconditional ``PutItem`` of ``{appid}/refresh_schedule``: ``record`` as its
        ``value``, ``queue`` = ``component_appid`` and ``due_at`` (what puts it in the index).
        Unconditional: the refresher schedules an authorizer under its lease."""
        item = self._record_item(self.item_name(appid, RecordName.REFRESH_SCHEDULE), record)
        item[QUEUE] = {"S": component_appid}
        item[DUE_AT] = _number(_finite(due_at, "due_at"))
        self._call("PutItem", lambda: self.client.put_item(TableName=self.table, Item=item))

    def unschedule(self, appid: str) -> None:
        """Delete ``{appid}/refresh_schedule`` (and so its place in the queue); none is fine."""
        self.delete(appid, RecordName.REFRESH_SCHEDULE)

    def due(self, component_appid: str, now: float, limit: int) -> list[QueuedAuthorizer]:
        """A ``Query`` of :data:`QUEUE_INDEX`: ``queue = component_appid AND due_at <= now``,
        earliest first, paged until ``limit`` (a page stops at 1 MB). Eventually consistent:
        an authorizer scheduled or removed a moment ago may still be missing or listed."""
        return self._queue(component_appid, RecordName.REFRESH_SCHEDULE, limit, until=now)

    def post_event(self, appid: str, component_appid: str, record: dict[str, Any]) -> bool:
        """``{appid}/authorization_event``, written as :meth:`write_if_newer` writes (newest
        ``fetched_at`` wins, one conditional ``PutItem``), queued in ``{component}#events`` at
        ``due_at`` = its ``fetched_at``."""
        fetched_at = _finite_fetched_at(record)
        item = self._record_item(self.item_name(appid, RecordName.AUTHORIZATION_EVENT), record)
        item[QUEUE] = {"S": component_appid + EVENTS_QUEUE_SUFFIX}
        item[DUE_AT] = _number(fetched_at)
        return self._put_if_newer(item)

    def pending_events(self, component_appid: str, limit: int) -> list[str]:
        """The authorizers with an event in ``{component}#events``, oldest first (a ``Query``
        of :data:`QUEUE_INDEX`, eventually consistent: re-read the event before acting, and
        delete it with ``expected`` so a newer one posted meanwhile stays)."""
        queued = self._queue(component_appid + EVENTS_QUEUE_SUFFIX, RecordName.AUTHORIZATION_EVENT, limit)
        return [entry.appid for entry in queued]

    def delete(self, appid: str, name: RecordName, *, expected: str | None = None) -> bool:
        """One ``DeleteItem``, conditioned on the item existing, or with ``expected`` on its
        ``value`` being exactly that (``""``: an item with no string ``value``). Returns
        whether it deleted: a refused condition, or no item, is ``False``."""
        condition, names, values = (
            _value_is(expected) if expected is not None else ("attribute_exists(#key)", {"#key": KEY}, {})
        )
        params: dict[str, Any] = {
            "TableName": self.table,
            "Key": {KEY: {"S": self.item_name(appid, name)}},
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            params["ExpressionAttributeValues"] = values
        try:
            self._call("DeleteItem", lambda: self.client.delete_item(**params))
        except _RefusedError:
            return False
        return True

    def _queue(
        self, queue: str, name: RecordName, limit: int, *, until: float | None = None
    ) -> list[QueuedAuthorizer]:
        """Up to ``limit`` entries of ``queue`` (``due_at <= until`` when given), earliest
        first. Only ``{appid}/{name}`` items count: one written by hand with a ``queue`` is
        skipped, never handed to the refresher as an authorizer."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        key_condition = "#queue = :queue"
        names = {"#queue": QUEUE}
        values: dict[str, Any] = {":queue": {"S": queue}}
        if until is not None:
            key_condition += " AND #due_at <= :until"
            names["#due_at"] = DUE_AT
            values[":until"] = _number(_finite(until, "now"))
        suffix = f"/{name}"
        found: list[QueuedAuthorizer] = []
        start: dict[str, Any] | None = None
        while len(found) < limit:
            params: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": QUEUE_INDEX,
                "KeyConditionExpression": key_condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": True,
                "Limit": limit - len(found),
            }
            if start:
                params["ExclusiveStartKey"] = start
            page = self._query(params)
            for entry in page.get("Items") or []:
                queued = _queued(entry, suffix)
                if queued is not None:
                    found.append(queued)
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return found

    # -- dedup -----------------------------------------------------------------------------

    def dedup_backend(self) -> DedupBackend:
        """The webhook's dedup records in this same table, keyed ``wxtoken-dedup#<hash>`` and
        expired by the table's TTL on ``expires_at``.

        The same table rather than the DedupTable the SSM store needs: one resource fewer for
        the user to run and pay for, one table in the webhook's policy, and still least
        privilege — the template lets the webhook write only items whose key starts with
        :data:`DEDUP_KEY_PREFIX` (IAM's ``dynamodb:LeadingKeys``) and only read the tokens,
        as the Redis ACL does for ``wxtoken-dedup#*``. A dead table costs the message dedup,
        not its answer (:data:`wxtoken.budget.DEDUP`'s shorter timeouts).
        """
        from wxtoken.store.dynamodb_dedup import DynamoDBDedupRecords

        session = self._boto3_session

        def client() -> Any:
            import boto3

            return (session or boto3).client("dynamodb", config=DEDUP.botocore_config())

        records = DynamoDBDedupRecords(client, table=self.table, key_attr=KEY, expiry_attr=TTL_ATTRIBUTE)
        return DedupBackend(records, key_prefix=DEDUP_KEY_PREFIX)

    # -- lease -----------------------------------------------------------------------------

    def lease(self, appid: str, ttl_seconds: float) -> AbstractContextManager[None]:
        """Hold item ``{appid}/lease`` for the ``with`` block, or raise LeaseBusyError.

        Taking it is a ``PutItem`` of ``{owner, lease_until, expires_at}`` conditioned on no
        item being there. Refused, DynamoDB's answer holds the lease as stored: if it names
        this owner, ours was made and its answer lost (botocore retried), and it is held; if
        it has not expired, LeaseBusyError; if it has (its holder died or overran), it is
        taken over by a ``PutItem`` conditioned on the stored **owner** — a fresh random id
        per take — so of any number of contenders that saw the same expired lease exactly
        one wins, and none can take a lease someone took over meanwhile. Releasing is a
        ``DeleteItem`` conditioned on our owner, so a holder that overran never frees its
        successor's lease. Neither the SSM store's takeover race nor its release race exists.

        Expiry still needs a clock (a dead holder never releases), and it is DynamoDB's:
        ``lease_until`` is written on the writer's estimate of DynamoDB's clock (the ``Date``
        of its latest answer) and judged against the ``Date`` of the very answer that
        returned the lease, plus a second for the header's whole seconds. A container whose
        own clock is minutes off neither writes a lease that others think expired nor takes a
        live one. ``expires_at`` (the table's TTL) lets DynamoDB delete a dead holder's lease
        in time; nothing relies on it.
        """
        if ttl_seconds <= 0:
            raise ValueError("lease ttl_seconds must be positive")
        return self._lease(appid, ttl_seconds)

    @contextmanager
    def _lease(self, appid: str, ttl_seconds: float) -> Iterator[None]:
        key = self.item_name(appid, "lease")
        owner = uuid.uuid4().hex
        if not self.server_clock.known:
            # A new container's first call: learn DynamoDB's clock before writing a time on it.
            self._get(key)
        refused = self._take(key, owner, ttl_seconds, previous=None)
        if refused is not None:
            stored = refused.item.get(OWNER)
            if stored == {"S": owner}:
                pass  # our put went through; its answer was lost and botocore retried it
            elif not refused.item or not self._expired(refused):
                raise LeaseBusyError(f"the refresh lease of {appid} is held by another process")
            else:
                logger.warning(
                    "taking over an expired refresh lease; its holder died or overran it",
                    extra={"appid": appid},
                )
                if self._take(key, owner, ttl_seconds, previous=stored or {}) is not None:
                    raise LeaseBusyError(f"the refresh lease of {appid} is held by another process")
        try:
            yield
        finally:
            self._release(appid, key, owner)

    def _take(
        self, key: str, owner: str, ttl_seconds: float, *, previous: dict[str, Any] | None
    ) -> _Refused | None:
        """Put our lease if there is none (``previous`` None), or over exactly the lease
        naming ``previous`` as its owner (``{}``: a damaged lease with no owner)."""
        until = self.server_clock.now() + ttl_seconds
        item = {
            KEY: {"S": key},
            OWNER: {"S": owner},
            LEASE_UNTIL: _number(until),
            TTL_ATTRIBUTE: _number(math.ceil(until)),
        }
        if previous is None:
            return self._put(item, "attribute_not_exists(#key)", names={"#key": KEY}, values={})
        if not previous:
            return self._put(
                item,
                "attribute_exists(#key) AND attribute_not_exists(#owner)",
                names={"#key": KEY, "#owner": OWNER},
                values={},
            )
        return self._put(item, "#owner = :previous", names={"#owner": OWNER}, values={":previous": previous})

    @staticmethod
    def _expired(refused: _Refused) -> bool:
        """Whether the stored lease has expired on DynamoDB's clock; one we cannot read has."""
        until = refused.item.get(LEASE_UNTIL)
        try:
            lease_until = float(until["N"]) if isinstance(until, dict) else math.nan
        except (KeyError, TypeError, ValueError):
            return True
        if not math.isfinite(lease_until):
            return True
        return refused.server_now >= lease_until + DATE_RESOLUTION_SECONDS

    def _release(self, appid: str, key: str, owner: str) -> None:
        try:
            self._call(
                "DeleteItem",
                lambda: self.client.delete_item(
                    TableName=self.table,
                    Key={KEY: {"S": key}},
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": OWNER},
                    ExpressionAttributeValues={":owner": {"S": owner}},
                ),
            )
        except _RefusedError:
            logger.warning("refresh lease expired before release and was taken over", extra={"appid": appid})
        except StoreError as exc:
            logger.warning(
                "could not release the refresh lease; it expires by itself",
                extra={"appid": appid, "error": str(exc)},
            )

    # -- DynamoDB calls ----------------------------------------------------------------------

    def _get(self, key: str) -> dict[str, Any] | None:
        response = self._call(
            "GetItem",
            lambda: self.client.get_item(TableName=self.table, Key={KEY: {"S": key}}, ConsistentRead=True),
        )
        item = response.get("Item")
        return item if isinstance(item, dict) else None

    def _put(
        self, item: dict[str, Any], condition: str, *, names: dict[str, str], values: dict[str, Any]
    ) -> _Refused | None:
        """A conditional PutItem: ``None`` when written, else what DynamoDB refused it over."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            params["ExpressionAttributeValues"] = values
        try:
            self._call("PutItem", lambda: self.client.put_item(**params))
        except _RefusedError as refused:
            return _Refused(item=refused.item, server_now=self.server_clock.now())
        return None

    def _query(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._call("Query", lambda: self.client.query(**params))

    def _call(self, operation: str, call: Callable[[], Any]) -> dict[str, Any]:
        """``call()``'s answer, its ``Date`` noted as DynamoDB's clock. A refused condition
        is :class:`_RefusedError` (with the stored item); any other failure a
        :class:`StoreError` naming the operation and AWS's code only, never an item."""
        try:
            response: dict[str, Any] = call()
        except ClientError as exc:
            self.server_clock.observe(exc.response)
            code = _error_code(exc)
            if code == _REFUSED:
                item = exc.response.get("Item")
                raise _RefusedError(item if isinstance(item, dict) else {}) from None
            if code == _NOT_FOUND:
                raise StoreError(
                    f"DynamoDB {operation} failed: {code} (no table {self.table!r} in this account "
                    "and region: check TOKEN_TABLE, the stack's TokenTableName output)"
                ) from None
            raise StoreError(f"DynamoDB {operation} failed: {code}") from None
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB {operation} failed: {type(exc).__name__}") from None
        self.server_clock.observe(response)
        return response


class _RefusedError(Exception):
    """DynamoDB refused a conditional write (ConditionalCheckFailedException); ``item`` is the
    item as it was (``ALL_OLD``), empty when there was none."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition not met")
        self.item = item
