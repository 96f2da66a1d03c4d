"""WeChat's HTTP API: the token, stable_token and jsapi ticket endpoints, and generic calls.

Replays: every call to ``/cgi-bin/token`` (and every forced ``stable_token``) mints a new
token, and WeChat keeps only the newest *previous* token valid for 5 minutes
(getAccessToken: "重复获取将导致上次获取的access_token失效"). After an ambiguous failure
(read timeout, 5xx, garbled body, a broken connection: WeChat may have minted a token we
never saw) the stored token is doomed whatever we do: the lost token retires it in 5
minutes, and any later call — a replay now, the guard, a Lambda retry — retires it too.
Waiting protects nothing and costs readers their token, so a classic token call is replayed
**once, at once**, after an ambiguous failure (``ambiguous_replays=1``); the refresher then
stores the replay's token, or marks the stored one suspect so the guard replaces it inside
the grace. A forced ``stable_token`` is never replayed as such (each one spends one of 20 a
day): the refresher asks again in normal mode, which hands back the current token.

One retry policy covers the three ways a call can fail transiently — the transport (a
timeout, a refused connection), the HTTP status (5xx, 429) and WeChat's own "system busy"
errcode -1 inside a 200 answer — and it is bounded by the caller's :class:`Deadline`.
urllib3's ``Retry`` sees only the first two and knows no deadline, so this loop is
written here (exponential backoff with full jitter) and urllib3's own retries are off.

Secrets: the classic token URL carries the AppSecret in its query string, and urllib3's
exceptions quote the URL. No exception text from the HTTP layer is ever passed on; errors are
built from the path alone and raised ``from None`` so no traceback chains the original.

The HTTP layer is :mod:`wxtoken.wechat.http` (urllib3, which botocore has loaded already; it
says why not requests), made on the first call: most guard runs never call WeChat.
"""

from __future__ import annotations

import json as json_module
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from wxtoken.deadline import Deadline
from wxtoken.errors import RetryableWeChatError, WeChatAPIError, WeChatTransportError
from wxtoken.frozen import Frozen
from wxtoken.observability import TRANSPORT_ERRCODE, WECHAT_API_ERROR, WECHAT_API_LATENCY, put_metric, tracer
from wxtoken.wechat.errcodes import error_for

if TYPE_CHECKING:
    from wxtoken.wechat.http import WeChatHttp

TOKEN_PATH = "/cgi-bin/token"
STABLE_TOKEN_PATH = "/cgi-bin/stable_token"
TICKET_PATH = "/cgi-bin/ticket/getticket"
# The Endpoint dimension of the metrics: every other path is "api" (bounded cardinality).
_ENDPOINTS = {TOKEN_PATH: "token", STABLE_TOKEN_PATH: "stable_token", TICKET_PATH: "getticket"}

# An attempt with less time than this left is not worth starting.
_MIN_ATTEMPT_SECONDS = 0.5
# Set (by _request, on its answer) when an earlier attempt timed out while WeChat may still
# have been processing it; not a key WeChat sends.
_IN_FLIGHT_KEY = "__wxtoken_earlier_attempt_in_flight"
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 4.0


class Grant(Frozen):
    """A credential WeChat handed out: the token or ticket, and its lifetime in seconds.

    ``maybe_overtaken``: an earlier attempt of the same call timed out while WeChat may
    still have been working on it, so WeChat may mint that attempt's token after this one
    and retire this one 5 minutes later.
    """

    value: str
    expires_in: int
    maybe_overtaken: bool = False

    def __repr__(self) -> str:  # the value is a secret
        return f"Grant(value=***, expires_in={self.expires_in})"


class WeChatAPI:
    """WeChat's HTTP API: the token endpoints, the jsapi ticket and any authenticated call,
    with one retry policy bounded by the caller's :class:`Deadline` (module docstring).
    Raises :class:`~wxtoken.errors.WeChatAPIError` subclasses; never an HTTP library's exception."""

    def __init__(
        self,
        base_url: str,
        *,
        http: WeChatHttp | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        max_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        proxy: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Made on the first call (the module docstring says why); app threads share it.
        self._http_client = http
        self._http_lock = threading.Lock()
        # WeChat's calls only (boto3 never sees it): the proxy's address is the one on WeChat's
        # IP allow-list. It wins over HTTPS_PROXY from the environment. Its URL may carry
        # credentials: never logged.
        self._proxy = proxy
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._jitter = jitter

    # --- token endpoints -------------------------------------------------------------
    def access_token(
        self, appid: str, secret: str, *, deadline: Deadline, stable: bool = False, force: bool = False
    ) -> Grant:
        """A token from ``/cgi-bin/token`` (each call mints a new one) or ``stable_token``.

        ``force`` applies to ``stable_token`` only (WeChat allows 20 a day, 30 s apart).
        Raises a :class:`WeChatAPIError` subclass; retryable ones only once retries are spent.
        """
        if stable:
            body = {
                "grant_type": "client_credential",
                "appid": appid,
                "secret": secret,
                "force_refresh": force,
            }
            payload = self._request(
                "POST",
                STABLE_TOKEN_PATH,
                json=body,
                deadline=deadline,
                token_api=True,
                ambiguous_replays=0 if force else None,
            )
        else:
            params = {"grant_type": "client_credential", "appid": appid, "secret": secret}
            payload = self._request(
                "GET", TOKEN_PATH, params=params, deadline=deadline, token_api=True, ambiguous_replays=1
            )
        return grant_in(payload, "access_token", TOKEN_PATH if not stable else STABLE_TOKEN_PATH)

    def jsapi_ticket(self, access_token: str, *, deadline: Deadline) -> Grant:
        params = {"access_token": access_token, "type": "jsapi"}
        payload = self._request("GET", TICKET_PATH, params=params, deadline=deadline, token_api=False)
        return grant_in(payload, "ticket", TICKET_PATH)

    def call(
        self,
        method: str,
        path: str,
        *,
        access_token: str,
        deadline: Deadline,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """Any authenticated API call; 40001/40014/42001 raise :class:`TokenRejectedError`."""
        query = {**(params or {}), "access_token": access_token}
        return self._request(method, path, params=query, json=json, deadline=deadline, token_api=False)

    def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        deadline: Deadline,
        params: Mapping[str, Any] | None = None,
        mints: bool = False,
    ) -> dict[str, Any]:
        """A JSON POST under the one retry policy (Open Platform's component endpoints).

        ``mints``: the call hands out a new credential and may retire the previous one, so an
        ambiguous failure is replayed once only, as for ``/cgi-bin/token``. 40001/40014/42001
        raise :class:`TokenRejectedError` (the component_access_token in ``params`` was
        refused) unless the call is itself the token endpoint (``mints`` without ``params``).
        """
        token_api = mints and not params
        return self._request(
            "POST",
            path,
            params=params,
            json=dict(body),
            deadline=deadline,
            token_api=token_api,
            ambiguous_replays=1 if mints else None,
        )

    # --- the one retry loop ----------------------------------------------------------
    @tracer.capture_method(capture_response=False)  # answers carry tokens
    def _request(
        self,
        method: str,
        path: str,
        *,
        deadline: Deadline,
        token_api: bool,
        ambiguous_replays: int | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """One call, retried within ``deadline``; see the module docstring.

        ``ambiguous_replays`` bounds how many times a call WeChat may already have processed
        is sent again (``None``: as often as the retry policy allows — for calls that change
        nothing at WeChat). Failures where WeChat certainly never saw the request (refused
        connection, connect timeout, 429, errcode -1) do not count against it.
        """
        url = f"{self.base_url}{path}"
        replays_left = ambiguous_replays
        minting = ambiguous_replays is not None
        # A call that mints is not worth sending with less time than its read timeout: its
        # answer would likely be lost too, and a second lost token retires the stored one at
        # once instead of in 5 minutes.
        min_attempt = max(_MIN_ATTEMPT_SECONDS, self._read_timeout) if minting else _MIN_ATTEMPT_SECONDS
        processed_earlier = False  # an earlier attempt may have been processed (minted)
        in_flight = False  # ... and may still be, so it could mint after a later attempt
        endpoint = _ENDPOINTS.get(path, "api")
        last: RetryableWeChatError = WeChatTransportError(
            f"no time left to call WeChat {path}", maybe_processed=False
        )
        for attempt in range(1, self._max_attempts + 1):
            left = deadline.remaining()
            if left < min_attempt:
                break
            timeout = (min(self._connect_timeout, left), min(self._read_timeout, left))
            try:
                payload = self._once(endpoint, method, url, path, params, json, timeout)
                errcode = payload.get("errcode", 0)
                if errcode not in (0, None):
                    raise error_for(_as_int(errcode), str(payload.get("errmsg", "")), on_token_api=token_api)
                if in_flight:
                    payload[_IN_FLIGHT_KEY] = True
                return payload
            except WeChatAPIError as exc:
                put_metric(
                    WECHAT_API_ERROR,
                    MetricUnit.Count,
                    1,
                    Endpoint=endpoint,
                    ErrCode=TRANSPORT_ERRCODE if exc.errcode is None else str(exc.errcode),
                )
                # Whatever the last attempt says, an earlier one may have minted: the caller
                # must not take this failure for "nothing happened at WeChat".
                exc.processed_earlier = processed_earlier
                if not isinstance(exc, RetryableWeChatError):
                    raise
                if isinstance(exc, WeChatTransportError) and exc.maybe_processed and minting:
                    processed_earlier = True
                    in_flight = in_flight or exc.maybe_in_flight
                    if replays_left is not None and replays_left <= 0:
                        failure = WeChatTransportError(
                            f"{exc.errmsg}; WeChat may have processed it (a token call may have minted "
                            "a token that retires the stored one)"
                        )
                        failure.processed_earlier = True
                        raise failure from None
                    if replays_left is not None:
                        replays_left -= 1
                last = exc
            if attempt == self._max_attempts:
                break
            delay = self._jitter() * min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1))
            if deadline.remaining() - delay < min_attempt:
                break
            self._sleep(delay)
        last.processed_earlier = processed_earlier
        raise last from None

    def _http(self) -> WeChatHttp:
        client = self._http_client
        if client is None:
            with self._http_lock:
                if self._http_client is None:
                    from wxtoken.wechat.http import WeChatHttp

                    self._http_client = WeChatHttp(proxy=self._proxy)
                client = self._http_client
        return client

    def _once(
        self,
        endpoint: str,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        timeout: tuple[float, float],
    ) -> dict[str, Any]:
        """One HTTP attempt, its round trip reported (``WeChatApiLatency``) answered or not."""
        from urllib3 import exceptions as http_errors

        client = self._http()
        started = time.perf_counter()
        try:
            try:
                status, body = client.request(method, url, params=params, json_body=json, timeout=timeout)
            except http_errors.NewConnectionError:  # refused, or no route: nothing was sent
                raise WeChatTransportError(
                    f"could not connect to WeChat for {path}", maybe_processed=False
                ) from None
            except http_errors.ConnectTimeoutError:
                raise WeChatTransportError(
                    f"could not connect to WeChat for {path} within {timeout[0]:.1f}s", maybe_processed=False
                ) from None
            except http_errors.ReadTimeoutError:
                raise WeChatTransportError(
                    f"WeChat {path} did not answer within {timeout[1]:.1f}s", maybe_in_flight=True
                ) from None
            except http_errors.ProxyError as exc:
                # urllib3 raises ProxyError only before it has connected to the proxy; a
                # refused or timed-out connection to it (NewConnectionError, name resolution
                # included, is a ConnectTimeoutError) certainly sent nothing. Anything else is
                # taken as maybe sent. A tunnel that breaks later is a ProtocolError below.
                refused = isinstance(exc.original_error, http_errors.ConnectTimeoutError)
                what = "could not connect to the egress proxy" if refused else "the egress proxy failed"
                raise WeChatTransportError(
                    f"{what} for {path}", maybe_processed=not refused, maybe_in_flight=not refused
                ) from None
            except (http_errors.ProtocolError, http_errors.SSLError):
                raise WeChatTransportError(
                    f"connection to WeChat broke for {path}", maybe_in_flight=True
                ) from None
            except (http_errors.HTTPError, OSError, ValueError, TypeError) as exc:
                # TypeError/ValueError: a JSON body that does not encode (requests raised
                # InvalidJSONError, a RequestException, mapped the same way).
                raise WeChatTransportError(
                    f"request to WeChat {path} failed ({type(exc).__name__})"
                ) from None
            if status == 429:
                raise WeChatTransportError(f"WeChat {path} answered HTTP 429", maybe_processed=False)
            if status >= 500:
                # A gateway's 502/504 may come while WeChat is still working on the request.
                raise WeChatTransportError(f"WeChat {path} answered HTTP {status}", maybe_in_flight=True)
            if status >= 400:
                raise WeChatAPIError(None, f"WeChat {path} answered HTTP {status}")
            try:
                payload = json_module.loads(body)
            except ValueError:
                raise WeChatTransportError(f"WeChat {path} answered with a body that is not JSON") from None
            if not isinstance(payload, dict):
                raise WeChatTransportError(f"WeChat {path} answered with JSON that is not an object")
            return payload
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            put_metric(WECHAT_API_LATENCY, MetricUnit.Milliseconds, round(elapsed_ms, 1), Endpoint=endpoint)


def grant_in(
    payload: dict[str, Any], field: str, path: str, *, answer: dict[str, Any] | None = None
) -> Grant:
    """The credential in ``payload``'s ``field`` and ``expires_in``; a
    :class:`WeChatTransportError` when either is missing or unusable. ``answer``: the whole
    answer, when ``payload`` is a part of it (api_query_auth's ``authorization_info``).
    ``maybe_overtaken`` when an earlier attempt of the call that got the answer timed out and
    may still mint after it (see :attr:`Grant.maybe_overtaken`)."""
    value = payload.get(field)
    expires_in = payload.get("expires_in")
    if not isinstance(value, str) or not value or not isinstance(expires_in, int) or expires_in <= 0:
        raise WeChatTransportError(f"WeChat {path} answered without a usable {field}/expires_in")
    in_flight = bool((payload if answer is None else answer).get(_IN_FLIGHT_KEY))
    return Grant(value=value, expires_in=expires_in, maybe_overtaken=in_flight)


def _as_int(errcode: object) -> int:
    """WeChat's errcode as an int; -999 when it is not a number at all."""
    if isinstance(errcode, int):
        return errcode
    try:
        return int(str(errcode))
    except ValueError:
        return -999
