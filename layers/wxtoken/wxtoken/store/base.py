"""What every token store does, whatever it keeps the records in.

A record is a small JSON object, identical in every backend so that readers in any
language can use it. Keys are ``(appid, name)`` where ``name`` is one of
:class:`RecordName`. Backends keep their quirks (SSM SecureString, Redis TTL and Lua)
inside their own module; code outside ``wxtoken.store`` never names a backend.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

from wxtoken.errors import StoreError


class RecordName(StrEnum):
    """The records kept per app; the value is the last path / key segment."""

    ACCESS_TOKEN = "access_token"
    JSAPI_TICKET = "jsapi_ticket"
    FORCE_REFRESH_QUOTA = "force_refresh_quota"


@dataclass(frozen=True, slots=True)
class Credential:
    """An access token or a jsapi ticket, as stored.

    ``expires_at`` is whole unix seconds; ``fetched_at`` keeps milliseconds so that two
    refreshes in the same second still order correctly (rule: never replace a newer
    record with an older one).
    """

    value: str
    expires_at: int
    fetched_at: float

    def seconds_left(self, now: float) -> float:
        return self.expires_at - now

    def to_record(self, name: RecordName) -> dict[str, Any]:
        field = "ticket" if name is RecordName.JSAPI_TICKET else "access_token"
        return {field: self.value, "expires_at": self.expires_at, "fetched_at": self.fetched_at}

    @classmethod
    def from_record(cls, name: RecordName, record: dict[str, Any]) -> Credential:
        field = "ticket" if name is RecordName.JSAPI_TICKET else "access_token"
        try:
            return cls(
                value=str(record[field]),
                expires_at=int(record["expires_at"]),
                fetched_at=float(record["fetched_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"stored {name} record is malformed (missing or bad {exc})") from None


@dataclass(frozen=True, slots=True)
class ForceQuota:
    """How many forced refreshes this app used on ``day`` (WeChat's day, UTC+8)."""

    day: str
    count: int
    last_at: float
    fetched_at: float  # write-ordering field shared with every record

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ForceQuota:
        try:
            return cls(
                day=str(record["day"]),
                count=int(record["count"]),
                last_at=float(record["last_at"]),
                fetched_at=float(record["fetched_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"stored force-refresh quota is malformed ({exc})") from None


def encode(record: dict[str, Any]) -> str:
    """The one JSON spelling both backends store (compact, stable key order)."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def decode(raw: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StoreError(f"stored {what} is not JSON") from None
    if not isinstance(value, dict):
        raise StoreError(f"stored {what} is not a JSON object")
    return value


class TokenStore(Protocol):
    """Where the refresher writes and every reader reads.

    All methods raise :class:`~wxtoken.errors.StoreError` (never a backend exception) when
    the backend cannot be reached; callers then keep whatever was stored before.
    """

    def read(self, appid: str, name: RecordName) -> dict[str, Any] | None:
        """The record, or ``None`` when there is none (or it has expired from the store)."""
        ...

    def write_if_newer(
        self, appid: str, name: RecordName, record: dict[str, Any], ttl_seconds: float | None
    ) -> bool:
        """Store ``record`` unless the stored one has a ``fetched_at`` at least as new.

        Returns whether it was written. ``ttl_seconds`` lets a backend with expiry drop
        the record when it is no longer valid; backends without expiry ignore it.
        """
        ...

    def lease(self, appid: str, ttl_seconds: float) -> AbstractContextManager[None]:
        """Hold this app's refresh lease for the ``with`` block.

        Raises :class:`~wxtoken.errors.LeaseBusyError` at once (no waiting) when someone
        else holds it. A holder that dies loses the lease after ``ttl_seconds``.
        """
        ...
