"""An AWS service's own clock, read from the ``Date`` header of its answers.

Leases must expire on one clock that every container shares, never a writer's: a container
whose clock is minutes off would otherwise write a lease the others think expired at once,
or take a live one (issue 9: two mints, and the late writer's older token stored over the
newer). AWS services stamp every answer with ``Date`` (RFC 7231, whole seconds), which
botocore keeps in ``ResponseMetadata.HTTPHeaders``; error answers carry it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

# The Date header has whole seconds (it is the server's time rounded down): a lease is held
# this much longer than its TTL rather than taken a fraction of a second early.
DATE_RESOLUTION_SECONDS = 1.0


def server_time(response: dict[str, Any]) -> float | None:
    """The service's clock at its answer: the ``Date`` header (whole seconds), or ``None``."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    raw = headers.get("date") if isinstance(headers, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        return parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None


class ServerClock:
    """The service's time now, estimated from its latest answer.

    Each answer's ``Date`` sets the offset between the service's clock and this host's; the
    latest one wins (a Lambda container thawed after minutes may have had its clock stepped).
    Until an answer with a ``Date`` has been seen, ``fallback`` (this host's clock) is used.
    """

    def __init__(self, fallback: Callable[[], float] = time.time) -> None:
        self._fallback = fallback
        self._offset: float | None = None
        self._lock = threading.Lock()

    def observe(self, response: dict[str, Any]) -> None:
        """Learn the service's clock from one answer (success or error)."""
        stamped = server_time(response)
        if stamped is not None:
            with self._lock:
                self._offset = stamped - time.time()

    @property
    def known(self) -> bool:
        """Whether an answer has set the service's clock yet."""
        with self._lock:
            return self._offset is not None

    def now(self) -> float:
        with self._lock:
            offset = self._offset
        return self._fallback() if offset is None else time.time() + offset
