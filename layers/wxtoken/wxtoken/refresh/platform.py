"""Open Platform (第三方平台): a platform's component token and its authorizers' tokens.

Each run of the refresh function, for every ``kind: component`` entry of the apps secret:

1. **The ticket.** WeChat pushes ``component_verify_ticket`` every 10 minutes to the
   platform's 授权事件接收URL (the webhook stores it). None for 20 minutes: the run asks WeChat
   to push again (``api_start_push_ticket``), logs what to check and reports the age
   (``ComponentTicketAgeSeconds``, alarmed).
2. **The component token**, through the same single-flight and lapse-proof path as an app's
   (:meth:`Refresher.refresh_subject`), fetched with the last ticket stored.
3. **Authorization events** the webhook queued (``authorized`` / ``updateauthorized``: the
   code is traded for the authorizer's tokens; ``unauthorized``: its records are removed),
   within a minute of the push.
4. **Due authorizers**, taken from the platform's queue in bounded batches, earliest first,
   while the run has time: each refreshed at its own slot of a 100-minute cycle
   (:mod:`.platform_rules`), one ``api_authorizer_token`` call per cycle, failures backing
   off alone. A refresh token WeChat refuses (61023) is looked up in
   ``api_get_authorizer_list`` once; if the list has no other, it is alarmed
   (``AuthorizerRefreshTokenLost``): the account must authorize again.
5. **The import** of every authorizer from ``api_get_authorizer_list`` on the first run and
   daily (paged, resumed by the next run when time runs out), so a vendor moving to wxtoken
   keeps its merchants.

An authorizer's failure never fails the invocation (thousands of accounts: one revoked
merchant must not page anyone through Lambda's error alarm, nor make Lambda retry the run);
it is counted (``AuthorizerRefreshFailed``) and logged with its appid. The component token's
failure does fail it, as an app's does: every authorizer depends on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from wxtoken.apps import AppConfig
from wxtoken.deadline import Deadline
from wxtoken.errors import (
    ComponentTicketError,
    DamagedRecordError,
    InvalidCredentialError,
    LeaseBusyError,
    MisconfiguredAppError,
    RefreshTokenRejectedError,
    RetryableWeChatError,
    StoreError,
    TokenRejectedError,
    WeChatAPIError,
    WxTokenError,
)
from wxtoken.frozen import SlotsRecord
from wxtoken.observability import (
    AUTHORIZER_MIN_SECONDS_TO_EXPIRY,
    AUTHORIZER_REFRESH_FAILED,
    AUTHORIZER_REFRESH_TOKEN_LOST,
    AUTHORIZERS_ACTIVE,
    AUTHORIZERS_DUE,
    AUTHORIZERS_REFRESHED,
    COMPONENT_TICKET_AGE,
    count,
    logger,
    record,
)
from wxtoken.refresh.platform_rules import (
    IMPORT_PAGES_PER_RUN,
    LOST_RETRY_SECONDS,
    RECOVERY_INTERVAL_SECONDS,
    TICKET_LIFETIME_SECONDS,
    authorizer_due_at,
    import_due,
    listed_since,
    push_restart_due,
    retry_due_at,
    ticket_age,
)
from wxtoken.refresh.rules import RefreshRequest, Trigger
from wxtoken.refresh.subject import Subject
from wxtoken.store.base import Credential, PlatformStore, QueuedAuthorizer, RecordName, TokenStore, decode
from wxtoken.store.platform_records import AuthorizationEvent, AuthorizerImport, RefreshToken, Schedule
from wxtoken.wechat.api import Grant
from wxtoken.wechat.component_api import ComponentAPI, ListedAuthorizer

if TYPE_CHECKING:
    from wxtoken.refresh.refresher import Refresher

# Authorizers refreshed at once: WeChat calls wait on the network, not the CPU.
_MAX_PARALLEL = 16
# Authorizers taken from the queue at a time; the run takes batches while it has time.
_BATCH = 64
# No new batch, event or import page is started with less time than this left: what was
# started finishes inside the invocation's timeout (each call is bounded by the deadline).
_RESERVE_SECONDS = 12.0
_EVENTS_PER_RUN = 200
# Failures kept in the run's result (the count covers all of them).
_FAILURES_REPORTED = 20
# The head of the queue read for AuthorizerMinSecondsToExpiry (every authorizer is due within
# a cycle; "far future" is any bound past that).
_OBSERVED_HEAD = 10
_FAR_FUTURE_SECONDS = 30 * 86400
# The import's own lease: a page of 500 accounts takes seconds, a run reads at most 20.
_IMPORT_LEASE_SECONDS = 90


class PlatformReport(SlotsRecord):
    """What one run did for one platform (the refresh function's result, ``platforms``),
    filled in as it goes. A plain class: see :class:`~wxtoken.refresh.refresher.RefreshReport`."""

    __slots__ = (
        "active",
        "authorizer_min_seconds_left",
        "component_appid",
        "component_refreshed",
        "component_seconds_left",
        "due_left",
        "errors",
        "events",
        "failed",
        "failures",
        "imported",
        "lost",
        "refreshed",
        "ticket_age",
    )

    def __init__(self, component_appid: str) -> None:
        self.component_appid = component_appid
        self.component_refreshed = False
        self.errors: list[str] = []  # the component's own: fail the run
        self.refreshed = 0
        self.failed = 0
        self.failures: list[dict[str, str]] = []
        self.lost = 0
        self.events = 0
        self.imported = 0
        self.due_left = 0
        self.active: int | None = None
        self.ticket_age: float | None = None
        self.component_seconds_left: float | None = None
        self.authorizer_min_seconds_left: float | None = None

    def __repr__(self) -> str:
        return f"PlatformReport({self.component_appid!r}, {self.as_dict()!r})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "component_refreshed": self.component_refreshed,
            "errors": self.errors,
            "authorizers_refreshed": self.refreshed,
            "authorizers_failed": self.failed,
            "failures": self.failures,
            "refresh_tokens_lost": self.lost,
            "events": self.events,
            "imported": self.imported,
            "due_left": self.due_left,
        }

    def fail(self, appid: str, exc: BaseException) -> None:
        self.failed += 1
        if len(self.failures) < _FAILURES_REPORTED:
            self.failures.append({"appid": appid, "error": _describe(exc)})


class _NotOurs(RefreshTokenRejectedError):
    """The account has no refresh token of this platform stored: it leaves the queue (the
    import brings it back if WeChat still lists it)."""


class _Imported(Enum):
    KNOWN = "known"  # the same refresh token (or a newer one) is stored
    NEW = "new"
    CHANGED = "changed"  # the listed refresh token replaced ours: queued at once


class _Result(Enum):
    REFRESHED = "refreshed"
    SKIPPED = "skipped"
    FAILED = "failed"
    REFUSED = "refused"  # the refresh token: looked up in the list after the batch
    GONE = "gone"  # no refresh token of this platform: out of the queue


def _describe(exc: BaseException) -> str:
    if isinstance(exc, WxTokenError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: unexpected error, see the logs"


def _log_failure(message: str, exc: WxTokenError, **extra: str) -> None:
    """An error line naming the failure's class and its message (which never holds a secret:
    wxtoken's errors are built without one)."""
    logger.error(message, extra={**extra, "error_type": type(exc).__name__, "error": str(exc)})


def _unsent[E: WeChatAPIError](exc: E) -> E:
    """``exc``, marked as raised before any request was sent (nothing minted)."""
    exc.sent = False
    return exc


def _parallel[T, R](work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(items))) as pool:
        return list(pool.map(work, items))


def record_platform_metrics(runs: Sequence[PlatformReport]) -> None:
    """The run's figures across every platform, dimensionless (what the alarms and the
    dashboard read): counts summed, the ticket's age and the authorizers' time left at their
    worst. The component tokens' time left is part of ``MinSecondsToExpiry``
    (:meth:`Refresher.run`), with the apps' tokens."""
    if not runs:
        return
    refreshed = sum(run.refreshed for run in runs)
    failed = sum(run.failed for run in runs)
    lost = sum(run.lost for run in runs)
    if refreshed:
        count(AUTHORIZERS_REFRESHED, refreshed)
    # Not 0 every run: their alarms treat no data as OK (CloudWatch bills by the hour sent).
    if failed:
        count(AUTHORIZER_REFRESH_FAILED, failed)
    if lost:
        count(AUTHORIZER_REFRESH_TOKEN_LOST, lost)
    record(AUTHORIZERS_DUE, MetricUnit.Count, sum(run.due_left for run in runs))
    ages = [run.ticket_age for run in runs if run.ticket_age is not None]
    if ages:
        record(COMPONENT_TICKET_AGE, MetricUnit.Seconds, round(max(ages)))
    lefts = [run.authorizer_min_seconds_left for run in runs if run.authorizer_min_seconds_left is not None]
    if lefts:
        record(AUTHORIZER_MIN_SECONDS_TO_EXPIRY, MetricUnit.Seconds, round(min(lefts)))
    active = [run.active for run in runs if run.active is not None]
    if active:
        record(AUTHORIZERS_ACTIVE, MetricUnit.Count, sum(active))


class PlatformRefresher:
    """Keeps every platform's component token and its authorizers' tokens alive (module
    docstring). Built by :class:`Refresher`, whose refresh path it uses for every token."""

    def __init__(
        self, refresher: Refresher, store: TokenStore, api: ComponentAPI, clock: Callable[[], float]
    ) -> None:
        self._refresher = refresher
        self._store = store
        self._api = api
        self._clock = clock
        self._lock = threading.Lock()

    # --- one platform, one run --------------------------------------------------------
    def run(self, component: AppConfig, request: RefreshRequest, deadline: Deadline) -> PlatformReport:
        """Everything a run owes the platform (module docstring); never raises. A forced or
        scheduled run refreshes the component token; the guard and the schedule also act on
        events, due authorizers and the import."""
        report = PlatformReport(component.appid)
        platform = self._store.platform_store()
        if platform is None:
            report.errors.append(
                "ConfigError: Open Platform needs TOKEN_STORE=dynamodb (a store that can queue thousands "
                "of authorizers and keep their refresh tokens durably); docs/open-platform.md"
            )
            return report
        ticket = self._refresher.read_credential(component.appid, RecordName.COMPONENT_VERIFY_TICKET)
        self._watch_ticket(component, ticket, deadline, report)
        token: Credential | None = None
        try:
            outcome = self._refresher.refresh_subject(self.component_subject(component), request, deadline)
            report.component_refreshed = outcome.refreshed
            token = outcome.seen  # the token stored or left in place, read moments ago
        except WxTokenError as exc:
            _log_failure("component token refresh failed", exc, component_appid=component.appid)
            report.errors.append(f"component_access_token: {_describe(exc)}")
        except Exception as exc:  # one platform's bug must not cost the others their run
            logger.exception("component token refresh crashed", extra={"component_appid": component.appid})
            report.errors.append(f"component_access_token: {_describe(exc)}")
        token = token or self._refresher.read_credential(component.appid, RecordName.COMPONENT_ACCESS_TOKEN)
        now = self._clock()
        report.component_seconds_left = max(0.0, token.seconds_left(now)) if token else 0.0
        if request.trigger not in (Trigger.GUARD, Trigger.SCHEDULED) or request.appids is not None:
            return report
        if token is None or token.seconds_left(now) <= 0:
            # Every authorizer call needs it; they wait for it rather than all fail.
            logger.error(
                "no valid component token: authorizers are not refreshed until one is fetched",
                extra={"component_appid": component.appid},
            )
            return report
        try:
            self._act_on_events(component, platform, deadline, report)
            self._refresh_due(component, platform, deadline, report)
            if self._import_if_due(component, platform, deadline, report):
                # Accounts seen for the first time are due at once: start on them now.
                self._refresh_due(component, platform, deadline, report)
            self._observe(component, platform, report)
        except WxTokenError as exc:  # the store failing mid-run: what was done stays done
            _log_failure("platform run stopped early", exc, component_appid=component.appid)
            report.errors.append(f"authorizers: {_describe(exc)}")
        return report

    def refresh_authorizer(
        self, component: AppConfig, appid: str, request: RefreshRequest, deadline: Deadline
    ) -> PlatformReport:
        """One authorizer named by a request (a reader's compare-and-refresh, a forced refresh
        of one account), then put back in the queue by its new token."""
        report = PlatformReport(component.appid)
        platform = self._store.platform_store()
        if platform is None:
            report.errors.append("ConfigError: Open Platform needs TOKEN_STORE=dynamodb")
            return report
        result = self._refresh_one(component, platform, appid, request, deadline, report)
        if result is _Result.REFUSED:
            self._recover(component, platform, [appid], report)
        for failure in report.failures:
            report.errors.append(failure["error"])
        return report

    # --- subjects ---------------------------------------------------------------------
    def component_subject(self, component: AppConfig) -> Subject:
        return Subject(
            component.appid,
            lambda deadline, _force: self._mint_component(component, deadline),
            token_record=RecordName.COMPONENT_ACCESS_TOKEN,
            intent_record=RecordName.COMPONENT_MINT_INTENT,
            what="component token",
        )

    def authorizer_subject(self, component: AppConfig, appid: str) -> Subject:
        return Subject(
            appid,
            lambda deadline, _force: self._mint_authorizer(component, appid, deadline),
            per_app_metrics=False,
            what="authorizer token",
        )

    def _mint_component(self, component: AppConfig, deadline: Deadline) -> Grant:
        secret = component.app_secret
        if secret is None:
            raise MisconfiguredAppError(
                component.appid, f"apps secret entry {component.appid} has no app_secret"
            )
        ticket = self._refresher.read_credential(component.appid, RecordName.COMPONENT_VERIFY_TICKET)
        if ticket is None or ticket.seconds_left(self._clock()) <= 0:
            raise _unsent(
                ComponentTicketError(
                    None,
                    f"no valid component_verify_ticket stored for {component.appid}",
                    "WeChat pushes one every 10 minutes to the platform's 授权事件接收URL, which must be "
                    f"https://<api>/open/{component.appid}/events; wxtoken has asked WeChat to push again",
                )
            )
        return self._api.component_token(component.appid, secret, ticket.value, deadline=deadline)

    def _component_token(self, component: AppConfig) -> Credential:
        token = self._refresher.read_credential(component.appid, RecordName.COMPONENT_ACCESS_TOKEN)
        if token is None or token.seconds_left(self._clock()) <= 0:
            raise _unsent(
                RetryableWeChatError(None, f"no valid component token stored for {component.appid}")
            )
        return token

    def _with_component_token[R](
        self, component: AppConfig, deadline: Deadline, call: Callable[[str], R]
    ) -> R:
        """``call(component token)``; when WeChat refuses the stored one (another program
        fetched a component token with this secret), it is replaced at once, as a reader's
        compare-and-refresh would, and the call made once more."""
        token = self._component_token(component)
        try:
            return call(token.value)
        except TokenRejectedError:
            logger.error(
                "WeChat refused the stored component token: another program fetches component tokens "
                "with this platform's secret; replacing it",
                extra={"component_appid": component.appid},
            )
            compare = RefreshRequest(
                Trigger.COMPARE, self._clock(), (component.appid,), invalid_token=token.value
            )
            self._refresher.refresh_subject(self.component_subject(component), compare, deadline)
            return call(self._component_token(component).value)

    def _mint_authorizer(self, component: AppConfig, appid: str, deadline: Deadline) -> Grant:
        stored = self._read_refresh_token(appid)
        if stored is None or stored.component_appid != component.appid:
            # Not (or no longer) this platform's account: unauthorized, or authorized to
            # another platform of the secret, which keeps its own refresh token.
            raise _unsent(_NotOurs(None, f"{appid} holds no refresh token from platform {component.appid}"))
        answer = self._with_component_token(
            component,
            deadline,
            lambda token: self._api.authorizer_token(
                component.appid, token, appid, stored.refresh_token, deadline=deadline
            ),
        )
        if answer.refresh_token != stored.refresh_token:
            # WeChat handed out a new refresh token (the old one may stop working): keep it
            # before the access token, so that it is never the one thing lost.
            self._keep_refresh_token(appid, component.appid, answer.refresh_token, after=stored)
        return answer.grant

    def _mint_by_code(self, component: AppConfig, appid: str, code: str, deadline: Deadline) -> Grant:
        answer = self._with_component_token(
            component,
            deadline,
            lambda token: self._api.query_auth(component.appid, token, code, deadline=deadline),
        )
        if answer.appid != appid:
            raise InvalidCredentialError(
                None, f"the authorization code pushed for {appid} is {answer.appid}'s"
            )
        # WeChat's answer to a new authorization: newer than any refresh token stored before.
        self._keep_refresh_token(
            appid, component.appid, answer.refresh_token, after=self._read_refresh_token(appid)
        )
        return answer.grant

    # --- the ticket -------------------------------------------------------------------
    def _watch_ticket(
        self, component: AppConfig, ticket: Credential | None, deadline: Deadline, report: PlatformReport
    ) -> None:
        now = self._clock()
        age = ticket_age(ticket, now)
        report.ticket_age = TICKET_LIFETIME_SECONDS if age is None else age
        if age is not None and not push_restart_due(ticket, None, now):
            return
        restart = self._read(component.appid, RecordName.PUSH_TICKET_RESTART)
        last = restart.get("fetched_at") if restart else None
        if not push_restart_due(ticket, last if isinstance(last, int | float) else None, now):
            return
        logger.error(
            "no component_verify_ticket received for 20 minutes: asking WeChat to push again. Check "
            "that the platform's 授权事件接收URL is this stack's /open/<component_appid>/events and that "
            "its token and encoding_aes_key in the apps secret are the platform's",
            extra={"component_appid": component.appid, "ticket_age": None if age is None else round(age)},
        )
        if component.app_secret is None:
            return
        try:
            self._api.start_push_ticket(component.appid, component.app_secret, deadline=deadline.capped(5.0))
            self._store.write_if_newer(
                component.appid, RecordName.PUSH_TICKET_RESTART, {"fetched_at": now}, 86400
            )
        except WxTokenError as exc:
            logger.warning(
                "api_start_push_ticket failed",
                extra={
                    "component_appid": component.appid,
                    "error_type": type(exc).__name__,
                    "error": str(exc),
                },
            )

    # --- authorization events -----------------------------------------------------------
    def _act_on_events(
        self, component: AppConfig, platform: PlatformStore, deadline: Deadline, report: PlatformReport
    ) -> None:
        for appid in platform.pending_events(component.appid, _EVENTS_PER_RUN):
            if deadline.remaining() < _RESERVE_SECONDS:
                return
            raw = self._store.read_raw(appid, RecordName.AUTHORIZATION_EVENT)
            if raw is None:
                continue  # acted on by a run that overlapped this one (the index lags)
            try:
                event = AuthorizationEvent.from_record(decode(raw, "authorization event"))
            except DamagedRecordError as exc:
                logger.error("damaged authorization event dropped", extra={"appid": appid, "error": str(exc)})
                platform.delete(appid, RecordName.AUTHORIZATION_EVENT, expected=raw)
                continue
            if event.component_appid != component.appid:
                continue
            report.events += 1
            try:
                self._act_on(component, platform, appid, event, deadline, report)
            except WxTokenError as exc:
                # Left in place: the next run tries again (a store or WeChat hiccup).
                logger.error(
                    "authorization event not acted on yet",
                    extra={
                        "appid": appid,
                        "event": event.event,
                        "error_type": type(exc).__name__,
                        "error": str(exc),
                    },
                )
                report.fail(appid, exc)
                continue
            platform.delete(appid, RecordName.AUTHORIZATION_EVENT, expected=raw)

    def _act_on(
        self,
        component: AppConfig,
        platform: PlatformStore,
        appid: str,
        event: AuthorizationEvent,
        deadline: Deadline,
        report: PlatformReport,
    ) -> None:
        if event.event == "unauthorized":
            self._forget(component, platform, appid)
            return
        code = event.authorization_code
        if event.event not in ("authorized", "updateauthorized") or code is None:
            logger.info("authorization event ignored", extra={"appid": appid, "event": event.event})
            return
        # Satisfied by any token fetched after the push (an import or a refresh since).
        request = RefreshRequest(Trigger.SCHEDULED, event.fetched_at, (appid,))
        subject = Subject(
            appid,
            lambda d, _force: self._mint_by_code(component, appid, code, d),
            per_app_metrics=False,
            what="authorizer token",
        )
        try:
            outcome = self._refresher.refresh_subject(subject, request, deadline)
        except InvalidCredentialError as exc:
            # The code expired (10 minutes) or was used: its refresh token is in the list.
            logger.warning(
                "authorization code not usable; looking the account up in api_get_authorizer_list",
                extra={"appid": appid, "errcode": exc.errcode},
            )
            self._recover(component, platform, [appid], report)
            return
        logger.info("authorizer added", extra={"appid": appid, "component_appid": component.appid})
        if outcome.refreshed:
            report.refreshed += 1
        self._reschedule(component, platform, appid, outcome.seen, suspect=outcome.suspect)

    def _forget(self, component: AppConfig, platform: PlatformStore, appid: str) -> None:
        """The account withdrew its authorization: stop refreshing it and remove its tokens
        (WeChat refuses them from now on; a reader should see none rather than a dead one)."""
        with self._store.lease(appid, self._refresher.lease_seconds):
            stored = self._read_refresh_token(appid)
            if stored is not None and stored.component_appid != component.appid:
                logger.info(
                    "unauthorized push for an account another platform holds: left to it",
                    extra={"appid": appid, "component_appid": component.appid},
                )
                return
            platform.unschedule(appid)
            for name in (
                RecordName.ACCESS_TOKEN,
                RecordName.JSAPI_TICKET,
                RecordName.MINT_INTENT,
                RecordName.AUTHORIZER_REFRESH_TOKEN,
            ):
                platform.delete(appid, name)
        logger.info(
            "authorizer withdrew its authorization: its tokens are removed",
            extra={"appid": appid, "component_appid": component.appid},
        )

    # --- due authorizers ------------------------------------------------------------------
    def _refresh_due(
        self, component: AppConfig, platform: PlatformStore, deadline: Deadline, report: PlatformReport
    ) -> None:
        now = self._clock()
        done: set[str] = set()
        while deadline.remaining() >= _RESERVE_SECONDS:
            # The index lags a write by about a second: an authorizer just put back may still
            # be listed as due. It is skipped here (and its record says it is not due).
            batch = [
                q for q in platform.due(component.appid, now, _BATCH + len(done)) if q.appid not in done
            ][:_BATCH]
            if not batch:
                return
            done.update(q.appid for q in batch)
            results = _parallel(
                lambda q: self._refresh_queued(component, platform, q, deadline, report), batch
            )
            refused = [q.appid for q, result in zip(batch, results, strict=True) if result is _Result.REFUSED]
            if refused:
                self._recover(component, platform, refused, report)
        report.due_left = len(
            [q for q in platform.due(component.appid, now, _BATCH + len(done)) if q.appid not in done]
        )

    def _refresh_queued(
        self,
        component: AppConfig,
        platform: PlatformStore,
        queued: QueuedAuthorizer,
        deadline: Deadline,
        report: PlatformReport,
    ) -> _Result:
        # Satisfied by any token fetched since it fell due (a concurrent run, a reader's
        # compare-and-refresh): then it is only put back in the queue.
        request = RefreshRequest(Trigger.SCHEDULED, min(queued.due_at, self._clock()), (queued.appid,))
        return self._refresh_one(component, platform, queued.appid, request, deadline, report)

    def _refresh_one(
        self,
        component: AppConfig,
        platform: PlatformStore,
        appid: str,
        request: RefreshRequest,
        deadline: Deadline,
        report: PlatformReport,
    ) -> _Result:
        try:
            outcome = self._refresher.refresh_subject(
                self.authorizer_subject(component, appid), request, deadline
            )
        except _NotOurs:
            # Left over from an unauthorized account (a run that raced _forget, the index
            # lagging): drop it from the queue rather than alarm on it.
            platform.unschedule(appid)
            logger.info(
                "authorizer has no refresh token of this platform: out of its queue", extra={"appid": appid}
            )
            return _Result.GONE
        except RefreshTokenRejectedError:
            return _Result.REFUSED
        except Exception as exc:  # one authorizer never blocks the others
            self._failed(component, platform, appid, exc, report)
            return _Result.FAILED
        if component.jsapi_ticket:
            app = AppConfig(appid, None, jsapi_ticket=True)
            error = self._refresher.refresh_ticket_if_due(app, request, deadline, per_app_metrics=False)
            if error:
                with self._lock:
                    report.fail(appid, RetryableWeChatError(None, error))
        try:
            self._reschedule(component, platform, appid, outcome.seen, suspect=outcome.suspect)
        except WxTokenError as exc:
            logger.error(
                "could not put the authorizer back in the queue", extra={"appid": appid, "error": str(exc)}
            )
        if outcome.refreshed:
            with self._lock:
                report.refreshed += 1
            return _Result.REFRESHED
        return _Result.SKIPPED

    def _failed(
        self,
        component: AppConfig,
        platform: PlatformStore,
        appid: str,
        exc: BaseException,
        report: PlatformReport,
    ) -> None:
        if isinstance(exc, WxTokenError):
            logger.error(
                "authorizer refresh failed",
                extra={
                    "appid": appid,
                    "component_appid": component.appid,
                    "error_type": type(exc).__name__,
                    "error": str(exc),
                },
            )
        else:
            logger.exception("authorizer refresh crashed", extra={"appid": appid})
        with self._lock:
            report.fail(appid, exc)
        try:
            previous = self._read_schedule(appid)
            failures = (previous.failures if previous else 0) + 1
            now = self._clock()
            due = retry_due_at(failures, now)
            recovered_at = previous.recovered_at if previous else 0.0
            platform.schedule(
                appid,
                component.appid,
                due,
                Schedule(component.appid, due, failures, recovered_at, now).to_record(),
            )
        except WxTokenError as again:
            # Left where it was: still due, so the next run tries it again.
            logger.warning("could not back the authorizer off", extra={"appid": appid, "error": str(again)})

    def _reschedule(
        self,
        component: AppConfig,
        platform: PlatformStore,
        appid: str,
        token: Credential | None,
        *,
        suspect: bool = False,
    ) -> None:
        """Back in the queue at its slot; within a minute when the token just stored may be
        retired by a mint still in flight (the refresher left its mint intent open)."""
        token = token or self._refresher.read_credential(appid)
        now = self._clock()
        due = retry_due_at(1, now) if token is None or suspect else authorizer_due_at(appid, token, now)
        platform.schedule(
            appid, component.appid, due, Schedule(component.appid, due, 0, 0.0, now).to_record()
        )

    # --- refused refresh tokens -----------------------------------------------------------
    def _recover(
        self,
        component: AppConfig,
        platform: PlatformStore,
        appids: list[str],
        report: PlatformReport,
    ) -> None:
        """WeChat refused these accounts' refresh tokens (61023), or their authorization code
        could not be traded: the current refresh token is in api_get_authorizer_list.

        The import reads it — resumably, a bounded number of pages a run, so that one refused
        account can never eat a run at 50,000 accounts — and keeps every refresh token that
        differs, putting the account due at once. Here a pass is asked for and the account
        backs off; refused again after a full pass that began after its first refusal, it is
        lost: alarmed, and tried hourly (an account may authorize again).
        """
        now = self._clock()
        state = self._read_import(component.appid)
        wanted = False
        for appid in appids:
            schedule = self._read_schedule(appid)
            refused_at = schedule.recovered_at if schedule is not None else 0.0
            if listed_since(state, refused_at):
                self._lost(component, platform, appid, schedule, report)
                continue
            if not refused_at or now - refused_at >= RECOVERY_INTERVAL_SECONDS:
                refused_at = now
                logger.warning(
                    "WeChat refused the authorizer's refresh token; looking for the current one in "
                    "api_get_authorizer_list",
                    extra={"appid": appid, "component_appid": component.appid},
                )
            wanted = True
            failures = (schedule.failures if schedule is not None else 0) + 1
            due = retry_due_at(failures, now)
            platform.schedule(
                appid,
                component.appid,
                due,
                Schedule(component.appid, due, failures, refused_at, now).to_record(),
            )
        if wanted and (state is None or state.requested_at <= state.pass_started_at):
            base = state or AuthorizerImport(0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)
            self._write_import(
                component.appid,
                AuthorizerImport(
                    base.offset,
                    base.started_at,
                    base.completed_at,
                    base.pass_started_at,
                    now,
                    base.total,
                    0.0,
                ),
                base,
            )

    def _lost(
        self,
        component: AppConfig,
        platform: PlatformStore,
        appid: str,
        schedule: Schedule | None,
        report: PlatformReport,
    ) -> None:
        now = self._clock()
        logger.error(
            "WeChat refuses this authorizer's refresh token and api_get_authorizer_list has no other: the "
            "account must authorize the platform again (its token expires; readers get errors)",
            extra={"appid": appid, "component_appid": component.appid},
        )
        with self._lock:
            report.lost += 1
            report.fail(appid, RefreshTokenRejectedError(61023, "refresh token refused and not in the list"))
        failures = (schedule.failures if schedule is not None else 0) + 1
        recovered_at = schedule.recovered_at if schedule is not None else now
        due = now + LOST_RETRY_SECONDS
        platform.schedule(
            appid,
            component.appid,
            due,
            Schedule(component.appid, due, failures, recovered_at, now).to_record(),
        )

    # --- the import -------------------------------------------------------------------------
    def _import_if_due(
        self, component: AppConfig, platform: PlatformStore, deadline: Deadline, report: PlatformReport
    ) -> bool:
        """Read the list if a pass is due (module docstring), at most
        :data:`IMPORT_PAGES_PER_RUN` pages, under the platform's import lease (overlapping runs
        never read it twice). Returns whether new accounts were queued."""
        state = self._read_import(component.appid)
        if state is not None:
            report.active = state.total
        if not import_due(state, self._clock()) or deadline.remaining() < 2 * _RESERVE_SECONDS:
            return False
        try:
            with self._store.lease(f"{component.appid}-import", _IMPORT_LEASE_SECONDS):
                return self._import(component, platform, deadline, report)
        except LeaseBusyError:
            return False  # another run is reading the list right now

    def _import(
        self, component: AppConfig, platform: PlatformStore, deadline: Deadline, report: PlatformReport
    ) -> bool:
        state = self._read_import(component.appid)  # again, under the lease
        now = self._clock()
        if not import_due(state, now):
            return False
        base = state or AuthorizerImport(0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)
        resuming = base.offset > 0
        started_at = base.started_at if resuming else now
        token = self._component_token(component)
        queued = 0
        total, offset = base.total, base.offset
        # Taken before the list is read: a refresh token WeChat handed out after this (a
        # refresh's rotation, a new authorization) is newer than the listed one and wins.
        listed_at = self._clock()
        finished = False
        pages = self._api.authorizers(component.appid, token.value, deadline=deadline, start=base.offset)
        for number, (offset, total, page) in enumerate(pages, start=1):
            outcomes = _parallel(lambda a: self._import_one(component, platform, a, listed_at), page)
            report.imported += outcomes.count(_Imported.NEW)
            queued += len(outcomes) - outcomes.count(_Imported.KNOWN)
            if offset >= total:
                finished = True
                break
            if number >= IMPORT_PAGES_PER_RUN or deadline.remaining() < 2 * _RESERVE_SECONDS:
                break
        else:
            finished = True  # the list ended (WeChat's total_count may lag its pages)
        if not finished:
            base = self._write_import(
                component.appid,
                AuthorizerImport(
                    offset, started_at, base.completed_at, base.pass_started_at, base.requested_at, total, 0.0
                ),
                base,
            )
            logger.info(
                "authorizer import continues next run",
                extra={"component_appid": component.appid, "offset": offset, "total": total},
            )
            return queued > 0
        done_at = self._clock()
        self._write_import(
            component.appid,
            AuthorizerImport(0, started_at, done_at, started_at, base.requested_at, total, 0.0),
            base,
        )
        report.active = total
        logger.info(
            "authorizers imported from api_get_authorizer_list",
            extra={
                "component_appid": component.appid,
                "total": total,
                "queued": queued,
            },
        )
        return queued > 0

    def _import_one(
        self, component: AppConfig, platform: PlatformStore, listed: ListedAuthorizer, listed_at: float
    ) -> _Imported:
        """Keep the listed refresh token unless ours is the same or newer, and queue the
        account at once when it is new or its refresh token changed (a refused one is
        replaced so within a minute)."""
        current = self._read_refresh_token(listed.appid)
        if current is not None and current.refresh_token == listed.refresh_token:
            return _Imported.KNOWN
        written = self._store.write_if_newer(
            listed.appid,
            RecordName.AUTHORIZER_REFRESH_TOKEN,
            RefreshToken(listed.refresh_token, component.appid, listed_at).to_record(),
            None,
        )
        if not written:
            return _Imported.KNOWN  # a newer one was stored since the list was read
        now = self._clock()
        schedule = Schedule(component.appid, now, 0, 0.0, now)
        if current is not None:
            previous = self._read_schedule(listed.appid)
            if previous is not None:
                schedule = Schedule(component.appid, now, previous.failures, previous.recovered_at, now)
        platform.schedule(listed.appid, component.appid, now, schedule.to_record())
        return _Imported.NEW if current is None else _Imported.CHANGED

    # --- what the dashboard shows ---------------------------------------------------------
    def _observe(self, component: AppConfig, platform: PlatformStore, report: PlatformReport) -> None:
        """The least time left among the authorizers at the head of the queue: the ones due
        soonest, failing ones included (they back off by minutes, so they stay near it)."""
        now = self._clock()
        lefts: list[float] = []
        for queued in platform.due(component.appid, now + _FAR_FUTURE_SECONDS, _OBSERVED_HEAD):
            token = self._refresher.read_credential(queued.appid)
            if token is not None:  # none: a new account being fetched, or one leaving the queue
                lefts.append(max(0.0, token.seconds_left(now)))
        if lefts:
            report.authorizer_min_seconds_left = min(lefts)

    # --- records ------------------------------------------------------------------------------
    def _read(self, appid: str, name: RecordName) -> dict[str, Any] | None:
        try:
            return self._store.read(appid, name)
        except DamagedRecordError:
            return None

    def _read_as[R](self, appid: str, name: RecordName, parse: Callable[[dict[str, Any]], R]) -> R | None:
        """``name``'s record parsed by ``parse``; ``None`` when there is none or it is damaged."""
        raw = self._read(appid, name)
        try:
            return parse(raw) if raw else None
        except DamagedRecordError:
            return None

    def _read_refresh_token(self, appid: str) -> RefreshToken | None:
        return self._read_as(appid, RecordName.AUTHORIZER_REFRESH_TOKEN, RefreshToken.from_record)

    def read_component_of(self, appid: str) -> str | None:
        """The platform an authorizer authorized (``None``: not an authorizer we know)."""
        stored = self._read_refresh_token(appid)
        return stored.component_appid if stored is not None else None

    def _read_schedule(self, appid: str) -> Schedule | None:
        return self._read_as(appid, RecordName.REFRESH_SCHEDULE, Schedule.from_record)

    def _read_import(self, component_appid: str) -> AuthorizerImport | None:
        return self._read_as(component_appid, RecordName.AUTHORIZER_IMPORT, AuthorizerImport.from_record)

    def _write_import(
        self, component_appid: str, state: AuthorizerImport, previous: AuthorizerImport
    ) -> AuthorizerImport:
        """Store ``state`` over ``previous`` (its ``fetched_at`` just after the previous one's,
        so a slow clock never makes the write lose); returns what was written."""
        fetched_at = max(self._clock(), previous.fetched_at + 0.001)
        state = AuthorizerImport(
            state.offset,
            state.started_at,
            state.completed_at,
            state.pass_started_at,
            state.requested_at,
            state.total,
            fetched_at,
        )
        self._store.write_if_newer(component_appid, RecordName.AUTHORIZER_IMPORT, state.to_record(), None)
        return state

    def _keep_refresh_token(
        self, appid: str, component_appid: str, refresh_token: str, *, after: RefreshToken | None
    ) -> None:
        """Store the refresh token WeChat just handed out in answer to ``after`` (the one it
        was asked with, or the one stored before a new authorization): it is newer than that
        one, whatever this container's clock says. Refused only when another was stored
        meanwhile; then :class:`StoreError` (if WeChat refuses the stored one, the import
        finds the current one)."""
        fetched_at = max(self._clock(), after.fetched_at + 0.001 if after is not None else 0.0)
        record = RefreshToken(refresh_token, component_appid, fetched_at)
        if not self._store.write_if_newer(
            appid, RecordName.AUTHORIZER_REFRESH_TOKEN, record.to_record(), None
        ):
            raise StoreError(
                f"could not keep the new refresh token of {appid}: another was stored meanwhile (if WeChat "
                "refuses it, the next run looks the current one up in api_get_authorizer_list)"
            )
