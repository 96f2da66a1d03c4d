"""The business handler's time limit: inline on the main thread (a timer stops it), on a
pool elsewhere; either way the caller gets TimeLimitExceeded once the time is up."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import pytest

from wxtoken.webhook.time_limit import HandlerTimeExpired, TimeLimitExceeded, call_within


def test_a_handler_in_time_returns_its_value_inline_and_leaves_no_timer():
    ran_on: list[threading.Thread] = []

    def work() -> str:
        ran_on.append(threading.current_thread())
        return "reply"

    assert call_within(1.0, work) == "reply"
    assert ran_on == [threading.main_thread()]  # no thread hop
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    # the handler stays, disarmed: a late SIGALRM is ignored (SIG_DFL would end the process)
    signal.raise_signal(signal.SIGALRM)


def test_a_handler_past_its_time_is_stopped_even_through_its_own_catch_all():
    reached_the_end = []

    def stubborn() -> None:
        with contextlib.suppress(Exception):  # what many handlers write; the stop is not one
            time.sleep(2.0)
        reached_the_end.append(True)

    with pytest.raises(TimeLimitExceeded):
        call_within(0.1, stubborn)
    assert reached_the_end == []
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_the_stop_is_a_base_exception():
    assert not issubclass(HandlerTimeExpired, Exception)


def test_off_the_main_thread_the_handler_runs_on_the_pool_and_goes_on_after_the_answer():
    finished = threading.Event()
    outcome: list[BaseException] = []

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    def caller() -> None:
        try:
            call_within(0.05, slow)
        except TimeLimitExceeded as exc:
            outcome.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join()
    assert len(outcome) == 1
    assert finished.wait(timeout=5)


def test_a_timer_someone_else_set_is_left_alone():
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        assert call_within(1.0, lambda: threading.current_thread()) is not threading.main_thread()
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # still theirs, still running
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_with_sigalrm_blocked_the_handler_runs_on_the_pool_and_is_still_limited():
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    try:
        with pytest.raises(TimeLimitExceeded):
            call_within(0.05, lambda: time.sleep(0.3))
        assert call_within(1.0, threading.current_thread) is not threading.main_thread()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGALRM])


def test_another_sigalrm_handler_is_left_alone():
    calls: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: calls.append(signum))
    try:
        assert call_within(1.0, threading.current_thread) is not threading.main_thread()
        signal.raise_signal(signal.SIGALRM)
        assert calls == [signal.SIGALRM]  # still theirs
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_time_limit_inside_another_leaves_the_outer_one_in_force():
    # Given a handler that runs some work under a time limit of its own, then overruns
    reached_the_end = []

    def handler() -> None:
        assert call_within(1.0, lambda: "inner") == "inner"
        time.sleep(2.0)
        reached_the_end.append(True)

    # Then the outer limit still stops it, and no timer or foreign handler is left behind
    with pytest.raises(TimeLimitExceeded):
        call_within(0.2, handler)
    assert reached_the_end == []
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_signal_handler_of_someone_else_with_their_timer_is_left_as_it_was():
    # Given code with a timer of its own and SIGALRM's default handler, as signal.alarm() users
    # have
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        # When a handler runs under a time limit
        assert call_within(1.0, lambda: "reply") == "reply"
        # Then their timer still runs and SIGALRM's handler is still the default one
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
