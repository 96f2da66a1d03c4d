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
request is written on it; a refusal is reported then, through ``on_failure``. The bytes
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

Given up: a refused write (throttled, say) is logged with the next one, not in the invocation
that sent it, and botocore's retries do not apply to it. The answer is returned either way,
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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse

_Origin = tuple[str, str, int]  # scheme, host, port
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
        when it can (botocore then returns the stand-in response)."""
        self._local.unawaited = True
        try:
            return call()
        finally:
            self._local.unawaited = False

    def close(self) -> None:
        """Reads the response owed, if any, and closes the connection."""
        with self._lock:
            self._read_owed()
            self._close()

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
            self._unread = True
        return AWSResponse(request.url, 200, {}, _Body(_STAND_IN_BODY))

    # --- the connection ---------------------------------------------------------------------
    def _read_owed(self) -> None:
        """Reads the last write's response; reports it when it is not a success."""
        if not self._unread or self._connection is None:
            return
        self._unread = False
        try:
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            self._on_failure(type(exc).__name__)  # sent, and whether it was written is unknown
            return
        if response.status >= 300:
            self._on_failure(_error_code(body) or f"HTTP{response.status}")
        if response.will_close:
            self._close()

    def _idle_connection(self, url: str) -> http.client.HTTPConnection | None:
        """The open connection to ``url``'s origin, or ``None`` (then one is opening)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        origin = (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
        if self._connection is not None and (origin != self._origin or _closed(self._connection)):
            self._close()
        if self._connection is not None:
            return self._connection
        if self._opening is not None and self._opening[1].done():
            opened_for, opening = self._opening
            self._opening = None
            if opening.exception() is None and opened_for == origin:
                self._connection, self._origin = opening.result(), origin
                if not _closed(self._connection):
                    return self._connection
                self._close()
        if not self._first_seen:
            self._first_seen = True
            return None
        if self._opening is None and self._direct(url) and scheme in ("http", "https"):
            self._opening = (origin, self._executor().submit(self._open, origin))
        return None

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
