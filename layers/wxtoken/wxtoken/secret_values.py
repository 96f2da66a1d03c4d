"""Secrets Manager reads: the apps secret, the Redis AUTH secret, the egress proxy.

Read with the timeouts of :data:`wxtoken.budget.SECRET`, not boto3's 60 s: the webhook may
read one on a cold start, and a dead Secrets Manager must fail within WeChat's 5 s. Errors
name the secret's purpose and AWS's error code, never the value.

One ``GetSecretValue`` on a client of the caller's boto3 Session, not powertools'
``SecretsProvider`` (issue 12): on a cold start the provider's import and set-up cost about
9 ms on top of the client itself (47–53 ms against 37–40 ms for the client alone, 5 fresh
processes each, 2026-12-06), on every cold webhook request and refresh run, and its one
feature used here, a ``max_age`` cache of one value, is the few lines of
:class:`SecretString`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from wxtoken.budget import SECRET
from wxtoken.errors import WxTokenError


class SecretReadError(Exception):
    """Secrets Manager did not give the value; ``reason`` is AWS's error code (or the
    exception's type name), never anything from the secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SecretString:
    """A secret's ``SecretString``, fetched again at most every ``max_age`` seconds
    (0: on every call). Thread-safe: a burst of cold callers makes one client and one read."""

    def __init__(
        self,
        secret_id: str,
        *,
        max_age: float,
        boto3_session: Any = None,
        # Wall time, as powertools' cache kept: a frozen Lambda sandbox's monotonic clock may
        # not advance while it is frozen, and a rotated secret must take effect within max_age.
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret_id = secret_id
        self._max_age = max_age
        self._session = boto3_session
        self._clock = clock
        self._client: Any = None
        self._cached: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def get(self) -> str:
        """The value; :class:`SecretReadError` if Secrets Manager does not give it."""
        cached = self._cached
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() < cached[0]:
                return cached[1]
            value = self._fetch()
            if self._max_age > 0:
                self._cached = (self._clock() + self._max_age, value)
            return value

    def _fetch(self) -> str:
        from botocore.exceptions import ClientError

        try:
            if self._client is None:
                import boto3

                session = self._session or boto3  # boto3's default Session when none is given
                self._client = session.client("secretsmanager", config=SECRET.botocore_config())
            answer = self._client.get_secret_value(SecretId=self.secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc.response, dict) else None
            raise SecretReadError(str(code or type(exc).__name__)) from None
        except Exception as exc:  # BotoCoreError; or, say, botocore's ValueError for a bad endpoint URL
            raise SecretReadError(type(exc).__name__) from None
        # A binary secret (SecretBinary) is read as UTF-8 text, as the provider gave it.
        value = answer.get("SecretString")
        if value is None:
            binary = answer.get("SecretBinary")
            if not isinstance(binary, bytes):
                raise SecretReadError("NoSecretValue")
            try:
                value = binary.decode()
            except UnicodeDecodeError:
                raise SecretReadError("SecretBinaryNotText") from None
        return str(value)


def read_secret_string(
    secret_id: str, *, what: str, error: type[WxTokenError], boto3_session: Any = None
) -> str:
    """The secret's SecretString; ``error("could not read the <what> (<AWS code>)")`` if not.

    Read afresh: this runs once per client built, and the value stays out of module state.
    """
    try:
        return SecretString(secret_id, max_age=0, boto3_session=boto3_session).get()
    except SecretReadError as exc:
        raise error(f"could not read the {what} ({exc.reason})") from None
