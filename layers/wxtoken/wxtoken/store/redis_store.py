"""Token store on Redis (ElastiCache, standalone or cluster mode) through redis-py.

Every key of one app shares a Redis Cluster hash slot: ``wxtoken:{<appid>}:<name>``, the
braces being a literal hash tag, so ElastiCache Serverless (always cluster mode) can run
the write script and the lease on one node. Records are the JSON of :mod:`.base`.

* ``write_if_newer`` is one Lua script, so the compare and the ``SET`` are atomic.
* ``lease`` is redis-py's own :class:`redis.lock.Lock` (``SET NX PX`` to take it, a
  token-checked Lua script to release it), so it expires by itself if its holder dies.
* Every redis-py exception becomes :class:`~wxtoken.errors.StoreError` naming only the
  operation and the error class: a Redis URL can hold a password, and a traceback prints
  the chained exception, so the original is never chained (``from None``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Self

from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from wxtoken.budget import TOKEN_STORE
from wxtoken.errors import LeaseBusyError, StoreError
from wxtoken.store.base import DedupBackend, RecordName, decode, encode

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

logger = logging.getLogger(__name__)

KEY_PREFIX = "wxtoken"
# Every dedup key starts with this (``wxtoken-dedup#<hash>``, and ``…:lock``), so the webhook's
# Redis user may write these keys and only read ``wxtoken:*`` (template.yaml, WebhookRedisUser).
DEDUP_KEY_PREFIX = "wxtoken-dedup"


def _set_with_ttl(ttl_arg: str) -> str:
    """The end of both write scripts: ``SET`` KEYS[1] to ARGV[1], with ``PX`` unless the TTL
    argument is "0" (no expiry), and return 1."""
    return f"""
local ttl = tonumber({ttl_arg})
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


# KEYS[1] the record; ARGV[1] its JSON; ARGV[2] its fetched_at; ARGV[3] TTL in ms, "0" = none.
# A stored record that is not JSON (or has no fetched_at) is replaced: it can never be
# read anyway, and keeping it would block every later write.
_WRITE_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' then
    local stored_at = tonumber(stored['fetched_at'])
    -- NaN and infinities (a damaged record) never block a write
    local finite = stored_at and stored_at == stored_at and stored_at > -math.huge and stored_at < math.huge
    if finite and stored_at >= tonumber(ARGV[2]) then
      return 0
    end
  end
end
""" + _set_with_ttl("ARGV[3]")

# KEYS[1] the record; ARGV[1] its JSON; ARGV[2] TTL in ms, "0" = none; ARGV[3] "1" when a
# record is expected, and ARGV[4] the exact value expected. Compare-and-set on the bytes.
_REPLACE = """
local current = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if current ~= ARGV[4] then
    return 0
  end
elseif current then
  return 0
end
""" + _set_with_ttl("ARGV[2]")

_ERROR_CODE = re.compile(r"[A-Z]{3,}")

# RedisClusterException is not a RedisError (e.g. "Cluster mode is not enabled on this node").
_REDIS_ERRORS = (RedisError, RedisClusterException)


def record_key(appid: str, name: RecordName | str) -> str:
    """``wxtoken:{appid}:name``: the braces make every key of one app share a cluster slot."""
    return f"{KEY_PREFIX}:{{{appid}}}:{name}"


def lease_key(appid: str) -> str:
    return record_key(appid, "lease")


def _store_error(operation: str, exc: Exception) -> StoreError:
    """A message with the error class and, for a server error, its code (``OOM``, ``NOAUTH``).

    Never ``str(exc)``: connection errors name the host, and nothing guarantees that a
    server error does not echo an argument.
    """
    kind = type(exc).__name__
    if isinstance(exc, ResponseError) and exc.args:
        first = str(exc.args[0]).split(" ", 1)[0]
        if _ERROR_CODE.fullmatch(first):
            kind = f"{kind} {first}"
    return StoreError(f"Redis {operation} failed: {kind}")


class RedisTokenStore:
    """The :class:`~wxtoken.store.base.TokenStore` on Redis.

    ``client`` is a ``redis.Redis`` or ``redis.cluster.RedisCluster``; build one with
    :meth:`from_url` to get the short timeouts a Lambda needs.
    """

    def __init__(self, client: Redis | RedisCluster) -> None:
        self.client = client
        try:
            # register_script only hashes the source; EVALSHA loads it on first use.
            self._write_script = client.register_script(_WRITE_IF_NEWER)
            self._replace_script = client.register_script(_REPLACE)
        except _REDIS_ERRORS as exc:
            raise _store_error("SCRIPT", exc) from None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        username: str | None = None,
        password: str | None = None,
        socket_timeout: float = TOKEN_STORE.read_timeout,
        connect_timeout: float = TOKEN_STORE.connect_timeout,
    ) -> Self:
        """A store on a new client for ``url`` (``redis://`` or ``rediss://``).

        Timeouts are short because the webhook answers WeChat within 5 s
        (:data:`wxtoken.budget.TOKEN_STORE`): one retry on a connection error or timeout (a
        Lambda thawed after minutes finds its pooled connection closed by the server), then
        :class:`StoreError`, in about 1.5 s against a Redis that never answers (the timeouts of
        the budget's token store; its third attempt is for SSM's throttling). A password
        in the URL wins over ``password``. A plain client connects at its first command; a
        ``RedisCluster`` connects at once to learn the slots (StoreError if it cannot).
        """
        retry = Retry(
            ExponentialBackoff(cap=0.2, base=0.05),
            retries=1,
            supported_errors=(RedisConnectionError, RedisTimeoutError, TimeoutError),
        )
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            # No health-check PING: the retry above already reconnects a connection the
            # server closed, and redis-py runs the PING under a retry of its own inside the
            # connect retry, so a Redis that accepts and never answers cost four socket
            # timeouts instead of two (8.6 s with the old 2 s timeout).
            "retry": retry,
        }
        if username is not None:
            options["username"] = username
        if password is not None:
            options["password"] = password
        client: Redis | RedisCluster
        try:
            if cluster:
                from redis.cluster import RedisCluster

                client = RedisCluster.from_url(url, **options)
            else:
                from redis import BlockingConnectionPool, Redis

                # Blocking: a burst of threads (apps refreshed in parallel, a busy reader)
                # waits for a pooled connection instead of failing with MaxConnectionsError.
                pool = BlockingConnectionPool.from_url(
                    url, max_connections=32, timeout=connect_timeout + socket_timeout, **options
                )
                client = Redis(connection_pool=pool)
        except _REDIS_ERRORS as exc:  # RedisCluster connects at construction to learn the slots
            raise _store_error("connect", exc) from None
        except ValueError:
            raise StoreError("REDIS_URL is not a valid redis:// or rediss:// URL") from None
        return cls(client)

    def read(self, appid: str, name: RecordName) -> dict[str, Any] | None:
        raw = self.read_raw(appid, name)
        return None if raw is None else decode(raw, f"{name} record")

    def read_raw(self, appid: str, name: RecordName) -> str | None:
        try:
            raw = self.client.get(record_key(appid, name))
        except _REDIS_ERRORS as exc:
            raise _store_error("GET", exc) from None
        if raw is None:
            return None
        # Bytes that are not UTF-8 are a damaged record; keep them comparable all the same.
        return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)

    def replace(
        self,
        appid: str,
        name: RecordName,
        record: dict[str, Any],
        ttl_seconds: float | None,
        *,
        expected: str | None,
    ) -> bool:
        """Atomically ``SET`` the record if the stored bytes are still ``expected`` (one script)."""
        ttl_ms = 0 if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        expected_arg = b"" if expected is None else expected.encode("utf-8", "surrogateescape")
        try:
            written = self._replace_script(
                keys=[record_key(appid, name)],
                args=[encode(record), ttl_ms, "0" if expected is None else "1", expected_arg],
            )
        except _REDIS_ERRORS as exc:
            raise _store_error("replace script", exc) from None
        return bool(written)

    def write_if_newer(
        self, appid: str, name: RecordName, record: dict[str, Any], ttl_seconds: float | None
    ) -> bool:
        """Atomically ``SET`` the record unless the stored one is at least as new.

        ``ttl_seconds`` becomes ``PX`` (at least 1 ms, so an already-expired record still
        replaces the old one and vanishes); ``None`` keeps the record until replaced.
        """
        fetched_at = float(record["fetched_at"])
        if not math.isfinite(fetched_at):
            raise ValueError("record fetched_at must be a finite number of unix seconds")
        ttl_ms = 0 if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        try:
            written = self._write_script(
                keys=[record_key(appid, name)],
                args=[encode(record), repr(fetched_at), ttl_ms],
            )
        except _REDIS_ERRORS as exc:
            raise _store_error("write script", exc) from None
        return bool(written)

    def platform_store(self) -> None:
        """Open Platform needs a store that indexes its records (TOKEN_STORE=dynamodb)."""
        return None

    def dedup_backend(self) -> DedupBackend:
        """The webhook's dedup records on this store's client (one pool, one AUTH per
        container), keys prefixed :data:`DEDUP_KEY_PREFIX`."""
        from wxtoken.store.redis_dedup import RedisDedupRecords

        return DedupBackend(RedisDedupRecords(self.client), key_prefix=DEDUP_KEY_PREFIX)

    def lease(self, appid: str, ttl_seconds: float) -> AbstractContextManager[None]:
        """Hold ``wxtoken:{appid}:lease`` for the ``with`` block, or raise LeaseBusyError.

        Releasing checks the random token, so a holder that overran ``ttl_seconds`` never
        deletes the lease someone else has taken since; it logs a warning instead. A
        release that cannot reach Redis is also only logged: the block's work is done and
        the lease expires by itself.
        """
        if ttl_seconds <= 0:
            raise ValueError("lease ttl_seconds must be positive")
        return self._lease(appid, ttl_seconds)

    @contextmanager
    def _lease(self, appid: str, ttl_seconds: float) -> Iterator[None]:
        lock = self.client.lock(lease_key(appid), timeout=ttl_seconds, blocking=False)
        try:
            acquired = lock.acquire()
        except _REDIS_ERRORS as exc:
            raise _store_error("lease acquire", exc) from None
        if not acquired:
            raise LeaseBusyError(f"the refresh lease of {appid} is held by another process")
        try:
            yield
        finally:
            try:
                lock.release()
            except LockNotOwnedError:
                logger.warning(
                    "refresh lease expired before release; another process may hold it now",
                    extra={"appid": appid, "lease_seconds": ttl_seconds},
                )
            except _REDIS_ERRORS as exc:
                logger.warning(
                    "could not release the refresh lease; it expires by itself",
                    extra={"appid": appid, "error": type(exc).__name__},
                )
