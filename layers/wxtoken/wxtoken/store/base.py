"""What every token store does, whatever it keeps the records in.

A record is a small JSON object, identical in every backend so that readers in any
language can use it. Keys are ``(appid, name)`` where ``name`` is one of
:class:`RecordName`. Backends keep their quirks (SSM SecureString, Redis TTL and Lua)
inside their own module; code outside ``wxtoken.store`` never names a backend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Any, ClassVar, Protocol, Self

from wxtoken.errors import DamagedRecordError
from wxtoken.frozen import Frozen


class RecordName(StrEnum):
    """The records kept per app; the value is the last path / key segment."""

    ACCESS_TOKEN = "access_token"
    JSAPI_TICKET = "jsapi_ticket"
    FORCE_REFRESH_QUOTA = "force_refresh_quota"
    # Written before every call that may retire the stored token; see MintIntent.
    MINT_INTENT = "mint_intent"
    # Open Platform (third-party platform), under the component appid: the ticket WeChat
    # pushes every 10 minutes (written by the webhook), the component token (by the refresher)
    # and its mint intent, the last authorizer import, the last api_start_push_ticket.
    COMPONENT_VERIFY_TICKET = "component_verify_ticket"
    COMPONENT_ACCESS_TOKEN = "component_access_token"
    COMPONENT_MINT_INTENT = "component_mint_intent"
    AUTHORIZER_IMPORT = "authorizer_import"
    PUSH_TICKET_RESTART = "push_ticket_restart"
    # Under an authorizer's appid: its refresh token (durable, never served: see
    # AuthorizerGrant), its refresh schedule, and the last authorization event the webhook
    # received for it (authorized / updateauthorized / unauthorized), until the refresher
    # has acted on it. Its access token and jsapi ticket use the app records above.
    AUTHORIZER_REFRESH_TOKEN = "authorizer_refresh_token"
    REFRESH_SCHEDULE = "refresh_schedule"
    AUTHORIZATION_EVENT = "authorization_event"


# The records a credential's value is kept under: a ticket's field is "ticket", a token's
# "access_token" (the stored JSON is the contract every reader parses).
_TICKET_RECORDS = frozenset({RecordName.JSAPI_TICKET, RecordName.COMPONENT_VERIFY_TICKET})


def value_field(name: RecordName) -> str:
    """The JSON field holding a credential's value in record ``name``."""
    return "ticket" if name in _TICKET_RECORDS else "access_token"


# How far ahead of a reader's clock a stored time may be before the record counts as damaged:
# a day of clock skew (far more than any real one) plus a token's 7200 s lifetime.
PLAUSIBLE_AHEAD_SECONDS = 86400 + 7200


class Credential(Frozen):
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

    def plausible(self, now: float) -> bool:
        """False for times no clock skew explains (a hand edit: a token "valid until 2286"):
        WeChat's credentials live 7200 s, and containers' clocks differ by minutes, not a day."""
        return (
            self.fetched_at <= now + PLAUSIBLE_AHEAD_SECONDS
            and self.expires_at <= now + PLAUSIBLE_AHEAD_SECONDS
        )

    def to_record(self, name: RecordName) -> dict[str, Any]:
        field = value_field(name)
        return {field: self.value, "expires_at": self.expires_at, "fetched_at": self.fetched_at}

    @classmethod
    def from_record(cls, name: RecordName, record: dict[str, Any]) -> Credential:
        """The credential in ``record``; :class:`DamagedRecordError` when it is not one.

        A value that is not a non-empty string, or times that are not finite numbers (a hand
        edit, ``Infinity``, a truncated write), make the record damaged: it must never be
        handed out, nor block the write that replaces it.
        """
        field = value_field(name)

        def build() -> Credential:
            value = record[field]
            if not isinstance(value, str) or not value:
                raise ValueError(f"bad {field}")
            return cls(
                value=value,
                expires_at=int(_finite(record["expires_at"])),
                fetched_at=_finite(record["fetched_at"]),
            )

        return _parsed(f"{name} record", build)


def _parsed[R](what: str, build: Callable[[], R]) -> R:
    """``build()``, reading a stored record's fields; a missing key or a bad value (a hand
    edit, a truncated write, another version's shape) is :class:`DamagedRecordError`."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise DamagedRecordError(f"stored {what} is damaged ({exc})") from None


def _finite(value: Any) -> float:
    """A JSON number as a finite float; ``ValueError`` for anything else (``"1"``, ``true``, inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


class _FlatRecord:
    """A record stored as its fields, each read back through its parser in ``_FIELDS``."""

    __slots__ = ()
    _WHAT: ClassVar[str]
    _FIELDS: ClassVar[Mapping[str, Callable[[Any], Any]]]

    def to_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._FIELDS}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        fields = cls._FIELDS
        return _parsed(cls._WHAT, lambda: cls(**{name: read(record[name]) for name, read in fields.items()}))


class MintIntent(Frozen, _FlatRecord):
    """Written (under the lease) just before a call that may retire the stored token.

    WeChat retires the stored token 5 minutes after any new one is minted, and a mint whose
    answer is lost (a 5xx after processing, a read timeout, the store write failing, the
    process dying) leaves a record that still shows hours to live. The intent is the trace
    such a mint leaves: it is *settled* when WeChat certainly minted nothing, and *resolved*
    when a token fetched after it is stored. An intent neither settled nor resolved makes
    the stored token suspect, and the next run (the guard, every minute) replaces it inside
    WeChat's 5-minute grace.
    """

    _WHAT: ClassVar[str] = "mint intent"
    _FIELDS: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "asked_at": _finite,
        "settled": bool,
        "fetched_at": _finite,
    }

    asked_at: float
    settled: bool
    fetched_at: float  # write-ordering field shared with every record

    def leaves_suspect(self, stored: Credential | None) -> bool:
        """Whether this intent makes ``stored`` suspect: unsettled, and nothing stored since."""
        return not self.settled and (stored is None or stored.fetched_at <= self.asked_at)


class ForceQuota(Frozen, _FlatRecord):
    """How many forced refreshes this app used on ``day`` (WeChat's day, UTC+8)."""

    _WHAT: ClassVar[str] = "force-refresh quota"
    _FIELDS: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "day": str,
        "count": int,
        "last_at": float,
        "fetched_at": float,
    }

    day: str
    count: int
    last_at: float
    fetched_at: float  # write-ordering field shared with every record


def encode(record: dict[str, Any]) -> str:
    """The one JSON spelling both backends store (compact, stable key order)."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def decode(raw: str | bytes, what: str) -> dict[str, Any]:
    """A stored record's JSON object; :class:`DamagedRecordError` for anything else."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DamagedRecordError(f"stored {what} is not JSON") from None
    if not isinstance(value, dict):
        raise DamagedRecordError(f"stored {what} is not a JSON object")
    return value


# --- the webhook's dedup records ----------------------------------------------------------
# Stored as powertools Idempotency stored them (wxtoken's dedup ran on it until issue 12), so
# containers of either version read each other's records during a deploy: a status, the
# record's expiry (unix seconds), an in-progress record's deadline (unix milliseconds) and a
# completed one's answer as the JSON ``{"answer": …}``.
IN_PROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"


def answer_data(answer: str) -> str:
    """A completed record's ``data``: the JSON powertools wrote for ``{"answer": answer}``."""
    return json.dumps({"answer": answer}, sort_keys=True)


class DedupRecord(Frozen):
    """A live dedup record as stored: ``answer`` is ``None`` while the first delivery is in
    progress; ``expires_at`` (unix seconds) when it could be read."""

    answer: str | None
    expires_at: int | None = None

    @classmethod
    def from_fields(
        cls, status: Any, data: Any, expires_at: Any, in_progress_until_ms: Any, now: float
    ) -> DedupRecord | None:
        """The record these stored fields make, or ``None`` when it is not live: expired, in
        progress past its deadline (its invocation is over), or unreadable (a damaged or
        foreign record, replaced like an expired one)."""
        try:
            expiry = int(float(expires_at))
            if expiry < int(now):
                return None
            if status == IN_PROGRESS:
                if in_progress_until_ms is not None and float(in_progress_until_ms) < int(now * 1000):
                    return None
                return cls(answer=None, expires_at=expiry)
            if status == COMPLETED:
                answer = json.loads(data)["answer"]
                return cls(answer=answer, expires_at=expiry) if isinstance(answer, str) else None
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        return None


class DedupClaim(Frozen):
    """A record to write unless a live one holds ``key``: in progress (``answer`` None), with
    ``in_progress_until_ms`` its invocation's deadline when known, or completed at once."""

    key: str
    expires_at: int
    answer: str | None = None
    in_progress_until_ms: int | None = None


class DedupRecords(Protocol):
    """Where the webhook's dedup records live, in as few round trips as each backend allows.

    Every method raises :class:`~wxtoken.errors.StoreError` when the backend cannot be
    reached (the webhook then handles the message without dedup).
    """

    def claim(self, claims: Sequence[DedupClaim]) -> list[DedupRecord | None]:
        """Writes each claim's record unless a live one holds its key, all in one round trip
        where the backend can: per claim, ``None`` when written, else the live record found
        (see :meth:`DedupRecord.from_fields` for what is not live: it is replaced)."""
        ...

    def complete(self, key: str, answer: str, expires_at: int) -> None:
        """Stores ``answer`` as ``key``'s completed record, kept until ``expires_at``."""
        ...

    def release(self, key: str) -> None:
        """Deletes ``key``'s record (a claim withdrawn: its handler never ran to the end)."""
        ...


class DedupBackend(Frozen):
    """Where a store keeps the webhook's dedup records: its records on the store's own
    connection, and the prefix their keys must carry (an ACL or IAM policy may allow the
    webhook to write those keys and no others)."""

    records: DedupRecords
    key_prefix: str


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
        the record when it is no longer valid; backends without expiry ignore it. A backend
        without an atomic compare (SSM) relies on its callers writing only while they hold
        :meth:`lease`; every wxtoken writer does.
        """
        ...

    def read_raw(self, appid: str, name: RecordName) -> str | None:
        """The record exactly as stored (``None`` when there is none), damaged or not.

        What :meth:`replace` compares against: a record is replaced only if it is still
        exactly what the caller read.
        """
        ...

    def replace(
        self,
        appid: str,
        name: RecordName,
        record: dict[str, Any],
        ttl_seconds: float | None,
        *,
        expected: str | None,
    ) -> bool:
        """Store ``record`` only if the stored value is still exactly ``expected`` (``None``:
        no record). Returns whether it was written.

        The refresher reads the token record before it calls WeChat and replaces exactly
        that: if anyone stored a token in between (two holders of one lease, a clock-skewed
        writer), which of the two WeChat minted last is unknown, so neither overwrites the
        other blindly (the refresher then marks the stored token suspect for the guard). A
        damaged record is replaced like any other. Backends make the compare and the write
        atomic, or serialize them with :meth:`lease` (the refresher writes only under it).
        """
        ...

    def dedup_backend(self) -> DedupBackend | None:
        """The webhook's dedup records on this store's own connection, or ``None`` when this
        store cannot hold them (the webhook then uses its DynamoDB table)."""
        ...

    def platform_store(self) -> PlatformStore | None:
        """The Open Platform queues on this store, or ``None`` when it cannot keep them
        (SSM and Redis: Open Platform needs ``TOKEN_STORE=dynamodb``; docs/configuration.md)."""
        ...

    def lease(self, appid: str, ttl_seconds: float) -> AbstractContextManager[None]:
        """Hold this app's refresh lease for the ``with`` block.

        Raises :class:`~wxtoken.errors.LeaseBusyError` at once (no waiting) when someone
        else holds it. A holder that dies loses the lease after ``ttl_seconds``.
        """
        ...


class QueuedAuthorizer(Frozen):
    """An authorizer in a component's queue: its appid and when it is due (unix seconds)."""

    appid: str
    due_at: float


class PlatformStore(Protocol):
    """What Open Platform needs beyond :class:`TokenStore`, for thousands of authorizers.

    A queue per component, ordered by when each authorizer's token is due for refresh, so a
    run takes what is due in bounded batches instead of reading every authorizer; and a
    queue of authorization events the webhook received, which the refresher acts on. Only a
    store that can index its records offers it (DynamoDB: a sparse global secondary index);
    :meth:`TokenStore.platform_store` says which.
    """

    def schedule(self, appid: str, component_appid: str, due_at: float, record: dict[str, Any]) -> None:
        """Write authorizer ``appid``'s :attr:`RecordName.REFRESH_SCHEDULE` record and put it
        in ``component_appid``'s queue at ``due_at`` (replacing any earlier place)."""
        ...

    def unschedule(self, appid: str) -> None:
        """Take ``appid`` out of its component's queue (and drop its schedule record)."""
        ...

    def due(self, component_appid: str, now: float, limit: int) -> list[QueuedAuthorizer]:
        """Up to ``limit`` authorizers of the component due at ``now``, earliest first.

        May lag a write by a second or so (an index is eventually consistent): callers
        read the authorizer's records before they act, and act under its lease."""
        ...

    def post_event(self, appid: str, component_appid: str, record: dict[str, Any]) -> bool:
        """Store authorization event ``record`` (with a ``fetched_at``: WeChat's CreateTime)
        for authorizer ``appid`` unless one at least as new is stored, and queue it for the
        component's refresher. Returns whether it was written (an older push loses)."""
        ...

    def pending_events(self, component_appid: str, limit: int) -> list[str]:
        """Authorizers of the component with an authorization event not yet acted on,
        oldest first (up to ``limit``)."""
        ...

    def delete(self, appid: str, name: RecordName, *, expected: str | None = None) -> bool:
        """Delete the record; with ``expected``, only if it is still exactly that (raw).
        Returns whether a record was deleted."""
        ...
