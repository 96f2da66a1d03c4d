"""The Open Platform records the refresher and the webhook keep beside the tokens.

Each is a small JSON object with a ``fetched_at`` (the write-ordering field every record
carries), in the same store and the same places as an app's records
(``{appid}/{record name}``), so the store's compare-and-set rules apply unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from wxtoken.frozen import Frozen
from wxtoken.store.base import _finite, _FlatRecord, _parsed


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not a non-empty string")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("not a count")
    return value


class RefreshToken(Frozen, _FlatRecord):
    """An authorizer's ``authorizer_refresh_token`` and the platform it authorized.

    The one thing that must never be lost (without it the account must authorize again):
    kept only in a durable store (DynamoDB, with point-in-time recovery and KMS), never
    logged, never served by the token API (the webhook's role may not read it)."""

    _WHAT: ClassVar[str] = "authorizer refresh token"
    _FIELDS: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "refresh_token": _text,
        "component_appid": _text,
        "fetched_at": _finite,
    }
    _hidden = frozenset({"refresh_token"})

    refresh_token: str
    component_appid: str
    fetched_at: float


class Schedule(Frozen, _FlatRecord):
    """Where an authorizer stands in its platform's refresh queue.

    ``failures``: refreshes failed in a row (the retry backs off on it). ``recovered_at``:
    when its refresh token was last looked up in api_get_authorizer_list (once a day at
    most; a second refusal is alarmed, not looked up again)."""

    _WHAT: ClassVar[str] = "refresh schedule"
    _FIELDS: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "component_appid": _text,
        "due_at": _finite,
        "failures": _count,
        "recovered_at": _finite,
        "fetched_at": _finite,
    }

    component_appid: str
    due_at: float
    failures: int = 0
    recovered_at: float = 0.0
    fetched_at: float = 0.0


class AuthorizerImport(Frozen, _FlatRecord):
    """The import of a platform's authorizers from api_get_authorizer_list.

    ``offset``: where a pass that ran out of time resumes (0: none in progress), started at
    ``started_at``. ``completed_at``: when the last full pass ended, and ``pass_started_at``
    when that pass began (it saw every refresh token current at that time or later).
    ``requested_at``: a refused refresh token asked for a pass beginning after this time."""

    _WHAT: ClassVar[str] = "authorizer import"
    _FIELDS: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "offset": _count,
        "started_at": _finite,
        "completed_at": _finite,
        "pass_started_at": _finite,
        "requested_at": _finite,
        "total": _count,
        "fetched_at": _finite,
    }

    offset: int
    started_at: float
    completed_at: float
    pass_started_at: float
    requested_at: float
    total: int
    fetched_at: float


class AuthorizationEvent(Frozen):
    """The last authorization push the webhook received for an authorizer, until the
    refresher acts on it: ``event`` is WeChat's InfoType (authorized, updateauthorized,
    unauthorized), ``fetched_at`` its CreateTime (a newer push replaces an older one)."""

    _hidden = frozenset({"authorization_code"})

    event: str
    component_appid: str
    fetched_at: float
    authorization_code: str | None = None
    code_expires_at: float | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "event": self.event,
            "component_appid": self.component_appid,
            "fetched_at": self.fetched_at,
        }
        if self.authorization_code is not None:
            record["authorization_code"] = self.authorization_code
        if self.code_expires_at is not None:
            record["code_expires_at"] = self.code_expires_at
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> AuthorizationEvent:
        def build() -> AuthorizationEvent:
            code = record.get("authorization_code")
            expires = record.get("code_expires_at")
            return cls(
                _text(record["event"]),
                _text(record["component_appid"]),
                _finite(record["fetched_at"]),
                _text(code) if code is not None else None,
                _finite(expires) if expires is not None else None,
            )

        return _parsed("authorization event", build)
