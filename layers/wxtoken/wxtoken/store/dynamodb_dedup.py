"""The webhook's dedup records on a DynamoDB table: the token table (``TOKEN_STORE=dynamodb``)
or the DedupTable the SSM store needs.

One item per record, keyed ``<prefix>#<hash>``, with the attributes powertools Idempotency
wrote (``status``, the expiry the table's TTL reads, ``in_progress_expiration``, ``data``),
so containers of the previous version read it during a deploy. A claim is one conditional
``PutItem`` — written if there is no item, or it has expired, or it is in progress past its
invocation's deadline — whose refusal returns the item found (``ALL_OLD``), so a retry costs
no ``GetItem``. Completing is one ``UpdateItem``, sent and not waited for
(:mod:`wxtoken.store.unawaited_writes`): a first delivery waits for one round trip. Only
``PutItem``, ``UpdateItem`` and ``DeleteItem`` are sent, on the record's own key, which is
what the webhook's IAM policy allows (``dynamodb:LeadingKeys`` ``wxtoken-dedup#*`` on the token table).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from wxtoken.budget import DEDUP, CallBudget
from wxtoken.errors import StoreError
from wxtoken.observability import logger
from wxtoken.store.base import COMPLETED, IN_PROGRESS, DedupClaim, DedupRecord, answer_data
from wxtoken.store.unawaited_writes import UnawaitedWrites

_REFUSED = "ConditionalCheckFailedException"
_STATUS = "status"
_DATA = "data"
_IN_PROGRESS_UNTIL = "in_progress_expiration"
# Written unless a live record is there (powertools' condition, word for word).
_CONDITION = (
    "attribute_not_exists(#id) OR #expiry < :now"
    " OR (#status = :inprogress AND attribute_exists(#in_progress_expiry)"
    " AND #in_progress_expiry < :now_in_millis)"
)


class DynamoDBDedupRecords:
    """:class:`~wxtoken.store.base.DedupRecords` on ``table``: partition key ``key_attr``,
    TTL attribute ``expiry_attr``. ``client_factory`` builds the boto3 ``dynamodb`` client at
    the first call, with the timeouts of ``budget``, which the answers' unawaited writes
    keep too."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        budget: CallBudget = DEDUP,
        table: str,
        key_attr: str,
        expiry_attr: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._budget = budget
        self._answers: UnawaitedWrites | None = None
        self._lock = threading.Lock()
        self.table = table
        self._key_attr = key_attr
        self._expiry_attr = expiry_attr
        self._clock = clock

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = self._client_factory()
                    self._answers = UnawaitedWrites(
                        client,
                        "UpdateItem",
                        connect_timeout=self._budget.connect_timeout,
                        read_timeout=self._budget.read_timeout,
                        executor=_pool,
                        on_failure=_answer_not_stored,
                    )
                    self._client = client
        return self._client

    def claim(self, claims: Sequence[DedupClaim]) -> list[DedupRecord | None]:
        """Each claim's conditional ``PutItem``, sent at once: a delivery's two (its binding
        and its message) wait for one call's time, not two.

        Why threads (issue 12): the calls are independent, and a call is milliseconds of
        waiting on DynamoDB (5–10 ms) against about 0.1 ms to hand one to a thread. Not
        measured: moto answers one request at a time, so ``bench/dedup_roundtrip.py`` cannot
        show the overlap (6.1 against 6.4 ms for the two), and there is no AWS account here.
        ``TransactWriteItems`` would make them one request, but a transaction costs twice the
        write units and, with its two phases, about the time of the two writes it replaces.
        boto3's clients are thread-safe.
        """
        if self._answers is not None:
            self._answers.poll()  # the last answer's response, if it has come
        if len(claims) < 2:
            return [self._claim(claim) for claim in claims]
        others = [_pool().submit(self._claim, claim) for claim in claims[1:]]
        outcomes: list[DedupRecord | BaseException | None] = []
        try:
            outcomes.append(self._claim(claims[0]))
        except BaseException as exc:
            outcomes.append(exc)
        # Every call ends before the claim does, whatever the first one's fate.
        outcomes += [future.exception() or future.result() for future in others]
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is None:
            return outcomes  # type: ignore[return-value]
        # The claim fails as a whole, and the caller handles the message without dedup: an
        # in-progress record written beside the failure would answer its retries "success".
        for claim, outcome in zip(claims, outcomes, strict=True):
            if outcome is None and claim.answer is None:
                with contextlib.suppress(StoreError):  # else it expires with this invocation
                    self.release(claim.key)
        raise failed

    def complete(self, key: str, answer: str, expires_at: int) -> None:
        """The answer's ``UpdateItem``, not waited for when it can be (see the module)."""
        client = self.client
        assert self._answers is not None  # made with the client
        self._answers.send(
            lambda: self._call(
                "UpdateItem",
                lambda: client.update_item(
                    TableName=self.table,
                    Key={self._key_attr: {"S": key}},
                    UpdateExpression="SET #data = :data, #expiry = :expiry, #status = :status",
                    ExpressionAttributeNames={
                        "#data": _DATA,
                        "#expiry": self._expiry_attr,
                        "#status": _STATUS,
                    },
                    ExpressionAttributeValues={
                        ":data": {"S": answer_data(answer)},
                        ":expiry": {"N": str(expires_at)},
                        ":status": {"S": COMPLETED},
                    },
                ),
            )
        )

    def release(self, key: str) -> None:
        self._call(
            "DeleteItem",
            lambda: self.client.delete_item(TableName=self.table, Key={self._key_attr: {"S": key}}),
        )

    def _claim(self, claim: DedupClaim) -> DedupRecord | None:
        item: dict[str, Any] = {
            self._key_attr: {"S": claim.key},
            self._expiry_attr: {"N": str(claim.expires_at)},
        }
        if claim.answer is None:
            item[_STATUS] = {"S": IN_PROGRESS}
            if claim.in_progress_until_ms is not None:
                item[_IN_PROGRESS_UNTIL] = {"N": str(claim.in_progress_until_ms)}
        else:
            item[_STATUS] = {"S": COMPLETED}
            item[_DATA] = {"S": answer_data(claim.answer)}
        now = self._clock()
        try:
            self._call(
                "PutItem",
                lambda: self.client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression=_CONDITION,
                    ExpressionAttributeNames={
                        "#id": self._key_attr,
                        "#expiry": self._expiry_attr,
                        "#in_progress_expiry": _IN_PROGRESS_UNTIL,
                        "#status": _STATUS,
                    },
                    ExpressionAttributeValues={
                        ":now": {"N": str(int(now))},
                        ":now_in_millis": {"N": str(int(now * 1000))},
                        ":inprogress": {"S": IN_PROGRESS},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
            )
        except _RefusedError as refused:
            found = refused.item
            record = DedupRecord.from_fields(
                _string(found.get(_STATUS)),
                _string(found.get(_DATA)),
                _number(found.get(self._expiry_attr)),
                _number(found.get(_IN_PROGRESS_UNTIL)),
                now,
            )
            # DynamoDB judged it live; one this code cannot read counts as in progress.
            return record or DedupRecord(answer=None)
        return None

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "UnknownError")
            if code == _REFUSED:
                item = exc.response.get("Item")
                raise _RefusedError(item if isinstance(item, dict) else {}) from None
            raise StoreError(f"DynamoDB dedup {operation} failed: {code}") from None
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB dedup {operation} failed: {type(exc).__name__}") from None


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The container's threads for a delivery's second claim, started at its first delivery."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wxtoken-dedup")
        return _POOL


def _answer_not_stored(error: str) -> None:
    # Found with the next answer's write: a retry of that message is answered "success" until
    # its in-progress record expires, then runs the handler again.
    logger.warning("dedup answer not stored", extra={"error": error})


def _string(value: Any) -> str | None:
    return value.get("S") if isinstance(value, dict) else None


def _number(value: Any) -> str | None:
    return value.get("N") if isinstance(value, dict) else None


class _RefusedError(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition not met")
        self.item = item
