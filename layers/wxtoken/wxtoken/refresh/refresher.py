"""The refresh logic: who refreshes which app, when, and how only one of them calls WeChat.

Every refresh, whatever asked for it (the 100-minute schedule, the guard, a forced refresh,
a reader's compare-and-refresh), goes through :meth:`Refresher.refresh_app`:

1. read the stored token; if this request no longer needs a refresh, stop (no lease, no call);
2. take the app's lease in the store (single-flight across processes and containers);
   if someone else holds it, wait with backoff and go back to 1 — usually the holder's new
   token now satisfies this request, so N concurrent callers make one WeChat call;
3. under the lease, read again and decide again, then call WeChat and store the result with
   a compare on ``fetched_at`` (never replace a newer record with an older one).

"Needs a refresh" depends on the trigger, and ``requested_at`` is what makes racing
requests collapse: a scheduled or forced request is satisfied by any token fetched after
it was made; a compare-and-refresh only by a token other than the one it saw rejected.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from wxtoken.apps import AppConfig, AppsSource
from wxtoken.config import Settings, TokenAPI
from wxtoken.deadline import Deadline
from wxtoken.errors import (
    DamagedRecordError,
    LeaseBusyError,
    MisconfiguredAppError,
    RefreshInProgressError,
    RetryableWeChatError,
    StoreError,
    TokenRejectedError,
    WeChatAPIError,
    WeChatTransportError,
    WxTokenError,
)
from wxtoken.frozen import Frozen, SlotsRecord
from wxtoken.observability import (
    APPS_SECRET_INVALID,
    MIN_SECONDS_TO_EXPIRY,
    REFRESH_FAILED,
    SECONDS_TO_EXPIRY,
    STORED_TOKEN_REJECTED,
    TOKEN_REFRESHED,
    count,
    logger,
    put_app_metric,
    put_metric,
    record,
    tracer,
)
from wxtoken.refresh.platform import PlatformRefresher, record_platform_metrics
from wxtoken.refresh.rules import (
    RefreshRequest,
    TokenState,
    Trigger,
    fetched_at_after,
    next_force_quota,
    probe_due,
    reason_to_refresh,
    ticket_due,
)
from wxtoken.refresh.subject import Subject
from wxtoken.store.base import (
    PLAUSIBLE_AHEAD_SECONDS,
    Credential,
    ForceQuota,
    MintIntent,
    RecordName,
    TokenStore,
    decode,
    encode,
)
from wxtoken.wechat.api import Grant, WeChatAPI
from wxtoken.wechat.component_api import ComponentAPI

_MAX_PARALLEL_APPS = 8
_LEASE_RETRY_SECONDS = 2.0
# Reporting every app's time to expiry after a run is skipped with less time than this left.
_OBSERVE_MIN_SECONDS = 2.0
# The probe: a cheap authenticated call that only says whether WeChat still accepts the
# stored token (getApiDomainIp changes nothing and has no documented daily limit).
PROBE_PATH = "/cgi-bin/get_api_domain_ip"
_PROBE_SECONDS = 5.0
# Mint intents live on in Redis this long (SSM keeps them until replaced).
_INTENT_TTL_SECONDS = 2 * 86400


class RefreshReport(SlotsRecord):
    """What one run did, filled in as it goes: the refresh function's result (:meth:`as_dict`).

    A plain class, not a dataclass: the decorator's generated code cost about 1 ms of each
    cold start (issue 12; :mod:`wxtoken.frozen`).
    """

    __slots__ = ("failed", "platforms", "refreshed", "skipped")

    def __init__(
        self,
        refreshed: list[str] | None = None,
        skipped: list[dict[str, str]] | None = None,
        failed: list[dict[str, str]] | None = None,
        platforms: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.refreshed = [] if refreshed is None else refreshed
        self.skipped = [] if skipped is None else skipped
        self.failed = [] if failed is None else failed
        # Per third-party platform (only when the apps secret has one): PlatformReport.as_dict().
        self.platforms = {} if platforms is None else platforms

    def __repr__(self) -> str:
        return f"RefreshReport({self.as_dict()!r})"

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"refreshed": self.refreshed, "skipped": self.skipped, "failed": self.failed}
        if self.platforms:
            result["platforms"] = self.platforms
        return result


class _Outcome(Frozen):
    """One app's result. ``seen``: the stored token a skip was decided on, read moments ago
    in this run; the probe and the expiry report use it instead of reading it again (one SSM
    GetParameter each, 8-10 ms of a cold guard run on moto)."""

    _hidden = frozenset({"seen"})

    appid: str
    refreshed: bool = False
    skipped_reason: str | None = None
    errors: tuple[str, ...] = ()
    seen: Credential | None = None
    # The token stored may be retired within 5 minutes by a mint still in flight (its mint
    # intent is left open): whoever schedules the next refresh must do it within a minute.
    suspect: bool = False


def _parallel[T, R](work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``work`` on every item, in threads when there is more than one."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL_APPS, len(items))) as pool:
        return list(pool.map(work, items))


class Refresher:
    """The only writer of tokens. Safe to run from any number of processes at once."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: TokenStore,
        wechat: WeChatAPI,
        apps: AppsSource,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self._store = store
        self._wechat = wechat
        self._apps = apps
        self._clock = clock
        self._sleep = sleep
        self._stable = settings.wechat_token_api is TokenAPI.STABLE_TOKEN
        self._local_locks: dict[str, threading.Lock] = {}
        self._local_locks_guard = threading.Lock()
        self._platforms: PlatformRefresher | None = None

    @property
    def lease_seconds(self) -> int:
        return self._settings.lease_seconds

    def platforms(self) -> PlatformRefresher:
        """Open Platform's part of the run (built on first use: most deployments have none)."""
        if self._platforms is None:
            self._platforms = PlatformRefresher(self, self._store, ComponentAPI(self._wechat), self._clock)
        return self._platforms

    # --- entry point -----------------------------------------------------------------
    def run(self, request: RefreshRequest, deadline: Deadline) -> RefreshReport:
        """Refresh the apps the request names (all by default), each independently.

        A failing app is reported in ``failed`` and never stops the others; the caller
        decides whether that fails the invocation. Afterwards the time to expiry of every app
        the run covered is read from the store and reported (``SecondsToExpiry``).
        """
        report = RefreshReport()
        apps = self._apps.all()
        components = self._apps.components()
        problems = {problem.ref: problem for problem in self._apps.problems()}
        wanted: Iterable[str] = request.appids if request.appids is not None else sorted(apps)
        selected: list[AppConfig] = []
        authorizers: list[tuple[AppConfig, str]] = []
        for appid in wanted:
            app = apps.get(appid)
            if app is not None:
                selected.append(app)
            elif appid in components:
                pass  # its platform run below refreshes its component token
            elif components and (component := self._authorizer_component(appid, components)) is not None:
                authorizers.append((component, appid))
            elif appid not in problems:
                report.failed.append({"appid": appid, "error": "UnknownAppError: not in the apps secret"})
                put_metric(REFRESH_FAILED, MetricUnit.Count, 1, appid=appid, ErrorClass="UnknownAppError")
        # An unusable entry fails alone, with what to fix; the other apps are refreshed as usual.
        bad = [p for ref, p in problems.items() if request.appids is None or ref in request.appids]
        for problem in bad:
            logger.error(
                "apps secret entry is not usable", extra={"appid": problem.ref, "error": problem.message}
            )
            report.failed.append({"appid": problem.ref, "error": f"ConfigError: {problem.message}"})
            put_metric(REFRESH_FAILED, MetricUnit.Count, 1, appid=problem.ref, ErrorClass="ConfigError")
        if problems:  # not 0 every run: its alarm treats no data as OK (see REFRESH_FAILED below)
            count(APPS_SECRET_INVALID, len(problems))
        # Apps are independent, and a slow one (WeChat timing out, retries) must not eat the
        # time budget of the others.
        outcomes = _parallel(lambda a: self._refresh_guarded(a, request, deadline), selected)
        component_lefts = self._run_platforms(components, authorizers, request, deadline, report)
        for outcome in outcomes:
            if outcome.refreshed:
                report.refreshed.append(outcome.appid)
            elif outcome.skipped_reason is not None and not outcome.errors:
                report.skipped.append({"appid": outcome.appid, "reason": outcome.skipped_reason})
            for error in outcome.errors:
                report.failed.append({"appid": outcome.appid, "error": error})
        # A total without dimensions, for the alarm (alarms cannot SEARCH across appids). Only
        # when something failed: CloudWatch bills a metric for every hour it is sent (USD 0.30
        # a month sent every hour), and a 0 every minute says nothing the alarm needs (it treats
        # no data as OK); MinSecondsToExpiry, written every run, shows the refresher is alive.
        if report.failed:
            count(REFRESH_FAILED, len(report.failed))
        # A run for named apps (a reader's compare-and-refresh, a forced refresh of one app)
        # reports those only: a burst of compare-and-refreshes must not multiply store reads
        # by the number of apps (SSM's GetParameter quota is shared with every reader). The
        # guard reports every app every minute.
        covered = [app.appid for app in selected] if request.appids is not None else sorted(apps)
        seen = {outcome.appid: outcome.seen for outcome in outcomes if outcome.seen is not None}
        self._observe_expiry(covered, deadline, seen, component_lefts)
        return report

    def _authorizer_component(self, appid: str, components: Mapping[str, AppConfig]) -> AppConfig | None:
        """The platform of the secret that ``appid`` authorized, if any (one store read)."""
        try:
            owner = self.platforms().read_component_of(appid)
        except WxTokenError as exc:
            logger.warning(
                "could not look the appid up among authorizers", extra={"appid": appid, "error": str(exc)}
            )
            return None
        return components.get(owner) if owner is not None else None

    def _run_platforms(
        self,
        components: Mapping[str, AppConfig],
        authorizers: Sequence[tuple[AppConfig, str]],
        request: RefreshRequest,
        deadline: Deadline,
        report: RefreshReport,
    ) -> list[float]:
        """Each platform's run (or the authorizers a request names), into ``report``: a
        component's own failure fails the run like an app's; authorizers' failures are
        counted and listed, never failing it (see :mod:`wxtoken.refresh.platform`)."""
        if request.appids is None:
            targets = list(components.values())
        else:
            targets = [components[appid] for appid in request.appids if appid in components]
        if not targets and not authorizers:
            return []
        platforms = self.platforms()
        runs = [platforms.run(component, request, deadline) for component in targets]
        for run in runs:
            report.platforms[run.component_appid] = run.as_dict()
            report.failed.extend({"appid": run.component_appid, "error": error} for error in run.errors)
        for component, appid in authorizers:
            run = platforms.refresh_authorizer(component, appid, request, deadline)
            runs.append(run)
            if run.errors:
                report.failed.extend({"appid": appid, "error": error} for error in run.errors)
            elif run.refreshed:
                report.refreshed.append(appid)
            else:
                report.skipped.append({"appid": appid, "reason": self._why_not(request)})
        record_platform_metrics(runs)
        # Each platform's component token counts in MinSecondsToExpiry (the run's least).
        return [
            run.component_seconds_left
            for run in runs[: len(targets)]
            if run.component_seconds_left is not None
        ]

    def _observe_expiry(
        self,
        appids: Sequence[str],
        deadline: Deadline,
        seen: Mapping[str, Credential] | None = None,
        also: Sequence[float] = (),
    ) -> None:
        """Report each app's seconds to expiry as stored now, and the least of them.

        Every run reports them — the guard, for every app, every minute — so an alarm sees the
        least fall, and sees it go missing when the refresher stops running. An app without a
        usable token counts as 0. A token this run read and left in place (``seen``) is not
        read again. Never raises.
        """
        if deadline.remaining() < _OBSERVE_MIN_SECONDS:
            logger.warning("no time left to report the tokens' expiry after this run")
            return

        def seconds_left(appid: str) -> float | None:
            try:
                stored = (seen or {}).get(appid) or self.read_credential(appid)
            except Exception as exc:  # reporting must not fail the run it reports on
                logger.warning(
                    "could not read the stored token to report its expiry",
                    extra={"appid": appid, "error_type": type(exc).__name__, "error": str(exc)},
                )
                return None
            left = max(0.0, stored.seconds_left(self._clock())) if stored is not None else 0.0
            put_app_metric(SECONDS_TO_EXPIRY, MetricUnit.Seconds, round(left), appid)
            return left

        known = [left for left in _parallel(seconds_left, appids) if left is not None] + list(also)
        if known:
            record(MIN_SECONDS_TO_EXPIRY, MetricUnit.Seconds, round(min(known)))

    def _refresh_guarded(self, app: AppConfig, request: RefreshRequest, deadline: Deadline) -> _Outcome:
        outcome = self._refresh_reported(app, request, deadline)
        if outcome.errors:
            return outcome
        if request.trigger is Trigger.GUARD and probe_due(
            app.appid, request.requested_at, self._settings.probe_period_seconds
        ):
            outcome = self._probe(app, outcome, request, deadline)
        ticket_error = self.refresh_ticket_if_due(app, request, deadline)
        if ticket_error:
            return _Outcome(
                app.appid, outcome.refreshed, outcome.skipped_reason, (*outcome.errors, ticket_error)
            )
        return outcome

    def _refresh_reported(self, app: AppConfig, request: RefreshRequest, deadline: Deadline) -> _Outcome:
        """:meth:`refresh_app`, with a failure logged, counted and returned, never raised."""
        try:
            return self.refresh_app(app, request, deadline)
        except WxTokenError as exc:
            logger.error(
                "refresh failed",
                extra={"appid": app.appid, "error_type": type(exc).__name__, "error": str(exc)},
            )
            put_metric(REFRESH_FAILED, MetricUnit.Count, 1, appid=app.appid, ErrorClass=type(exc).__name__)
            return _Outcome(app.appid, errors=(f"{type(exc).__name__}: {exc}",))
        except Exception as exc:  # one app's bug must not cost the others their refresh
            logger.exception("refresh crashed", extra={"appid": app.appid, "error_type": type(exc).__name__})
            put_metric(REFRESH_FAILED, MetricUnit.Count, 1, appid=app.appid, ErrorClass=type(exc).__name__)
            return _Outcome(app.appid, errors=(f"{type(exc).__name__}: unexpected error, see the logs",))

    # --- the probe: does WeChat still accept the stored token? ------------------------
    def _probe(
        self, app: AppConfig, outcome: _Outcome, request: RefreshRequest, deadline: Deadline
    ) -> _Outcome:
        """Ask WeChat whether it accepts the stored token; replace it at once if not.

        Only WeChat knows when another program fetched a token with the same AppSecret (a
        legacy script, a colleague's test): the stored token then dies 5 minutes later
        while its record still shows hours. A rejection (40001/40014/42001) is replaced as a
        compare-and-refresh would, counted (``StoredTokenRejected``) and logged with what to
        do. Any other probe failure is logged only: it says nothing about the token.
        """
        if outcome.refreshed or outcome.errors or deadline.remaining() < _PROBE_SECONDS + 1.0:
            return outcome  # just stored, or the refresh already failed: nothing to learn
        try:
            stored = outcome.seen or self.read_credential(app.appid)
        except WxTokenError:
            return outcome
        if stored is None:
            return outcome
        try:
            self._wechat.call(
                "GET", PROBE_PATH, access_token=stored.value, deadline=deadline.capped(_PROBE_SECONDS)
            )
        except TokenRejectedError as exc:
            put_metric(STORED_TOKEN_REJECTED, MetricUnit.Count, 1, appid=app.appid)
            count(STORED_TOKEN_REJECTED)
            logger.error(
                "WeChat rejected the stored access token: another program is fetching access tokens "
                "with this AppSecret (each fetch retires the stored one 5 minutes later). Find it and "
                "make it read the token from wxtoken instead; replacing the token now",
                extra={"appid": app.appid, "errcode": exc.errcode},
            )
            compare = RefreshRequest(Trigger.COMPARE, self._clock(), (app.appid,), invalid_token=stored.value)
            return self._refresh_reported(app, compare, deadline)
        except WeChatAPIError as exc:
            logger.warning(
                "could not probe the stored token at WeChat",
                extra={"appid": app.appid, "error_type": type(exc).__name__, "error": str(exc)},
            )
        return outcome

    # --- one app ---------------------------------------------------------------------
    def refresh_app(self, app: AppConfig, request: RefreshRequest, deadline: Deadline) -> _Outcome:
        """Refresh one app's token if this request still needs it (:meth:`refresh_subject`)."""
        return self.refresh_subject(self.app_subject(app), request, deadline)

    def app_subject(self, app: AppConfig) -> Subject:
        """An app's access token, minted with its own AppSecret (token or stable_token)."""
        return Subject(
            app.appid, lambda deadline, force: self._mint(app, deadline, force), stable=self._stable
        )

    @tracer.capture_method(capture_response=False)
    def refresh_subject(self, subject: Subject, request: RefreshRequest, deadline: Deadline) -> _Outcome:
        """Refresh one credential if this request still needs it, single-flight.

        While another caller holds the lease, this one polls the stored record (cheap: one
        read) and tries the lease again only every ``_LEASE_RETRY_SECONDS`` — in the common
        case the holder's new token satisfies it first, and SSM's PutParameter quota is
        never spent on waiting.
        """
        local = self._local_lock(f"{subject.appid}/{subject.token_record}")
        # Threads of one process queue here first, so only one of them at a time polls the
        # store; the others then find the token it stored and skip.
        if not local.acquire(timeout=max(deadline.remaining() - 1.0, 0.0)):
            raise RefreshInProgressError(
                f"another refresh of {subject.appid} in this process took longer than this call could wait"
            )
        try:
            return self._refresh_single_flight(subject, request, deadline)
        finally:
            local.release()

    def _local_lock(self, appid: str) -> threading.Lock:
        with self._local_locks_guard:
            return self._local_locks.setdefault(appid, threading.Lock())

    def _refresh_single_flight(
        self, subject: Subject, request: RefreshRequest, deadline: Deadline
    ) -> _Outcome:
        backoff = 0.05
        next_lease_try = 0.0
        while True:
            state = self._read_state(subject)
            reason = reason_to_refresh(request, state, self._clock(), self._settings.guard_margin_seconds)
            if reason is None:
                return _Outcome(subject.appid, skipped_reason=self._why_not(request), seen=state.credential)
            if self._monotonic() >= next_lease_try:
                with ExitStack() as held:
                    try:
                        held.enter_context(self._store.lease(subject.appid, self._settings.lease_seconds))
                    except LeaseBusyError:
                        next_lease_try = self._monotonic() + _LEASE_RETRY_SECONDS
                    else:
                        return self._refresh_under_lease(subject, request, deadline)
            wait = backoff * (0.5 + random.random())  # noqa: S311 - jitter, not crypto
            if deadline.remaining() < wait + 1.0:
                raise RefreshInProgressError(
                    f"another refresh of {subject.appid} held the lease for longer than this "
                    "invocation could wait; it will be retried"
                )
            self._sleep(wait)
            backoff = min(backoff * 2, 1.0)

    def _refresh_under_lease(self, subject: Subject, request: RefreshRequest, deadline: Deadline) -> _Outcome:
        # What we read before taking the lease may be stale by now.
        state = self._read_state(subject)
        reason = reason_to_refresh(request, state, self._clock(), self._settings.guard_margin_seconds)
        if reason is None:
            return _Outcome(subject.appid, skipped_reason=self._why_not(request), seen=state.credential)
        # Finish well inside the lease, so no one else can take it while we work.
        lease = self._settings.lease_seconds
        return self._fetch_and_store(
            subject, request, reason, state, deadline.capped(max(lease * 0.75, lease - 10))
        )

    def _fetch_and_store(
        self, subject: Subject, request: RefreshRequest, reason: str, state: TokenState, deadline: Deadline
    ) -> _Outcome:
        appid = subject.appid
        force = request.trigger is Trigger.FORCE and subject.stable
        if force:
            self._spend_force_quota(appid)
        asked_at = self._clock()
        # A classic token call, and a forced stable_token, retire the stored token: leave a
        # trace first (a StoreError here means no WeChat call: its answer could not be kept).
        written = self._write_intent(subject, asked_at, state) if (force or not subject.stable) else None
        intent = written[0] if written else None
        try:
            grant = subject.mint(deadline, force)
        except WeChatAPIError as exc:
            if written is not None and not _maybe_minted(exc):
                self._settle(subject, *written)
            elif written is not None:
                logger.warning(
                    "WeChat may have minted a token whose answer was lost; the stored token is marked "
                    "suspect and the guard replaces it within a minute",
                    extra={"appid": appid, "error_type": type(exc).__name__, "what": subject.what},
                )
            raise
        previous = state.credential
        if previous is not None and previous.value == grant.value:
            # stable_token's normal mode hands back the current token until its last 5
            # minutes; nothing new to store, and its lifetime is already on record.
            # WeChat says it is current: whatever made it suspect is settled.
            if written is not None:
                self._settle(subject, *written)
            elif state.suspect:
                self._settle(subject, state.intent, state.intent_raw)
            return _Outcome(appid, skipped_reason="WeChat returned the token already stored")
        # WeChat has just replaced the old token, so this one must win even if this
        # container's clock is behind the one that wrote the previous record; and it
        # resolves every intent written before the call.
        fetched_at = self._fetched_at_after(previous, intent, state.intent)
        credential = self._credential(grant, asked_at, fetched_at)
        self._check_lifetime(appid, credential, fetched_at)
        stored = self._store.replace(
            appid,
            subject.token_record,
            credential.to_record(subject.token_record),
            credential.seconds_left(fetched_at),
            expected=state.raw,
        )
        if not stored:
            return self._lost_race(subject)
        if grant.maybe_overtaken:
            # A timed-out attempt may still mint after the replay: keep the stored token
            # suspect, so the guard mints once more a minute from now, when that attempt is
            # long over (the token stored now stays valid 5 minutes after any later mint).
            logger.warning(
                "an earlier token call timed out and may still mint a newer token; the guard "
                "replaces the one stored now within a minute",
                extra={"appid": appid},
            )
            self._write_intent(subject, credential.fetched_at, self._read_state(subject))
        suspect = grant.maybe_overtaken
        if subject.per_app_metrics:
            put_app_metric(TOKEN_REFRESHED, MetricUnit.Count, 1, appid)
            count(TOKEN_REFRESHED)
        logger.info(
            "token refreshed",
            extra={
                "appid": appid,
                "what": subject.what,
                "trigger": request.trigger.value,
                "reason": reason,
                "expires_in": grant.expires_in,
            },
        )
        return _Outcome(appid, refreshed=True, seen=credential, suspect=suspect)

    def _mint(self, app: AppConfig, deadline: Deadline, force: bool) -> Grant:
        """The token call. A forced stable_token whose answer was lost is asked again in
        normal mode: the lost call already replaced the stored token (force mode has no
        grace), and normal mode hands back the current token without minting another
        (getStableAccessToken), so it is safe to replay where a forced call is not."""
        secret = app.app_secret
        if secret is None:
            # Only the webhook secret's entries lack one, and no refresher reads that secret.
            raise MisconfiguredAppError(app.appid, f"apps secret entry {app.appid} has no app_secret")
        try:
            return self._wechat.access_token(
                app.appid, secret, deadline=deadline, stable=self._stable, force=force
            )
        except WeChatTransportError as exc:
            if not (force and exc.maybe_processed):
                raise
            logger.warning(
                "a forced stable_token answer was lost; asking again in normal mode for the current token",
                extra={"appid": app.appid},
            )
            try:
                return self._wechat.access_token(app.appid, secret, deadline=deadline, stable=True)
            except WeChatAPIError as again:
                again.processed_earlier = True  # the forced call may have minted all the same
                raise

    def _lost_race(self, subject: Subject) -> _Outcome:
        """Another refresh stored a token while this one was minting (a lease taken over
        from a holder that overran it, a writer whose clock is off). Which of the two WeChat
        minted last — the only one sure to live — is unknown, so this one is not written
        over it; the stored token is marked suspect, and the next run mints once more under
        the lease."""
        now = self._clock()
        state = self._read_state(subject)
        self._write_intent(subject, max(now, state.credential.fetched_at if state.credential else now), state)
        raise RetryableWeChatError(
            None,
            f"another refresh stored a token for {subject.appid} while this one was minting; which one "
            "WeChat issued last is unknown, so the stored token is marked suspect and replaced by the "
            "next run",
        )

    def _write_intent(self, subject: Subject, asked_at: float, state: TokenState) -> tuple[MintIntent, str]:
        """Replace the intent read in ``state`` (damaged or not) with an unsettled one at
        ``asked_at`` (or just after the one it replaces); returns it and its stored bytes.

        A compare-and-set, so that a damaged intent never blocks it, and an intent another
        refresh wrote meanwhile (two holders of one lease) is never lost: that raises
        :class:`StoreError` before any WeChat call.
        """
        at = max(asked_at, self._fetched_at_after(state.intent))
        intent = MintIntent(asked_at=at, settled=False, fetched_at=at)
        record = intent.to_record()
        if not self._store.replace(
            subject.appid, subject.intent_record, record, _INTENT_TTL_SECONDS, expected=state.intent_raw
        ):
            raise StoreError(
                f"another refresh of {subject.appid} wrote its mint intent meanwhile; not minting"
            )
        return intent, encode(record)

    def _settle(self, subject: Subject, intent: MintIntent | None, raw: str | None) -> None:
        """WeChat certainly minted nothing (or says the stored token is current): replace the
        intent stored as ``raw`` with a settled one. A failure only costs one more refresh."""
        asked_at = intent.asked_at if intent is not None else self._clock()
        settled = MintIntent(asked_at, settled=True, fetched_at=self._fetched_at_after(intent))
        try:
            self._store.replace(
                subject.appid, subject.intent_record, settled.to_record(), _INTENT_TTL_SECONDS, expected=raw
            )
        except WxTokenError as exc:
            logger.warning(
                "could not settle the mint intent", extra={"appid": subject.appid, "error": str(exc)}
            )

    def _check_lifetime(self, appid: str, credential: Credential, now: float) -> None:
        """Refuse to store a token that would lapse before the next run could replace it.

        The next run is at the latest the guard (every ``guard_period``), which replaces a
        token with less than ``guard_margin`` left. A shorter-lived token is not stored; the
        error is retryable, so the Lambda retry (or the guard a minute later) asks again.
        """
        left = credential.seconds_left(now)
        if left < self._settings.min_stored_lifetime_seconds:
            raise RetryableWeChatError(
                None,
                f"WeChat returned a token for {appid} that expires in {int(left)}s, before the next "
                f"run could replace it (needs {self._settings.min_stored_lifetime_seconds}s); not stored",
            )

    def _spend_force_quota(self, appid: str) -> None:
        """Count a stable_token force_refresh before making it; refuse past WeChat's limits
        (:func:`next_force_quota`). Called under the lease, so the read-modify-write of the
        counter is not racy. A damaged counter counts as none: WeChat's own limit (45009)
        still stands behind it."""
        try:
            raw = self._store.read(appid, RecordName.FORCE_REFRESH_QUOTA)
            quota = ForceQuota.from_record(raw) if raw else None
        except DamagedRecordError:
            quota = None
        record = next_force_quota(appid, quota, self._clock())
        self._store.write_if_newer(appid, RecordName.FORCE_REFRESH_QUOTA, record.to_record(), 2 * 86400)

    # --- the jsapi ticket ------------------------------------------------------------
    def refresh_ticket_if_due(
        self, app: AppConfig, request: RefreshRequest, deadline: Deadline, *, per_app_metrics: bool = True
    ) -> str | None:
        """Refresh the jsapi ticket when the token is newer than it, or it runs low.

        Returns an error line for the report, or ``None``. The ticket is fetched with the
        stored token, so it always pairs with what readers see. ``per_app_metrics=False`` (an
        authorizer) counts a failure without its appid as a dimension.
        """
        if not app.jsapi_ticket:
            return None
        try:
            token = self.read_credential(app.appid)
            if token is None:
                return None  # the token's own failure is already reported
            now = self._clock()
            try:
                raw = self._store.read(app.appid, RecordName.JSAPI_TICKET)
                ticket = Credential.from_record(RecordName.JSAPI_TICKET, raw) if raw else None
            except DamagedRecordError:
                ticket = None  # replaced below, like a missing one
            if not ticket_due(ticket, token, request, now, self._settings.guard_margin_seconds):
                return None
            with self._store.lease(app.appid, self._settings.lease_seconds):
                asked_at = self._clock()
                grant = self._wechat.jsapi_ticket(token.value, deadline=deadline)
                fetched_at = self._fetched_at_after(token, ticket)
                credential = self._credential(grant, asked_at, fetched_at)
                self._check_lifetime(app.appid, credential, fetched_at)
                self._store.write_if_newer(
                    app.appid,
                    RecordName.JSAPI_TICKET,
                    credential.to_record(RecordName.JSAPI_TICKET),
                    credential.seconds_left(fetched_at),
                )
            logger.info("jsapi ticket refreshed", extra={"appid": app.appid, "expires_in": grant.expires_in})
            return None
        except LeaseBusyError:
            return None  # whoever holds the lease is refreshing this app right now
        except WxTokenError as exc:
            logger.error(
                "jsapi ticket refresh failed",
                extra={"appid": app.appid, "error_type": type(exc).__name__, "error": str(exc)},
            )
            if per_app_metrics:
                put_metric(
                    REFRESH_FAILED, MetricUnit.Count, 1, appid=app.appid, ErrorClass=type(exc).__name__
                )
            return f"jsapi_ticket: {type(exc).__name__}: {exc}"

    # --- reading ---------------------------------------------------------------------
    @staticmethod
    def _why_not(request: RefreshRequest) -> str:
        if request.trigger is Trigger.GUARD:
            return "stored token is not near expiry"
        if request.trigger is Trigger.COMPARE:
            return "stored token differs from the rejected one: already refreshed"
        return "refreshed by a concurrent run after this request was made"

    def _read_state(self, subject: Subject) -> TokenState:
        """The stored token as the refresher decides on it: raw, parsed, damaged, suspect."""
        appid = subject.appid
        raw = self._store.read_raw(appid, subject.token_record)
        credential: Credential | None = None
        damaged = False
        # Times this far ahead are a hand edit or corruption, never a clock's skew: trusting
        # them would push every later fetched_at past them.
        now = self._clock()
        horizon = now + PLAUSIBLE_AHEAD_SECONDS
        if raw is not None:
            try:
                credential = Credential.from_record(
                    subject.token_record, decode(raw, f"{subject.token_record} record")
                )
                if not credential.plausible(now):
                    raise DamagedRecordError(
                        f"stored {subject.token_record} record has times far in the future"
                    )
            except DamagedRecordError as exc:
                credential = None
                damaged = True
                logger.error(
                    "the stored token record is damaged; this run replaces it",
                    extra={"appid": appid, "what": subject.what, "error": str(exc)},
                )
        intent: MintIntent | None = None
        suspect = False
        intent_raw = self._store.read_raw(appid, subject.intent_record)
        if intent_raw is not None:
            try:
                intent = MintIntent.from_record(decode(intent_raw, "mint intent"))
                if max(intent.asked_at, intent.fetched_at) > horizon:
                    intent = None
                    raise DamagedRecordError("stored mint intent is in the future")
                suspect = intent.leaves_suspect(credential)
            except DamagedRecordError:
                suspect = True  # a damaged trace of a mint: assume the worst; one refresh repairs it
        return TokenState(raw, credential, damaged, suspect, intent, intent_raw)

    def read_credential(self, appid: str, name: RecordName = RecordName.ACCESS_TOKEN) -> Credential | None:
        """The stored token (or ticket), or ``None`` when there is none or its record is damaged."""
        try:
            raw = self._store.read(appid, name)
            return Credential.from_record(name, raw) if raw else None
        except DamagedRecordError:
            return None

    def _fetched_at_after(self, *previous: Credential | MintIntent | None) -> float:
        return fetched_at_after(self._clock(), *previous)

    @staticmethod
    def _credential(grant: Grant, asked_at: float, fetched_at: float) -> Credential:
        # WeChat's clock started before its answer reached us: count the lifetime from
        # when we asked, so expires_at is never later than WeChat's own.
        return Credential(
            value=grant.value,
            expires_at=int(asked_at) + grant.expires_in,
            # rounded *up* to the millisecond kept, so it is never before a request made
            # in the same millisecond (which would then refresh again)
            fetched_at=math.ceil(fetched_at * 1000) / 1000,
        )


def _maybe_minted(exc: WeChatAPIError) -> bool:
    """Whether WeChat may have minted a token on a call that failed with ``exc``.

    An errcode answer means WeChat refused (nothing minted); a transport failure did too
    only when the request certainly never reached WeChat (refused, connect timeout, 429).
    """
    if exc.processed_earlier:
        return True  # an earlier attempt of the same call may have minted
    if not exc.sent:
        return False
    if isinstance(exc, WeChatTransportError):
        return exc.maybe_processed
    return exc.errcode is None
