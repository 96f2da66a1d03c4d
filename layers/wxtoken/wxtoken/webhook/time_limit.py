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

import _signal
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import FrameType
from typing import Any, Final

# Off the main thread: handlers that overrun keep running here after the answer went out.
_POOL: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wxtoken-handler")
_HAS_TIMER: Final = all(hasattr(signal, name) for name in ("setitimer", "SIGALRM", "pthread_sigmask"))
# signal's C module, called directly for a measured reason: ``signal.signal`` and
# ``signal.pthread_sigmask`` are Python wrappers that turn every number into an enum and back,
# 1.45 and 0.85 µs a call where the C functions take 0.31 and 0.45, twice the cost of the timer
# itself on every webhook request (bench/webhook_roundtrip.py --breakdown). Same functions,
# plain ints (``signal.py`` is ``from _signal import *`` plus those wrappers).
_C: Final[Any] = _signal
_ALARM: Final = int(signal.SIGALRM) if _HAS_TIMER else 0
_DEFAULT: Final = int(signal.SIG_DFL)
_REAL: Final = int(signal.ITIMER_REAL) if _HAS_TIMER else 0
# Main thread only (the timer is used nowhere else): no lock needed.
_armed = False


class HandlerTimeExpired(BaseException):
    """Raised inside a business handler whose time is up; the webhook answers ``success``."""


class TimeLimitExceeded(Exception):
    """The handler did not return within its time; what it would have returned is dropped."""


def call_within[T](seconds: float, work: Callable[[], T]) -> T:
    """``work()``, or :class:`TimeLimitExceeded` once ``seconds`` have passed."""
    if _timer_usable():
        armed = _call_with_timer(seconds, work)
        if armed is not _NOT_ARMED:
            return armed  # type: ignore[return-value]  # work()'s value: _NOT_ARMED is only ours
    try:
        return _POOL.submit(work).result(timeout=seconds)
    except FutureTimeout:
        raise TimeLimitExceeded from None


def _timer_usable() -> bool:
    """On the main thread, with SIGALRM's handler the default or ours, and SIGALRM not blocked
    (whether another interval timer is running, :func:`_call_with_timer` learns as it arms)."""
    return (
        _HAS_TIMER
        and threading.current_thread() is threading.main_thread()
        and _C.getsignal(_ALARM) in (_DEFAULT, _expire)  # nobody else's
        and _ALARM not in _C.pthread_sigmask(_C.SIG_BLOCK, ())
    )


def _expire(signum: int, frame: FrameType | None) -> None:
    global _armed
    if _armed:
        _armed = False  # once per arming: a second, late signal is ignored
        raise HandlerTimeExpired


_NOT_ARMED: Final = object()


def _call_with_timer[T](seconds: float, work: Callable[[], T]) -> T | object:
    """``work()`` under the timer; :data:`_NOT_ARMED`, with nothing run, when another interval
    timer was running: setting ours says what was set before (``getitimer`` first would be one
    more system call on every request), and theirs is set back as it was."""
    global _armed
    # Set on every call, though getsignal() may say it is ours: getsignal() reports what
    # Python installed, and native code can replace the handler beneath it (SIG_IGN would let
    # the handler run on unbounded; SIG_DFL would end the process). Stays installed
    # afterwards: harmless while disarmed.
    handler = _C.signal(_ALARM, _expire)
    running = _C.setitimer(_REAL, seconds)
    if running[0]:
        # Someone else's timer, or an outer call's: theirs again as it was (handler and the
        # time it had left; armed as it was), and the pool instead.
        _C.setitimer(_REAL, *running)
        _C.signal(_ALARM, handler)
        return _NOT_ARMED
    try:
        try:
            # Armed inside the try: a SIGALRM that was already pending is either ignored
            # (handled before this line) or stops the work as its time would.
            _armed = True
            return work()
        finally:
            _armed = False
            _C.setitimer(_REAL, 0)
    except HandlerTimeExpired:
        raise TimeLimitExceeded from None
