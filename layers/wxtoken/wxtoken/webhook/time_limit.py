"""Run the business handler inline, and stop it when its time is up.

WeChat drops a callback answer after 5 s, so the webhook gives the handler
``WEBHOOK_HANDLER_TIMEOUT_SECONDS`` (4 s) and answers ``success`` past that. That guarantee
used to cost a thread hop on every request: submit to a pool, wait on a future — 146 µs of a
390 µs warm request (bench/webhook_roundtrip.py --breakdown), more than the crypto and the
XML together. On Lambda the handler runs on the main thread, where a POSIX interval timer
(``signal.setitimer``) can interrupt it instead, at no cost until it fires.

An interrupted handler gets :class:`HandlerTimeExpired` where it stands — a
``BaseException``, so that a handler's own ``except Exception`` cannot swallow it and run
on. Nothing is lost by stopping it: Lambda freezes the process once the answer is out, so a
handler left running (as the pool did) was never sure to finish anyway. Off the main thread
(a test's worker thread, a service embedding the webhook), or where a timer is already set
by someone else, the handler runs on a small pool as before and keeps running after the
answer.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import FrameType
from typing import Final

# Off the main thread: handlers that overrun keep running here after the answer went out.
_POOL: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wxtoken-handler")
_HAS_TIMER: Final = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")


class HandlerTimeExpired(BaseException):
    """Raised inside a business handler whose time is up; the webhook answers ``success``."""


class TimeLimitExceeded(Exception):
    """The handler did not return within its time; what it would have returned is dropped."""


def call_within[T](seconds: float, work: Callable[[], T]) -> T:
    """``work()``, or :class:`TimeLimitExceeded` once ``seconds`` have passed."""
    if _HAS_TIMER and threading.current_thread() is threading.main_thread() and _timer_free():
        return _call_with_timer(seconds, work)
    try:
        return _POOL.submit(work).result(timeout=seconds)
    except FutureTimeout:
        raise TimeLimitExceeded from None


def _timer_free() -> bool:
    """No interval timer of someone else's is running (ours would replace it)."""
    return signal.getitimer(signal.ITIMER_REAL)[0] == 0.0


def _call_with_timer[T](seconds: float, work: Callable[[], T]) -> T:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise HandlerTimeExpired

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return work()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except HandlerTimeExpired:
        raise TimeLimitExceeded from None
    finally:
        signal.signal(signal.SIGALRM, previous)
