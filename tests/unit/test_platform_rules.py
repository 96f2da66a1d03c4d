"""Open Platform's refresh decisions (pure): each authorizer's slot, retries, the ticket, the import."""

from __future__ import annotations

from collections import Counter

import pytest

from wxtoken.refresh.platform_rules import (
    AUTHORIZER_CYCLE_SECONDS,
    AUTHORIZER_MARGIN_SECONDS,
    IMPORT_INTERVAL_SECONDS,
    authorizer_due_at,
    import_due,
    listed_since,
    push_restart_due,
    retry_due_at,
    slot_offset,
)
from wxtoken.store.base import Credential
from wxtoken.store.platform_records import AuthorizerImport

NOW = 1_800_000_000.0


def token(fetched_at: float, lifetime: int = 7200) -> Credential:
    return Credential("t", int(fetched_at) + lifetime, fetched_at)


@pytest.mark.parametrize("appid", [f"wx{i:016x}" for i in range(0, 2000, 97)])
def test_a_fresh_token_is_due_at_its_slot_between_600_s_and_the_margin_before_expiry(appid):
    due = authorizer_due_at(appid, token(NOW), NOW)
    assert NOW + 600 <= due <= NOW + 7200 - AUTHORIZER_MARGIN_SECONDS
    assert (due - slot_offset(appid)) % AUTHORIZER_CYCLE_SECONDS == 0


def test_an_authorizer_refreshed_at_its_slot_stays_on_it_one_call_per_cycle():
    appid = "wx0123456789abcdef"
    due = authorizer_due_at(appid, token(NOW), NOW)
    following = authorizer_due_at(appid, token(due), due)
    assert following - due == AUTHORIZER_CYCLE_SECONDS


def test_slots_spread_so_no_minute_carries_a_tenth_of_the_authorizers():
    appids = [f"wx{i:016x}" for i in range(5000)]
    per_minute = Counter(slot_offset(appid) // 60 for appid in appids)
    assert max(per_minute.values()) <= len(appids) / 10
    assert len(per_minute) == AUTHORIZER_CYCLE_SECONDS // 60  # every minute of the cycle used


def test_a_token_with_less_than_the_margin_left_is_due_now():
    assert authorizer_due_at("wx0123456789abcdef", token(NOW - 7000), NOW) == NOW


@pytest.mark.parametrize(("failures", "after"), [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (40, 600)])
def test_failures_back_off_then_retry_every_ten_minutes(failures, after):
    assert retry_due_at(failures, NOW) == NOW + after


@pytest.mark.parametrize(
    ("ticket_age", "restart_age", "due"),
    [
        (None, None, True),  # never a ticket: ask at once
        (60, None, False),  # pushes arrive
        (1199, None, False),
        (1200, None, True),  # 20 minutes without one
        (1800, 300, False),  # asked 5 minutes ago
        (1800, 600, True),
    ],
)
def test_pushes_are_restarted_after_20_minutes_without_a_ticket_at_most_every_10(
    ticket_age, restart_age, due
):
    ticket = None if ticket_age is None else Credential("x", int(NOW) + 3600, NOW - ticket_age)
    restart = None if restart_age is None else NOW - restart_age
    assert push_restart_due(ticket, restart, NOW) is due


@pytest.mark.parametrize(
    ("state", "due"),
    [
        (None, True),
        (AuthorizerImport(0, NOW - 100, NOW - 100, NOW - 100, 0.0, 10, NOW - 100), False),
        (AuthorizerImport(500, NOW - 100, 0.0, 0.0, 0.0, 5000, NOW - 100), True),  # resumed
        (AuthorizerImport(0, NOW, NOW - IMPORT_INTERVAL_SECONDS, NOW - 1e5, 0.0, 10, NOW), True),  # daily
        # a refused refresh token asked for a pass after the last one began
        (AuthorizerImport(0, NOW - 100, NOW - 50, NOW - 100, NOW - 10, 10, NOW - 10), True),
        (AuthorizerImport(0, NOW - 5, NOW - 1, NOW - 5, NOW - 10, 10, NOW - 1), False),
    ],
)
def test_the_import_runs_first_resumes_repeats_daily_and_when_a_refresh_token_is_refused(state, due):
    assert import_due(state, NOW) is due


@pytest.mark.parametrize(
    ("pass_started_at", "refused_at", "lost"),
    [
        (NOW - 100, NOW - 10, False),  # the last full pass began before the refusal
        (NOW - 10, NOW - 10, True),  # it began at the refusal: it saw the current token
        (NOW - 50, NOW - 100, True),
        (NOW - 50, 0.0, False),  # never refused
    ],
)
def test_a_refused_token_is_lost_only_after_a_full_pass_that_began_after_the_refusal(
    pass_started_at, refused_at, lost
):
    state = AuthorizerImport(0, pass_started_at, NOW - 1, pass_started_at, 0.0, 10, NOW - 1)
    assert listed_since(state, refused_at) is lost
