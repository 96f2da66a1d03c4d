"""The webhook's dedup records on Redis, on the token store's own client.

A record is one string key, ``wxtoken-dedup#<hash>``, holding the JSON powertools Idempotency
wrote (``{"status", "expiration", "in_progress_expiration"}``, then ``{"data", "status",
"expiration"}``), so containers of the previous version read it during a deploy.

A claim is ``SET NX`` followed by ``GET`` of the same key, every claim of a delivery (the
message and its signature's binding) in one pipeline: one round trip, where powertools took
one per ``SET NX`` and another per ``GET`` of a record found. Only ``GET``, ``SET`` and
``DEL`` are sent, on ``wxtoken-dedup#*`` keys, which is what the webhook's Redis user may do
(template.yaml, WebhookRedisUser). An in-progress record expires (``PX``) with its
invocation, so a dead container's claim vanishes by itself; one written by the previous
version, which kept in-progress records for the whole hour, is taken over under its
``…:lock`` key as powertools did.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisClusterException, RedisError

from wxtoken.errors import StoreError
from wxtoken.store.base import COMPLETED, IN_PROGRESS, DedupClaim, DedupRecord, answer_data

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

_REDIS_ERRORS = (RedisError, RedisClusterException)
# How long a takeover of a stale record holds its lock (powertools' orphan lock: 10 s).
_TAKEOVER_LOCK_SECONDS = 10
# A record that vanished between SET NX and GET (it expired just then) is claimed again.
_ATTEMPTS = 3


class RedisDedupRecords:
    """:class:`~wxtoken.store.base.DedupRecords` on a ``redis.Redis`` or ``RedisCluster``."""

    def __init__(self, client: Redis | RedisCluster, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock

    def claim(self, claims: Sequence[DedupClaim]) -> list[DedupRecord | None]:
        results: list[DedupRecord | None] = [None] * len(claims)
        pending = list(range(len(claims)))
        for _ in range(_ATTEMPTS):
            pipe = self._client.pipeline(transaction=False)
            for index in pending:
                claim = claims[index]
                ex, px = self._expiry(claim)
                pipe.set(claim.key, _value(claim), nx=True, ex=ex, px=px)
                pipe.get(claim.key)
            try:
                replies = pipe.execute()
            except _REDIS_ERRORS as exc:
                raise _store_error("claim", exc) from None
            vanished = []
            for n, index in enumerate(pending):
                written, stored = replies[2 * n], replies[2 * n + 1]
                if written:
                    continue
                if stored is None:
                    vanished.append(index)
                    continue
                record = _record(stored, self._clock())
                if record is None and self._take_over(claims[index]):
                    continue
                # Live, or stale and being taken over by another container: in progress.
                results[index] = record or DedupRecord(answer=None)
            if not vanished:
                return results
            pending = vanished
        raise StoreError("Redis claim failed: the record kept vanishing")

    def complete(self, key: str, answer: str, expires_at: int) -> None:
        try:
            self._client.set(key, _completed(answer, expires_at), ex=self._seconds_until(expires_at))
        except _REDIS_ERRORS as exc:
            raise _store_error("SET", exc) from None

    def release(self, key: str) -> None:
        try:
            self._client.delete(key)
        except _REDIS_ERRORS as exc:
            raise _store_error("DEL", exc) from None

    def _take_over(self, claim: DedupClaim) -> bool:
        """Replace a stale record (its invocation over, or unreadable) under ``<key>:lock``, so
        that of the containers seeing it at once only one runs the handler."""
        try:
            if not self._client.set(f"{claim.key}:lock", "True", ex=_TAKEOVER_LOCK_SECONDS, nx=True):
                return False
            ex, px = self._expiry(claim)
            self._client.set(claim.key, _value(claim), ex=ex, px=px)
        except _REDIS_ERRORS as exc:
            raise _store_error("takeover", exc) from None
        # The lock is left to expire: it keeps another container from taking the record over
        # again while this one works (powertools' rule too).
        return True

    def _expiry(self, claim: DedupClaim) -> tuple[int | None, int | None]:
        """``(EX, PX)``: an in-progress record is gone with its invocation (at least 1 ms:
        PX refuses 0); any other lives until its ``expires_at``."""
        if claim.answer is None and claim.in_progress_until_ms is not None:
            return None, max(1, claim.in_progress_until_ms - int(self._clock() * 1000))
        return self._seconds_until(claim.expires_at), None

    def _seconds_until(self, expires_at: int) -> int:
        return max(1, math.ceil(expires_at - self._clock()))


def _value(claim: DedupClaim) -> str:
    if claim.answer is not None:
        return _completed(claim.answer, claim.expires_at)
    record: dict[str, Any] = {"status": IN_PROGRESS, "expiration": claim.expires_at}
    if claim.in_progress_until_ms is not None:
        record["in_progress_expiration"] = claim.in_progress_until_ms
    return json.dumps(record)


def _completed(answer: str, expires_at: int) -> str:
    return json.dumps({"data": answer_data(answer), "status": COMPLETED, "expiration": expires_at})


def _record(stored: bytes | str, now: float) -> DedupRecord | None:
    try:
        fields = json.loads(stored)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(fields, dict):
        return None
    return DedupRecord.from_fields(
        fields.get("status"),
        fields.get("data"),
        fields.get("expiration"),
        fields.get("in_progress_expiration"),
        now,
    )


def _store_error(operation: str, exc: Exception) -> StoreError:
    # The error class only: a connection error names the host, and the URL may hold a password.
    return StoreError(f"Redis dedup {operation} failed: {type(exc).__name__}")
