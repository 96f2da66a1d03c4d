"""The webhook's dedup records on Redis, on the token store's own client.

A record is one string key, ``wxtoken-dedup#<hash>``, holding the JSON powertools Idempotency
wrote (``{"status", "expiration", "in_progress_expiration"}``, then ``{"data", "status",
"expiration"}``), so containers of the previous version read it during a deploy.

A claim is ``SET NX`` followed by ``GET`` of the same key, every claim of a delivery (the
message and its signature's binding) sent together: one round trip, where powertools took
one per ``SET NX`` and another per ``GET`` of a record found. Only ``GET``, ``SET`` and
``DEL`` are sent, on ``wxtoken-dedup#*`` keys, which is what the webhook's Redis user may do
(template.yaml, WebhookRedisUser). An in-progress record expires (``PX``) with its
invocation, so a dead container's claim vanishes by itself; one written by the previous
version, which kept in-progress records for the whole hour, is taken over under its
``…:lock`` key as powertools did.

The answer's ``SET`` is sent and not waited for (issue 12, a measured reason): on a plain
client the records keep one connection of the client's pool for themselves, and the
``SET``'s reply is read with the next claim's, where it is already waiting. A first delivery
then waits for one round trip, not two: an app on wechatpy waits for two (``SET NX``, then
the answer), and on this machine a round trip to a local ``redis-server`` is 100–150 µs of a
request of 500–900 µs, more to ElastiCache over the network (``bench/dedup_roundtrip.py``).
What is given up: a ``SET`` Redis refuses (out of memory, say) is logged with the next
claim, not in the invocation that sent it; the answer is returned either way, as it was when
the ``SET`` failed before. The bytes leave in the ``send`` (redis-py sets ``TCP_NODELAY``),
before the invocation ends and Lambda freezes the container. ``CLIENT REPLY SKIP`` would
not wait either, but needs a command the ACL does not grant, and an ACL that refuses it
would leave a reply nobody reads. A cluster client (keys of one delivery live in different
slots) waits for each, through redis-py's cluster pipeline.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from wxtoken.errors import StoreError
from wxtoken.observability import logger
from wxtoken.store.base import COMPLETED, IN_PROGRESS, DedupClaim, DedupRecord, answer_data

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

_REDIS_ERRORS = (RedisError, RedisClusterException)
# redis-py's Connection: its send and read methods carry no type hints.
_Connection = Any
# How long a takeover of a stale record holds its lock (powertools' orphan lock: 10 s).
_TAKEOVER_LOCK_SECONDS = 10
# A record that vanished between SET NX and GET (it expired just then) is claimed again.
_ATTEMPTS = 3


class RedisDedupRecords:
    """:class:`~wxtoken.store.base.DedupRecords` on a ``redis.Redis`` or ``RedisCluster``."""

    def __init__(self, client: Redis | RedisCluster, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock
        # A plain client's pool lends the records a connection of their own (see the module).
        pool = getattr(client, "connection_pool", None)  # RedisCluster has one per node
        self._channel = None if pool is None else _Channel(pool)
        self._set_get = True  # until the server says it is older than Redis 7.0

    def claim(self, claims: Sequence[DedupClaim]) -> list[DedupRecord | None]:
        results: list[DedupRecord | None] = [None] * len(claims)
        pending = list(range(len(claims)))
        for _ in range(_ATTEMPTS):
            found = self._claim_once([claims[index] for index in pending])
            vanished = []
            for index, (written, stored) in zip(pending, found, strict=True):
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

    def _claim_once(self, claims: list[DedupClaim]) -> list[tuple[bool, Any]]:
        """Per claim, ``(written, the value found)``, in one round trip: ``SET … NX GET``
        (Redis 7.0+, Valkey: writes, or returns what is there, atomically), else ``SET NX``
        then ``GET`` (whose record may vanish in between).

        A value found that is byte for byte the one sent counts as written: this claim's own,
        when a connection dropped after Redis ran the command and before its reply came, and
        the exchange was sent again (an in-progress value holds its invocation's deadline in
        milliseconds; a binding's, its content's digest, which is the same claim anyway).
        """
        values = [_value(claim) for claim in claims]
        found: list[tuple[bool, Any] | None] = [None] * len(claims)
        older = list(range(len(claims)))
        if self._set_get:
            commands: list[tuple[Any, ...]] = [
                ("SET", c.key, v, "NX", *self._expiry(c), "GET") for c, v in zip(claims, values, strict=True)
            ]
            replies = self._exchange(commands, "claim", refused_ok=_older_redis)
            older = [n for n, reply in enumerate(replies) if _older_redis(reply)]
            for n, stored in enumerate(replies):
                if n not in older:
                    found[n] = (stored is None or _same(stored, values[n]), stored)
            if older:
                # An older server refused the combination and wrote nothing; in a cluster
                # being upgraded another node may have run it, so only these go again.
                self._set_get = False
        if older:
            commands = []
            for n in older:
                claim = claims[n]
                commands.append(("SET", claim.key, values[n], "NX", *self._expiry(claim)))
                commands.append(("GET", claim.key))
            replies = self._exchange(commands, "claim")
            for position, n in enumerate(older):
                written, stored = replies[2 * position], replies[2 * position + 1]
                found[n] = (bool(written) or _same(stored, values[n]), stored)
        return [entry for entry in found if entry is not None]

    def complete(self, key: str, answer: str, expires_at: int) -> None:
        command = ("SET", key, _completed(answer, expires_at), "EX", self._seconds_until(expires_at))
        if self._channel is not None:
            self._channel.send_unanswered(command)
            return
        self._exchange([command], "SET")

    def release(self, key: str) -> None:
        self._exchange([("DEL", key)], "DEL")

    def _exchange(
        self,
        commands: list[tuple[Any, ...]],
        operation: str,
        *,
        refused_ok: Callable[[Any], bool] = lambda _: False,
    ) -> list[Any]:
        """``commands``' replies, sent together and waited for: one round trip. An error reply
        is :class:`StoreError` unless ``refused_ok`` takes it (it is then the reply)."""
        if self._channel is not None:
            return self._channel.exchange(commands, operation, refused_ok)
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            # ``get``: redis-py's reply callback then hands back SET … GET's value, not a bool.
            pipe.execute_command(*command, get=command[0] == "SET" and command[-1] == "GET")
        try:
            replies = list(pipe.execute(raise_on_error=False))
        except _REDIS_ERRORS as exc:
            raise _store_error(operation, exc) from None
        return _checked(replies, operation, refused_ok)

    def _take_over(self, claim: DedupClaim) -> bool:
        """Replace a stale record (its invocation over, or unreadable) under ``<key>:lock``, so
        that of the containers seeing it at once only one runs the handler."""
        try:
            if not self._client.set(f"{claim.key}:lock", "True", ex=_TAKEOVER_LOCK_SECONDS, nx=True):
                return False
            unit, amount = self._expiry(claim)
            ex, px = (amount, None) if unit == "EX" else (None, amount)
            self._client.set(claim.key, _value(claim), ex=ex, px=px)
        except _REDIS_ERRORS as exc:
            raise _store_error("takeover", exc) from None
        # The lock is left to expire: it keeps another container from taking the record over
        # again while this one works (powertools' rule too).
        return True

    def _expiry(self, claim: DedupClaim) -> tuple[str, int]:
        """``("PX", ms)`` or ``("EX", s)``: an in-progress record is gone with its invocation
        (at least 1 ms: PX refuses 0); any other lives until its ``expires_at``."""
        if claim.answer is None and claim.in_progress_until_ms is not None:
            return "PX", max(1, claim.in_progress_until_ms - int(self._clock() * 1000))
        return "EX", self._seconds_until(claim.expires_at)

    def _seconds_until(self, expires_at: int) -> int:
        return max(1, math.ceil(expires_at - self._clock()))


class _Channel:
    """One connection of a plain client's pool, kept by the dedup records, and the number of
    replies sent for and not read yet (answers' ``SET`` s, read with the next exchange)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._connection: _Connection | None = None
        self._owed = 0
        # The socket the replies are owed on: a connection redis-py opened anew owes nothing.
        self._owed_on: Any = None
        self._lock = threading.Lock()

    def exchange(
        self, commands: list[tuple[Any, ...]], operation: str, refused_ok: Callable[[Any], bool]
    ) -> list[Any]:
        """The replies to ``commands``, after the replies owed. Sent again once on a
        connection that failed (the server closed it while the container was frozen, most
        often before the commands arrived; if they ran, a claim knows its own value)."""
        with self._lock:
            for attempt in (1, 2):
                connection = self._connect(operation)
                try:
                    # No health check: its PING would read an owed reply as its own.
                    connection.send_packed_command([_packed(commands)], check_health=False)
                    self._read_owed(connection)
                    replies = [_reply(connection) for _ in commands]
                    return _checked(replies, operation, refused_ok)
                except RedisConnectionError as exc:
                    self._reset()
                    if attempt == 2:
                        raise _store_error(operation, exc) from None
                except _REDIS_ERRORS as exc:  # a timeout: what ran is unknown, so not again
                    self._reset()
                    raise _store_error(operation, exc) from None
            raise AssertionError("unreachable")

    def send_unanswered(self, command: tuple[Any, ...]) -> None:
        """Sends ``command``; its reply is read with the next exchange."""
        with self._lock:
            for attempt in (1, 2):
                connection = self._connect("SET")
                try:
                    connection.send_packed_command([_packed([command])], check_health=False)
                except _REDIS_ERRORS as exc:
                    self._reset()
                    if attempt == 2:
                        raise _store_error("SET", exc) from None
                    continue
                if connection._sock is not self._owed_on:
                    self._owed, self._owed_on = 0, connection._sock
                self._owed += 1
                return

    def _connect(self, operation: str) -> _Connection:
        if self._connection is None:
            try:
                self._connection = self._pool.get_connection()
            except _REDIS_ERRORS as exc:
                raise _store_error(operation, exc) from None
        return self._connection

    def _read_owed(self, connection: _Connection) -> None:
        if connection._sock is not self._owed_on:
            self._owed = 0  # owed on a socket since closed: those replies went with it
        while self._owed:
            try:
                connection.read_response()
            except ResponseError as exc:
                # An answer Redis refused: a retry of that message runs its handler again.
                logger.warning("dedup answer not stored", extra={"error": type(exc).__name__})
            self._owed -= 1

    def _reset(self) -> None:
        """Forgets the connection (closed: its owed replies are lost with it) and hands it
        back to the pool, which reconnects it when lent again."""
        connection, self._connection, self._owed, self._owed_on = self._connection, None, 0, None
        if connection is not None:
            connection.disconnect()
            self._pool.release(connection)


def _packed(commands: list[tuple[Any, ...]]) -> bytes:
    """``commands`` in RESP, Redis's wire format: per command an array of bulk strings.

    Written here for a measured reason: redis-py's ``pack_commands`` took 21 µs for a claim's
    four commands, this 6.5 µs (its encoder checks every argument's type through several
    layers and joins memoryviews for large values; these are short strings and ints).
    """
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for argument in command:
            data = argument.encode() if isinstance(argument, str) else b"%d" % argument
            out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def _reply(connection: _Connection) -> Any:
    """The next reply; an error reply (a command refused) is returned, so that every reply of
    the exchange is read and the next exchange reads its own."""
    try:
        return connection.read_response()
    except ResponseError as exc:
        return exc


def _checked(replies: list[Any], operation: str, refused_ok: Callable[[Any], bool]) -> list[Any]:
    """``replies``, unless one is an error ``refused_ok`` does not take: :class:`StoreError`."""
    for reply in replies:
        if isinstance(reply, Exception) and not refused_ok(reply):
            raise _store_error(operation, reply)
    return replies


def _older_redis(reply: Any) -> bool:
    """The error of a server older than Redis 7.0 to ``SET … NX GET`` (NX and GET together)."""
    return isinstance(reply, ResponseError) and "syntax error" in str(reply).lower()


def _same(stored: Any, value: str) -> bool:
    """``stored`` (bytes, or str on a client that decodes) is ``value``."""
    return bool(stored == value or stored == value.encode())


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
