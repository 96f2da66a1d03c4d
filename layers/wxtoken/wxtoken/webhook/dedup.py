"""Dedup of WeChat's retries across containers, on the token store's own records.

WeChat retries a callback it got no answer to (up to 3 times within ~15 s), possibly
reaching another container. The first delivery's answer is kept in Redis (when that is the
token store) or DynamoDB (the token table, or ``DEDUP_TABLE`` when the store is SSM), keyed by
MsgId or, for events, FromUserName + CreateTime + Event; a retry gets the same answer without
running the business handler again.

This ran on powertools Idempotency until issue 12; it is written here for a measured reason.
A delivery needs two records, its message's and its signature's binding
(:meth:`~wxtoken.webhook.pipeline.Webhook._signature_binding`), and powertools writes each in
two round trips (in progress, then completed) with a read on top for a record found: four
round trips a message, where an app on wechatpy dedups in two (``SET NX``, then the answer).
Round trips are nearly all of a warm request with dedup (``bench/dedup_roundtrip.py``, one run:
on Redis 720 µs for wxtoken against 349 µs for wechatpy doing the same dedup work by hand, on
DynamoDB 15–23 ms against 7–10 ms), and powertools' own work added about 78 µs of CPU per
message on Redis. Here the binding is written completed at once (its answer is known: the
content's digest) in the same round trip as the message's in-progress claim — one pipeline
on Redis — so a first delivery costs two round trips on Redis and three calls on DynamoDB.
Since then a first delivery waits for less: on Redis one round trip (the answer's ``SET`` is
sent and its reply read with the next claim, :mod:`wxtoken.store.redis_dedup`), and on DynamoDB
one call's time too (the binding's and the message's ``PutItem`` sent together, the answer's
``UpdateItem`` sent and its response read with the next answer's, :mod:`wxtoken.store.
dynamodb_dedup` and :mod:`wxtoken.store.unawaited_writes`).
After (same benchmark, 15 rounds, the two versions alternated): wechatpy / wxtoken went from
0.45x to 0.70-0.73x on Redis and from 0.48-0.50x to 0.64-0.75x on DynamoDB (docs/measured.md).

The semantics are powertools', as the tests pin them: the first delivery runs the handler
and stores its answer; a retry while it is in progress is answered ``success`` (its answer
would not reach WeChat in time anyway); a retry after it gets the stored answer without
running the handler; an in-progress record expires with its invocation
(:meth:`StoreDeduplicator.register_context`); completed records are kept in a local cache
of 256; and a dedup store that fails is logged and skipped (the message is handled without
dedup). Keys and records are powertools' byte for byte (``<prefix>#<md5 of the key's JSON>``),
so the ACL and IAM rules on ``wxtoken-dedup#*`` hold, and a deploy does not forget the
hour's records.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from wxtoken.observability import DUPLICATE_DELIVERY, count, logger
from wxtoken.store.base import DedupBackend, DedupClaim, DedupRecord, DedupRecords
from wxtoken.webhook.pipeline import BindingRefused
from wxtoken.wechat.replies import SUCCESS

# powertools' local cache size (IdempotencyConfig.local_cache_max_items).
LOCAL_CACHE_SIZE = 256


class StoreDeduplicator:
    """Runs ``produce`` once per key within ``expires_after_seconds``, on ``records``."""

    def __init__(
        self,
        records: DedupRecords,
        *,
        key_prefix: str,
        expires_after_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._prefix = key_prefix
        self._expires_after = expires_after_seconds
        self._clock = clock
        self._context: Any = None
        # Completed answers by stored key, with their expiry: a retry reaching this container
        # again costs no round trip.
        self._cache: collections.OrderedDict[str, tuple[str, int]] = collections.OrderedDict()
        self._cache_lock = threading.Lock()

    def register_context(self, context: Any) -> None:
        """The invocation's Lambda context: an in-progress record expires with it."""
        self._context = context

    def once(
        self,
        key: str,
        produce: Callable[[], str],
        *,
        delivery: bool = True,
        binding: tuple[str, str] | None = None,
    ) -> str:
        """``produce()``'s answer for the first delivery of ``key`` (``{appid}:…``), the stored
        answer for a retry, ``success`` for a retry while the first is in progress (then
        ``produce`` never runs). A retry is counted as ``DuplicateDelivery`` and logged, unless
        ``delivery=False`` (a key that is not a delivery: a signature's binding).

        ``binding=(bind_key, value)``: stores ``value`` under ``bind_key`` too, unless a record
        is there, in the same round trip as ``key``'s claim; raises :class:`BindingRefused`
        (before ``produce`` runs) when another value is stored there or is being stored.
        With the store down, nothing is refused and ``produce`` runs (fails open).
        """
        appid = key.partition(":")[0]  # the rest names the user: not for the logs
        now = self._clock()
        expires_at = int(now) + self._expires_after
        stored_key = self._stored_key(key)
        bound = self._binding_to_claim(binding, now)
        cached = self._cached(stored_key, now)
        if cached is not None:
            if bound is not None:  # the binding still needs its record
                self._claim_binding(appid, bound, expires_at)
            if delivery:
                self._retry(appid, "duplicate delivery; answered as the first time")
            return cached

        claims = [DedupClaim(stored_key, expires_at, None, self._in_progress_until(now))]
        if bound is not None:
            claims.insert(0, DedupClaim(bound[0], expires_at, bound[1]))
        try:
            found = self._records.claim(claims)
        except Exception as exc:  # any store failure costs dedup, not the message
            self._unavailable(appid, exc)
            return produce()
        record = found[-1]
        if bound is not None:
            self._judge_binding(bound, found[0], expires_at, withdraw=stored_key if record is None else None)
        if record is None:
            return self._produce(appid, stored_key, produce, expires_at)
        if record.answer is None:
            # The first delivery is still being handled in another container; its answer
            # will not reach WeChat in time anyway. Nothing runs twice.
            if delivery:
                self._retry(appid, "duplicate delivery while the first is in progress; answered success")
            return SUCCESS
        # Cached until the stored record expires, as powertools cached it.
        self._remember(stored_key, record.answer, record.expires_at or expires_at)
        if delivery:
            self._retry(appid, "duplicate delivery; answered as the first time")
        return record.answer

    def _produce(self, appid: str, stored_key: str, produce: Callable[[], str], expires_at: int) -> str:
        """The first delivery: ``produce()``'s answer, stored for the retries."""
        try:
            answer = produce()
        except BaseException:
            # powertools' rule: a handler that raised leaves no record, so a retry runs it.
            try:
                self._records.release(stored_key)
            except Exception as exc:
                self._unavailable(appid, exc)
            raise
        try:
            self._records.complete(stored_key, answer, expires_at)
        except Exception as exc:  # the handler has run: answer, and do not run it twice
            self._unavailable(appid, exc)
            return answer
        self._remember(stored_key, answer, expires_at)
        return answer

    # --- the binding ------------------------------------------------------------------------
    def _binding_to_claim(self, binding: tuple[str, str] | None, now: float) -> tuple[str, str] | None:
        """``(stored key, value)`` of a binding still to claim; ``None`` when there is none, or
        the local cache knows it bound to this value. :class:`BindingRefused` when the cache
        knows it bound to another."""
        if binding is None:
            return None
        stored_key, value = self._stored_key(binding[0]), binding[1]
        cached = self._cached(stored_key, now)
        if cached is None:
            return stored_key, value
        if cached != value:
            raise BindingRefused
        return None

    def _claim_binding(self, appid: str, bound: tuple[str, str], expires_at: int) -> None:
        try:
            (record,) = self._records.claim([DedupClaim(bound[0], expires_at, bound[1])])
        except Exception as exc:  # fails open: nothing is refused
            self._unavailable(appid, exc)
            return
        self._judge_binding(bound, record, expires_at, withdraw=None)

    def _judge_binding(
        self, bound: tuple[str, str], record: DedupRecord | None, expires_at: int, *, withdraw: str | None
    ) -> None:
        """Raises :class:`BindingRefused` when the binding's key holds another value, or is
        in progress (a twin binding it this very moment, as the previous version wrote it);
        the message's claim written beside it (``withdraw``) is deleted first."""
        key, value = bound
        if record is None or record.answer == value:
            self._remember(key, value, expires_at if record is None else record.expires_at or expires_at)
            return
        if withdraw is not None:
            try:
                self._records.release(withdraw)
            except Exception as exc:  # it expires with this invocation anyway
                self._unavailable(withdraw.partition("#")[0], exc)
        raise BindingRefused

    # --- helpers ----------------------------------------------------------------------------
    def _stored_key(self, key: str) -> str:
        # powertools' key: the prefix, "#", and the MD5 of the key's JSON (not a secret: a
        # spread of keys).
        return f"{self._prefix}#{hashlib.md5(json.dumps(key).encode(), usedforsecurity=False).hexdigest()}"

    def _in_progress_until(self, now: float) -> int | None:
        if self._context is None:
            return None  # unknown: in progress until the record expires (powertools' rule)
        return int((now * 1000) + self._context.get_remaining_time_in_millis())

    def _cached(self, stored_key: str, now: float) -> str | None:
        with self._cache_lock:
            entry = self._cache.get(stored_key)
            if entry is None:
                return None
            if int(now) > entry[1]:
                del self._cache[stored_key]
                return None
            self._cache.move_to_end(stored_key)
            return entry[0]

    def _remember(self, stored_key: str, answer: str, expires_at: int) -> None:
        with self._cache_lock:
            self._cache[stored_key] = (answer, expires_at)
            self._cache.move_to_end(stored_key)
            while len(self._cache) > LOCAL_CACHE_SIZE:
                self._cache.popitem(last=False)

    @staticmethod
    def _retry(appid: str, message: str) -> None:
        logger.info(message, extra={"appid": appid})
        count(DUPLICATE_DELIVERY)

    @staticmethod
    def _unavailable(appid: str, exc: Exception) -> None:
        # The dedup store is down: better a rare double reply than a lost message.
        logger.warning(
            "dedup store unavailable; handling without dedup",
            extra={"appid": appid, "error": type(exc).__name__},
        )


def store_deduplicator(backend: DedupBackend, *, expires_after_seconds: int) -> StoreDeduplicator:
    """Dedup on the token store's own connection (see :meth:`TokenStore.dedup_backend`)."""
    return StoreDeduplicator(
        backend.records, key_prefix=backend.key_prefix, expires_after_seconds=expires_after_seconds
    )


def dynamodb_deduplicator(
    table_name: str, *, expires_after_seconds: int, boto3_session: Any = None
) -> StoreDeduplicator:
    """Dedup on the DedupTable (the SSM store's), with timeouts from :data:`wxtoken.budget.DEDUP`.

    A dead table makes the first write fail in well under a second and the message is
    handled without dedup, inside WeChat's 5 s. The table is powertools Idempotency's (key
    ``id``, TTL on ``expiration``), and so are its keys: prefixed by the function's name and
    the name of the function powertools wrapped here, as the previous version wrote them.
    """
    from wxtoken.budget import DEDUP
    from wxtoken.store.dynamodb_dedup import DynamoDBDedupRecords

    def client() -> Any:
        import boto3

        return (boto3_session or boto3).client("dynamodb", config=DEDUP.botocore_config())

    # The Lambda runtime's variable, read as powertools read it for this prefix.
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "test-func")
    prefix = f"{function}.wxtoken.webhook.dedup.PowertoolsDeduplicator.__init__.<locals>.answer_once"
    records = DynamoDBDedupRecords(client, table=table_name, key_attr="id", expiry_attr="expiration")
    return StoreDeduplicator(records, key_prefix=prefix, expires_after_seconds=expires_after_seconds)
