"""Run the business handler inline, and stop it when its time is up.

WeChat drops a callback answer after 5 s, so the webhook gives the handler
``WEBHOOK_HANDLER_TIMEOUT_SECONDS`` (4 s) and answers ``success`` past that. That guarantee
used to cost a thread hop on every request: submit to a pool, wait on a future — 146 µs of a
390 µs warm request (bench/webhook_roundtrip.py --breakdown), more than the crypto and the
XML together. On Lambda the handler runs on the main thread, where a POSIX interval timer
(``signal.setitimer``) can interrupt it instead, at no cost until it fires.

An interrupted handler gets :class:`HandlerTimeExpired` where it stands — a
``BaseException``, so that a handler's own ``except Exception`` cannot swallow it and run
on (a bare ``except:`` can: such a handler runs on, unguarded). Nothing is lost by stopping
it: Lambda freezes the process once the answer is out, so a handler left running (as the
pool did) was never sure to finish anyway.

The timer is used only where it is safe: on the main thread, with SIGALRM not blocked, no
other interval timer running and no other SIGALRM handler installed. Its handler stays
installed once set, and raises only while armed, once: a signal that arrives late (the
kernel may deliver SIGALRM to any thread, and Python runs the handler at the main thread's
next check) is ignored instead of reaching SIG_DFL, which would end the process. Anywhere
else the handler runs on a small pool as before, and keeps running after the answer.
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
_HAS_TIMER: Final = all(hasattr(signal, name) for name in ("setitimer", "SIGALRM", "pthread_sigmask"))
# Main thread only (the timer is used nowhere else): no lock needed.
_armed = False


class HandlerTimeExpired(BaseException):
    """Raised inside a business handler whose time is up; the webhook answers ``success``."""


class TimeLimitExceeded(Exception):
    """The handler did not return within its time; what it would have returned is dropped."""


def call_within[T](seconds: float, work: Callable[[], T]) -> T:
    """``work()``, or :class:`TimeLimitExceeded` once ``seconds`` have passed."""
    if _timer_usable():
        return _call_with_timer(seconds, work)
    try:
        return _POOL.submit(work).result(timeout=seconds)
    except FutureTimeout:
        raise TimeLimitExceeded from None


def _timer_usable() -> bool:
    return (
        _HAS_TIMER
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, _expire)  # nobody else's
        and signal.SIGALRM not in signal.pthread_sigmask(signal.SIG_BLOCK, ())
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0.0  # nobody else's timer running
    )


def _expire(signum: int, frame: FrameType | None) -> None:
    global _armed
    if _armed:
        _armed = False  # once per arming: a second, late signal is ignored
        raise HandlerTimeExpired


def _call_with_timer[T](seconds: float, work: Callable[[], T]) -> T:
    global _armed
    # Set on every call (2.7 µs), though getsignal() may say it is ours: getsignal() reports
    # what Python installed, and native code can replace the handler beneath it (SIG_IGN
    # would let the handler run on unbounded; SIG_DFL would end the process). Stays
    # installed afterwards: harmless while disarmed.
    signal.signal(signal.SIGALRM, _expire)
    try:
        try:
            _armed = True
            signal.setitimer(signal.ITIMER_REAL, seconds)
            return work()
        finally:
            _armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except HandlerTimeExpired:
        raise TimeLimitExceeded from None
