"""A time budget that retries and waits must stay inside.

A Lambda that runs past its timeout is killed mid-write and retried from scratch, so
every loop in wxtoken asks the deadline how long it may still take.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class _LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """A point in monotonic time that work must finish by; :meth:`remaining` says how long is
    left, :meth:`capped` gives a nearer one (a WeChat call inside a lease, say)."""

    def __init__(self, expires_at: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._expires_at = expires_at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    @classmethod
    def from_context(cls, context: _LambdaContext | None, reserve: float = 2.0) -> Deadline:
        """The invocation's remaining time, less ``reserve`` seconds to report and log.

        Without a context (a local run), allow a generous 60 s.
        """
        if context is None:
            return cls.after(60.0)
        remaining = context.get_remaining_time_in_millis() / 1000.0
        return cls.after(max(remaining - reserve, 0.0))

    def capped(self, seconds: float) -> Deadline:
        """This deadline, or ``seconds`` from now if that comes first."""
        return Deadline(min(self._expires_at, self._clock() + seconds), self._clock)

    def remaining(self) -> float:
        return max(self._expires_at - self._clock(), 0.0)

    def expired(self) -> bool:
        return self.remaining() <= 0.0
