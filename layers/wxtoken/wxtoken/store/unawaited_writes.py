"""One operation of a botocore client sent without waiting for its response, which is read
before the next one is sent.

Why (issue 12, a measured reason): a first delivery of a message stores its answer for
WeChat's retries with one ``UpdateItem`` after the handler has run (:mod:`wxtoken.store.
dynamodb_dedup`). Waited for, it puts a second DynamoDB round trip between the handler and
WeChat, where the claim's is the only one the semantics need: nothing reads the answer until
a retry, and WeChat retries a callback only after 5 s without a response (被动回复用户消息:
"微信服务器在五秒内收不到响应会断掉连接，并且重新发起请求，总共重试三次"). An app on wechatpy
waits for both (``bench/dedup_roundtrip.py``: a request to DynamoDB costs about as much as
the rest of the request together). The Redis records do the same with their ``SET``
(:mod:`wxtoken.store.redis_dedup`).

How: botocore builds, signs and (on a refusal it sees) retries the request as usual, up to the
moment it would go on the wire: its ``before-send`` event, where botocore's stubs and moto
answer requests, hands it here. Its bytes are written on a connection held here, and botocore
gets a stand-in response (``200 {}``, what ``UpdateItem`` without ``ReturnValues`` returns).
HTTP/1.1 answers in order on a connection, so the real response is read before the next
request is written on it, or sooner, at the next claim, if it has come (:meth:`poll`); a
refusal is reported then, through ``on_failure``. A server that ends each connection with
its response (moto does; DynamoDB keeps them) gets the next connection opened while the
response is owed. The bytes
leave in the ``send`` (``TCP_NODELAY``), before the invocation returns and Lambda freezes the
container.

Handed over only when that is safe, else botocore sends it and waits, as before:

- the connection is open and idle. It opens on a worker thread, off the request's path (a
  TLS handshake is two round trips more than the write itself), from a container's second
  write on: the first is in the cold start, where the connection's set-up would compete for
  the CPU (loading the CA bundle alone took 29–35 ms here). A write while it is opening, and
  the first after the server closed an idle connection, go through botocore;
- no proxy applies to the endpoint (the client's ``proxies`` or the environment's, as
  botocore reads them): tunnelling is botocore's job;
- the body is bytes. A write whose sending failed goes through botocore: it sets the same
  values again, so twice is harmless.

A write whose response never came (the connection broke, or no answer within the read
timeout), or that was refused for a reason botocore retries (throttling, a 5xx), is sent
again through botocore, waited for, once it is found out: after the next write, or with the
next claim. A connection idle for more than :data:`MAX_IDLE_SECONDS` is not written on (a
NAT or the server may have dropped it without a word).

Given up: a write refused for good is logged with the next one, not in the invocation that
sent it, and a write sent again is sent from a later invocation. The answer is returned either way,
as it was when the write failed before; its record stays in progress until it expires, and a
retry meanwhile is answered ``success``. Under moto's in-process ``mock_aws`` every
``before-send`` handler runs and moto's answer, registered first, is the one botocore takes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse
from urllib3.util.wait import wait_for_read

from wxtoken.errors import StoreError

_Origin = tuple[str, str, int]  # scheme, host, port
# A connection idle longer is not written on (the write goes through botocore, and another
# opens): a server or a NAT may have dropped it silently (NAT gateways after 350 s), and a
# write on it would be lost; what ``_closed`` sees is only a close that has arrived.
MAX_IDLE_SECONDS = 30.0
OPEN_RETRY_SECONDS = 60.0
# Refusals botocore retries (its standard mode's throttling codes that DynamoDB sends).
_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
    }
)
# What UpdateItem (or PutItem, DeleteItem) answers without ReturnValues: an empty object.
_STAND_IN_BODY = b"{}"


class UnawaitedWrites:
    """Sends ``client``'s ``operation`` calls made through :meth:`send` without waiting for
    their responses (see the module). ``executor`` gives the threads a connection opens on;
    ``on_failure`` gets the error code of a write refused, or the exception's type name of
    one whose response was lost, when that is found out."""

    def __init__(
        self,
        client: Any,
        operation: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        executor: Callable[[], ThreadPoolExecutor],
        on_failure: Callable[[str], None],
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._executor = executor
        self._on_failure = on_failure
        self._client_proxies = bool(client.meta.config.proxies)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._origin: _Origin | None = None
        self._opening: tuple[_Origin, Future[http.client.HTTPConnection]] | None = None
        self._unread = False  # a response owed on the connection
        self._tls: ssl.SSLContext | None = None
        self._first_seen = False  # the container's first write, in its cold start
        self._answered_on_it = False  # a response was read on the connection (see poll)
        self._url: str | None = None  # the last write's, to open the next connection for
        # The server ended the connection with its last response (moto does; DynamoDB keeps
        # them): the next connection opens as soon as a write is owed.
        self._ends_each = False
        self._last_used = 0.0  # wall clock: a frozen container's monotonic clock stands still
        self._open_failed_at = 0.0
        self._owed_call: Callable[[], Any] | None = None  # the owed write, to send it again
        self._to_resend: Callable[[], Any] | None = None
        service = client.meta.service_model.service_id.hyphenize()
        # Last: a stub registered before (moto's) answers first.
        client.meta.events.register_last(f"before-send.{service}.{operation}", self._hand_over)

    def wait_ready(self, timeout: float) -> bool:
        """Whether a connection is open to hand writes over, after waiting up to ``timeout``
        seconds for the one opening (for tests and benchmarks: a write never waits)."""
        with self._lock:
            opening = self._opening
        if opening is not None:
            with contextlib.suppress(Exception):
                opening[1].result(timeout)
        with self._lock:
            return self._connection is not None or (
                self._opening is not None and self._opening[1].done() and self._opening[1].exception() is None
            )

    def send(self, call: Callable[[], Any]) -> Any:
        """``call()``, a call of the operation on the client; its request goes out unawaited
        when it can (botocore then returns the stand-in response). A previous write found
        lost or refused for a reason botocore would have retried is sent again after it."""
        self._local.unawaited, self._local.call = True, call
        try:
            return call()
        finally:
            self._local.unawaited, self._local.call = False, None
            self._resend()

    def close(self) -> None:
        """Reads the response owed, if any, and closes the connection; none opens after."""
        with self._lock:
            self._url = None  # first: reading the response would open the next connection
            self._read_owed()
            self._close()
        self._resend()

    def poll(self) -> None:
        """Reads the response owed if it has come, and never waits for one: a refusal is
        reported sooner, and when the server ends the connection with it the next opens before
        the next write. Called with each claim. Not on a TLS connection's first response: a
        session ticket makes the socket readable before it. A response only partly there is
        waited for (a few hundred bytes: it comes in one segment)."""
        if not self._unread:
            return
        with self._lock:
            connection = self._connection
            if not self._unread or connection is None or connection.sock is None:
                return
            if isinstance(connection.sock, ssl.SSLSocket) and not self._answered_on_it:
                return
            try:
                readable = wait_for_read(connection.sock, timeout=0)
            except OSError:
                return  # left for the next write, which reads it whatever happens
            if readable:
                self._read_owed()
        self._resend()

    # --- botocore's before-send -------------------------------------------------------------
    def _hand_over(self, request: Any, **_: Any) -> AWSResponse | None:
        if not getattr(self._local, "unawaited", False) or not isinstance(request.body, bytes):
            return None
        with self._lock:
            self._read_owed()
            connection = self._idle_connection(request.url)
            if connection is None:
                return None
            parts = urlsplit(request.url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            try:
                connection.request(request.method, target, body=request.body, headers=dict(request.headers))
            except (OSError, http.client.HTTPException):
                self._close()
                return None  # botocore sends it again, whole
            self._unread, self._url, self._last_used = True, request.url, time.time()
            self._owed_call = getattr(self._local, "call", None)
            if self._ends_each:  # the next write's connection opens while this one is owed
                self._start_opening(request.url)
        return AWSResponse(request.url, 200, {}, _Body(_STAND_IN_BODY))

    # --- the connection ---------------------------------------------------------------------
    def _read_owed(self) -> None:
        """Reads the last write's response; reports it when it is not a success. When the
        connection ends with it, the next one starts opening, for the next write."""
        if not self._unread or self._connection is None:
            return
        self._unread = False
        try:
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            # No answer: whether it was written is unknown, and botocore would send it again.
            self._close()
            self._to_resend, self._owed_call = self._owed_call, None
        else:
            self._answered_on_it, self._last_used = True, time.time()
            code = _error_code(body) if response.status >= 300 else None
            if response.status >= 500 or code in _RETRYABLE:
                self._to_resend = self._owed_call  # as botocore's retries would
            elif response.status >= 300:
                self._on_failure(code or f"HTTP{response.status}")
            self._owed_call = None
            self._ends_each = response.will_close
            if response.will_close:
                self._close()
        if self._connection is None and self._url is not None:
            self._start_opening(self._url)

    def _resend(self) -> None:
        """Sends the write found lost or refused again, through botocore, waiting for it (its
        retries apply), outside the lock and the hand-over: once, then it is reported."""
        with self._lock:
            call, self._to_resend = self._to_resend, None
        if call is None:
            return
        unawaited, self._local.unawaited = getattr(self._local, "unawaited", False), False
        try:
            call()
        except Exception as exc:  # reported, never raised into another delivery
            self._on_failure(str(exc) if isinstance(exc, StoreError) else type(exc).__name__)
        finally:
            self._local.unawaited = unawaited

    def _idle_connection(self, url: str) -> http.client.HTTPConnection | None:
        """The open connection to ``url``'s origin, or ``None`` (then one is opening)."""
        origin = _origin(url)
        if self._connection is not None and (
            origin != self._origin
            or time.time() - self._last_used > MAX_IDLE_SECONDS
            or _closed(self._connection)
        ):
            self._close()
        if self._connection is None:
            self._take_opened(origin)
        if self._connection is not None:
            return self._connection
        if not self._first_seen:
            self._first_seen = True
            return None
        self._start_opening(url)
        return None

    def _take_opened(self, origin: _Origin) -> None:
        """The connection opened on the worker thread, if it is there, for ``origin``, and open."""
        if self._opening is None or not self._opening[1].done():
            return
        opened_for, opening = self._opening
        self._opening = None
        if opening.exception() is not None:
            self._open_failed_at = time.time()
            return
        connection = opening.result()
        if opened_for != origin or _closed(connection):
            connection.close()
            return
        self._connection, self._origin, self._answered_on_it = connection, origin, False
        self._last_used = time.time()

    def _start_opening(self, url: str) -> None:
        """Opens a connection on a worker thread, unless one is opening, or one failed to open
        in the last minute (a CA bundle botocore has and this code does not find, say)."""
        origin = _origin(url)
        if time.time() - self._open_failed_at < OPEN_RETRY_SECONDS:
            return
        if self._opening is None and origin[0] in ("http", "https") and self._direct(url):
            self._opening = (origin, self._executor().submit(self._open, origin))

    def _open(self, origin: _Origin) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=self._tls_context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        try:
            connection.connect()
            sock = connection.sock
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._read_timeout)
        except BaseException:
            connection.close()
            raise
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        """Verifies against the bundle botocore would: ``AWS_CA_BUNDLE``, then
        ``REQUESTS_CA_BUNDLE``, then certifi's (botocore's ``ca_bundle`` and its endpoint's
        ``verify``). A bundle that differs only costs the handing over: a handshake that fails
        leaves every write to botocore."""
        if self._tls is None:
            from botocore.httpsession import where

            bundle = os.environ.get("AWS_CA_BUNDLE") or os.environ.get("REQUESTS_CA_BUNDLE") or where()
            if os.path.isdir(bundle):
                self._tls = ssl.create_default_context(capath=bundle)
            else:
                self._tls = ssl.create_default_context(cafile=bundle)
        return self._tls

    def _direct(self, url: str) -> bool:
        from botocore.utils import get_environ_proxies

        return not self._client_proxies and not get_environ_proxies(url)

    def _close(self) -> None:
        connection, self._connection, self._origin, self._unread = self._connection, None, None, False
        if connection is not None:
            connection.close()


def _origin(url: str) -> _Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80)


def _closed(connection: http.client.HTTPConnection) -> bool:
    """Whether the server closed ``connection`` (DynamoDB closes idle ones), or sent what
    nobody asked for. A TLS 1.3 session ticket makes the socket readable with nothing to read,
    so this reads (without waiting) rather than asks whether the socket is readable, as
    urllib3's ``wait_for_read`` would."""
    sock = connection.sock
    if sock is None:
        return True
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        sock.recv(1)  # b"" (the end) or data nobody asked for: unusable either way
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return True


def _error_code(body: bytes) -> str | None:
    """DynamoDB's error code (``__type``'s last part) of an error response's JSON body."""
    try:
        kind = json.loads(body).get("__type")
    except (ValueError, AttributeError):
        return None
    return kind.rpartition("#")[2] or None if isinstance(kind, str) else None


class _Body:
    """The raw body botocore's :class:`AWSResponse` reads, from bytes."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content
