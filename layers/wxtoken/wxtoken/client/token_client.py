"""What business code uses: the current access token (or jsapi ticket), and WeChat API calls
that recover from a rejected token. Works in a Lambda function and in any Python service::

    from wxtoken.client import get_client

    token = get_client().access_token("wx0123456789abcdef")
    menu = get_client().call("wx0123456789abcdef", "GET", "/cgi-bin/get_current_selfmenu_info")

Reading. A process reads each record from the store at most once per ``cache_seconds``
(60 s) per app, whatever the request rate and however many threads ask at once: SSM's
GetParameter quota (40 TPS by default) is shared by every reader of the account, and the
refresh function needs it too. 60 s is well inside WeChat's 5-minute overlap, so after a
forced refresh every reader moves to the new token while the old one still works. A cached
token is never handed out past the record's ``expires_at`` less a safety margin, so a caller
never gets a token in its last moments.

Recovering. When WeChat rejects a token (40001, 40014, 42001), :meth:`TokenClient.call` asks
the refresh function for a compare-and-refresh (``{"appid", "invalid_token"}``: it refreshes
only if that is still the stored token), reads the store again and retries the call once.
It never loops, and never asks WeChat for a token itself: each ``/cgi-bin/token`` call
retires the token that every other reader holds. However many threads of a process see the
same token rejected, the refresh function is asked once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from wxtoken.apps import AppsSource
from wxtoken.budget import READER_REFRESH_INVOKE, CallBudget
from wxtoken.client.requesters import LambdaRefreshRequester, RefreshRequester, UnconfiguredRefreshRequester
from wxtoken.config import Settings
from wxtoken.deadline import Deadline
from wxtoken.errors import (
    DamagedRecordError,
    RefreshRequestError,
    StoreError,
    TokenRejectedError,
    TokenUnavailableError,
)
from wxtoken.observability import TOKEN_CACHE_HIT, TOKEN_CACHE_MISS, count, logger
from wxtoken.store import open_store
from wxtoken.store.base import Credential, RecordName, TokenStore
from wxtoken.wechat.api import WeChatAPI
from wxtoken.wechat.wiring import build_wechat_api

__all__ = ["TokenClient", "get_client"]

DEFAULT_CACHE_SECONDS = 60.0
# A token with less than this left is not handed out: a call made with it could still be
# in flight when WeChat starts answering 42001.
DEFAULT_SAFETY_SECONDS = 30.0
# After a read found nothing usable, or failed while a cached token was still good, the
# store is asked again no sooner than this: readers must not spend the store's quota (which
# the refresh function needs to repair things) while it is down or empty.
DEFAULT_RETRY_SECONDS = 5.0
DEFAULT_CALL_SECONDS = 10.0
_FORCE_HINT = (
    "check the refresh function's errors and logs, or force a refresh: aws lambda invoke "
    "--function-name <RefreshTokenFunctionName> --cli-binary-format raw-in-base64-out "
    '--payload \'{{"force": true, "appid": "{appid}"}}\' /dev/stdout'
)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One cached read of a record: the credential, or why there was none usable."""

    credential: Credential | None
    read_at: float
    fresh_until: float
    problem: str = ""

    def fresh(self, now: float) -> bool:
        # A clock that stepped back (NTP) must not stretch the window.
        return self.read_at <= now < self.fresh_until


@dataclass(frozen=True, slots=True)
class _Failure:
    """A compare-and-refresh of the rejected token with this digest failed at ``failed_at``."""

    digest: str
    failed_at: float
    until: float
    message: str


@dataclass(slots=True)
class _Flights:
    """In-flight work by key: concurrent callers of the same key share one run of it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: dict[Hashable, Future[Any]] = field(default_factory=dict)

    def run[T](self, key: Hashable, done: Callable[[], T | None], work: Callable[[], T]) -> T:
        """``done()`` if it has an answer, else the result of the one ``work()`` for ``key``.

        ``done`` is asked under the lock, and ``work`` publishes its result (to the cache)
        before its flight ends, so a caller arriving just after a flight never repeats it.
        """
        leader = False
        flight: Future[Any] | None = None
        try:
            with self.lock:
                answer = done()
                if answer is not None:
                    return answer
                flight = self.running.get(key)
                if flight is None:
                    leader = True
                    flight = self.running[key] = Future()
            if not leader:
                result: T = flight.result()
                return result
            result = work()
            flight.set_result(result)
            return result
        except BaseException as exc:
            # Whatever stops the leader, at whatever point (the webhook's time limit raises
            # where the handler stands), its followers get an answer rather than waiting for
            # ever; a stop that is not an error reaches them as one.
            if leader and flight is not None and not flight.done():
                stop = TokenUnavailableError("the read was interrupted")
                flight.set_exception(exc if isinstance(exc, Exception) else stop)
            raise
        finally:
            if leader:
                with self.lock:
                    self.running.pop(key, None)


class TokenClient:
    """Hands out the stored tokens and tickets, cached, and calls WeChat's API with them.

    Thread-safe; build one per process (:func:`get_client`) and keep it.
    """

    def __init__(
        self,
        *,
        store: TokenStore,
        wechat: WeChatAPI,
        refresher: RefreshRequester,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        safety_seconds: float = DEFAULT_SAFETY_SECONDS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._wechat = wechat
        self._refresher = refresher
        self._cache_seconds = cache_seconds
        self._safety_seconds = safety_seconds
        self._retry_seconds = min(retry_seconds, cache_seconds)
        self._clock = clock
        self._cache: dict[tuple[str, RecordName], _Entry] = {}
        self._flights = _Flights()
        # Per app, a digest of the last rejected token the refresh function replaced.
        self._replaced: dict[str, str] = {}
        self._failures: dict[str, _Failure] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TokenClient:
        """A client on the store the environment names (:meth:`Settings.reader_from_env`:
        the store's variables, as the refresh function has them; no apps secret needed).

        With ``REFRESH_FUNCTION_NAME`` set, rejected tokens are replaced by invoking that
        function; without it but with ``WECHAT_APPS_SECRET_ID``, by refreshing in this process
        (which then needs an egress IP on WeChat's allow-list); with neither, reading works and
        :meth:`call` raises :class:`ConfigError` naming them when WeChat rejects a token.
        Raises :class:`ConfigError` on a missing or bad store setting.
        """
        return cls.from_settings(Settings.reader_from_env(environ))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: TokenStore | None = None,
        invoke_budget: CallBudget = READER_REFRESH_INVOKE,
        boto3_session: Any = None,
    ) -> TokenClient:
        """Like :meth:`from_env`, from settings already read (say, by the webhook, which passes
        the store it already opened, its tighter ``invoke_budget`` for the refresh function's
        invoke, and the boto3 Session its other clients are made in)."""
        store = store if store is not None else open_store(settings, boto3_session=boto3_session)
        wechat = build_wechat_api(settings, boto3_session=boto3_session)
        requester: RefreshRequester
        if settings.refresh_function_name:
            requester = LambdaRefreshRequester(settings.refresh_function_name, budget=invoke_budget)
        elif not settings.apps_secret_id:
            requester = UnconfiguredRefreshRequester()
        else:
            # Only then does a reader load the writer: it refreshes in this process, sharing
            # this client's store and HTTP session rather than opening its own.
            from wxtoken.refresh.in_process import InProcessRefreshRequester
            from wxtoken.refresh.refresher import Refresher

            refresher = Refresher(
                settings=settings,
                store=store,
                wechat=wechat,
                apps=AppsSource(settings.required_apps_secret_id, max_age=settings.secret_cache_seconds),
            )
            requester = InProcessRefreshRequester(refresher)
        return cls(store=store, wechat=wechat, refresher=requester)

    @property
    def wechat_api_base(self) -> str:
        """WeChat's API base this client calls (``WECHAT_API_BASE``, no trailing slash): for
        callers with their own HTTP client, so that they reach the same WeChat (a proxy, the
        stand-in) as wxtoken does."""
        return self._wechat.base_url

    # --- reading ---------------------------------------------------------------------
    def access_token(self, appid: str) -> str:
        """The app's current access token, valid for at least ``safety_seconds`` more.

        Raises :class:`TokenUnavailableError` when the store holds none that is usable,
        :class:`StoreError` when the store cannot be read and nothing usable is cached.
        """
        return self._credential(appid, RecordName.ACCESS_TOKEN).value

    def credential(self, appid: str) -> Credential:
        """The access token with its ``expires_at`` (what the token API hands out).

        Raises like :meth:`access_token`.
        """
        return self._credential(appid, RecordName.ACCESS_TOKEN)

    def jsapi_ticket(self, appid: str) -> str:
        """The app's current JS-SDK ticket (apps with ``"jsapi_ticket": true`` only).

        Raises like :meth:`access_token`.
        """
        return self._credential(appid, RecordName.JSAPI_TICKET).value

    def _credential(self, appid: str, name: RecordName) -> Credential:
        key = (appid, name)
        entry = self._cache.get(key)
        if entry is None or not entry.fresh(self._clock()):
            # A miss waits for a store read (its own, or the one in flight for the same record).
            count(TOKEN_CACHE_MISS)
            entry = self._flights.run(
                ("read", appid, name), lambda: self._fresh_entry(key), lambda: self._read(appid, name)
            )
        else:
            count(TOKEN_CACHE_HIT)
        if entry.credential is None:
            raise TokenUnavailableError(entry.problem)
        return entry.credential

    def _fresh_entry(self, key: tuple[str, RecordName]) -> _Entry | None:
        entry = self._cache.get(key)
        return entry if entry is not None and entry.fresh(self._clock()) else None

    def _read(self, appid: str, name: RecordName, *, keep_cached_on_error: bool = True) -> _Entry:
        """Read the store once and cache what it holds (single-flighted by the caller)."""
        key = (appid, name)
        try:
            raw = self._store.read(appid, name)
            credential = Credential.from_record(name, raw) if raw else None
            if credential is not None and not credential.plausible(self._clock()):
                raise DamagedRecordError(f"stored {name} record has times far in the future")
        except DamagedRecordError:
            # Nothing usable is stored (the refresher replaces it on its next run): say so,
            # as for a missing record, and ask again soon.
            now = self._clock()
            problem = self._missing(appid, name, "the stored record is damaged")
            return self._put(key, None, now, now + self._retry_seconds, problem)
        except StoreError as exc:
            now = self._clock()
            cached = self._cache.get(key)
            held = cached.credential if cached is not None else None
            if not keep_cached_on_error or held is None or self._usable_until(held) <= now:
                raise
            # A store outage (SSM throttling, a Redis failover) does not take readers down
            # while the token they hold is good; the store is tried again a little later.
            logger.debug(
                "store read failed; serving the cached record",
                extra={"appid": appid, "record": name.value, "error": str(exc)},
            )
            return self._put(key, held, now, min(now + self._retry_seconds, self._usable_until(held)))
        now = self._clock()
        logger.debug(
            "store read", extra={"appid": appid, "record": name.value, "found": credential is not None}
        )
        if credential is None:
            return self._put(
                key, None, now, now + self._retry_seconds, self._missing(appid, name, "none stored")
            )
        until = self._usable_until(credential)
        if until <= now:
            left = credential.seconds_left(now)
            problem = "the stored one has expired" if left <= 0 else f"the stored one expires in {left:.0f}s"
            return self._put(key, None, now, now + self._retry_seconds, self._missing(appid, name, problem))
        return self._put(key, credential, now, min(now + self._cache_seconds, until))

    def _put(
        self,
        key: tuple[str, RecordName],
        credential: Credential | None,
        now: float,
        until: float,
        problem: str = "",
    ) -> _Entry:
        entry = _Entry(credential, now, until, problem)
        with self._flights.lock:
            cached = self._cache.get(key)
            # A read that started before a newer one finished must not bring back an older
            # token (the newer one may have replaced a token WeChat rejected).
            if (
                cached is not None
                and cached.credential is not None
                and credential is not None
                and cached.credential.fetched_at > credential.fetched_at
                and cached.fresh(now)
            ):
                return cached
            self._cache[key] = entry
        return entry

    def _usable_until(self, credential: Credential) -> float:
        return credential.expires_at - self._safety_seconds

    def _missing(self, appid: str, name: RecordName, problem: str) -> str:
        what = (
            "access_token" if name is RecordName.ACCESS_TOKEN else 'jsapi_ticket (needs "jsapi_ticket": true)'
        )
        return f"no usable {what} for {appid} in the store ({problem}): {_FORCE_HINT.format(appid=appid)}"

    # --- calling WeChat --------------------------------------------------------------
    def call(
        self,
        appid: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        *,
        deadline: Deadline | None = None,
    ) -> dict[str, Any]:
        """Call a WeChat API (``path`` such as ``/cgi-bin/user/info``) with the app's token.

        Returns WeChat's JSON answer. A rejected token (40001, 40014, 42001) is replaced
        through the refresh function and the call is retried once; if WeChat rejects the
        new token too, :class:`TokenRejectedError` is raised. Other WeChat errors raise
        their :class:`WeChatAPIError` subclass; a failed replacement raises
        :class:`RefreshRequestError`, and :class:`ConfigError` when this reader has neither
        REFRESH_FUNCTION_NAME nor WECHAT_APPS_SECRET_ID. ``deadline`` bounds WeChat's retries
        (default 10 s).
        """
        deadline = deadline or Deadline.after(DEFAULT_CALL_SECONDS)
        token = self.access_token(appid)
        try:
            return self._wechat.call(
                method, path, access_token=token, deadline=deadline, params=params, json=json
            )
        except TokenRejectedError as exc:
            logger.debug(
                "token rejected; asking for a compare-and-refresh", extra={"appid": appid, "path": path}
            )
            replacement = self.replace_rejected(appid, token)
            if replacement is None:
                raise TokenRejectedError(
                    exc.errcode,
                    exc.errmsg,
                    "the refresh function kept the rejected token: see its logs; a process "
                    "fetching tokens outside wxtoken retires wxtoken's (docs/how-it-works.md)",
                ) from None
        try:
            return self._wechat.call(
                method, path, access_token=replacement, deadline=deadline, params=params, json=json
            )
        except TokenRejectedError as exc:
            # No second round: WeChat rejecting a token minted moments ago means something
            # else fetches tokens for this app, and looping would only fight it.
            raise TokenRejectedError(
                exc.errcode,
                exc.errmsg,
                "rejected again right after a refresh: something outside wxtoken is fetching "
                "tokens for this app (each /cgi-bin/token call retires the previous token); "
                "make wxtoken the only caller of the token API",
            ) from None

    def replace_rejected(self, appid: str, rejected: str) -> str | None:
        """The token to retry with after WeChat rejected ``rejected`` (40001, 40014, 42001).

        For callers that make WeChat calls with their own HTTP client (the wechatpy drop-in)
        and so cannot use :meth:`call`: ask once per rejected call, retry once with the answer,
        and raise if WeChat rejects that too (never loop: a token rejected right after a
        refresh means something outside wxtoken fetches tokens for the app).

        Returns a token other than ``rejected``, or ``None`` if the refresh function kept the
        rejected one (then there is nothing better to retry with). One compare-and-refresh per
        rejected token per process: concurrent callers wait for the one in flight, later ones
        find its replacement cached; a token that is no longer the stored one costs no refresh.
        Raises :class:`RefreshRequestError` when the refresh failed (and, for ``retry_seconds``
        after, without asking again), :class:`TokenUnavailableError` or :class:`StoreError`
        when the store then holds nothing usable or cannot be read.
        """
        key = (appid, RecordName.ACCESS_TOKEN)
        digest = hashlib.sha256(rejected.encode()).hexdigest()

        def replaced() -> Credential | None:
            entry = self._fresh_entry(key)
            if entry is not None and entry.credential is not None and entry.credential.value != rejected:
                return entry.credential
            return None

        def replace() -> Credential:
            if self._replaced.get(appid) != digest:
                self._compare_and_refresh(appid, rejected, digest)
                self._replaced[appid] = digest
            # Bypass the cache: it may still hold the rejected token.
            entry = self._read(appid, RecordName.ACCESS_TOKEN, keep_cached_on_error=False)
            if entry.credential is None:
                raise TokenUnavailableError(entry.problem)
            return entry.credential

        credential = self._flights.run(("replace", appid, digest), replaced, replace)
        return None if credential.value == rejected else credential.value

    def _compare_and_refresh(self, appid: str, rejected: str, digest: str) -> None:
        """Ask the refresher; after a failure, answer with it for ``retry_seconds``.

        While WeChat refuses tokens (an IP off the allow-list, the daily quota spent), every
        compare-and-refresh of a still-stored token costs a call to WeChat's token API (2,000 a
        day): a busy reader must not turn its request rate into that many.
        """
        now = self._clock()
        failure = self._failures.get(appid)
        if failure is not None and failure.digest == digest and failure.failed_at <= now < failure.until:
            raise RefreshRequestError(f"{failure.message} (asked {now - failure.failed_at:.0f}s ago)")
        try:
            self._refresher.compare_and_refresh(appid, rejected)
        except RefreshRequestError as exc:
            self._failures[appid] = _Failure(digest, now, now + self._retry_seconds, str(exc))
            raise
        self._failures.pop(appid, None)


_default_client: TokenClient | None = None
_default_client_lock = threading.Lock()


def get_client() -> TokenClient:
    """The process's :class:`TokenClient`, built from the environment on first use."""
    global _default_client
    client = _default_client
    if client is None:
        with _default_client_lock:
            if _default_client is None:
                _default_client = TokenClient.from_env()
            client = _default_client
    return client
