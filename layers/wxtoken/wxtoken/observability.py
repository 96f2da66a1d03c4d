"""The one Logger, Metrics and Tracer every module imports, and the name of every metric.

Created once per container. powertools reads ``POWERTOOLS_LOG_LEVEL``,
``POWERTOOLS_METRICS_NAMESPACE`` (default ``WxToken``) and ``POWERTOOLS_SERVICE_NAME`` from
the environment the template sets. The service name (the stack name, in the template) is
the ``service`` dimension of every metric, so two stacks in one account keep their
dashboards and alarms apart; log lines keep ``"service": "wxtoken"``, the name of the
logger every ``wxtoken.*`` module's records propagate to.

Metrics are CloudWatch EMF lines on stdout, in two kinds:

- :func:`put_metric` — one data point with its own dimensions (an appid, an endpoint, a
  reason), written at once as one line. Safe from the refresh's app threads.
- :func:`count` and :func:`record` — dimensionless values, summed (counts) or kept (the rest)
  in this process and written as one line when the handler's
  ``@metrics.log_metrics`` flushes, so a hot path (a cached token read) costs a dict update,
  not a line. Code running outside such a handler (a long-lived service using
  :class:`~wxtoken.client.TokenClient`) writes nothing unless it calls
  ``metrics.flush_metrics()`` itself.

Tracing is opt-in: ``Tracer()`` imports the X-Ray SDK, hundreds of milliseconds of every cold
start, so ``tracer`` is a no-op with the same decorators unless ``WXTOKEN_TRACING=true``
(the template's ``EnableTracing`` parameter sets it, with ``Tracing: Active``) and
aws-xray-sdk is installed. Even then only botocore is patched: requests' exception texts
quote the token URL, whose query string carries the AppSecret.

Nothing here may fail a refresh or a webhook answer: a metric that cannot be written is
dropped with a warning.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, cast, overload

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from wxtoken.config import ObservabilitySettings

_SETTINGS: Final = ObservabilitySettings.from_env()
NAMESPACE: Final = _SETTINGS.namespace
SERVICE: Final = _SETTINGS.service
TRACING: Final = _SETTINGS.tracing

logger = Logger(service="wxtoken")

# --- metric names: the dashboard, the alarms, the tests and the benchmarks read these ----
# Refresh (dimension appid unless said otherwise)
TOKEN_REFRESHED: Final = "TokenRefreshed"  # Count, per token stored: a total; by appid if per-app
REFRESH_FAILED: Final = "RefreshFailed"  # Count: per appid + ErrorClass, and a dimensionless total per run
SECONDS_TO_EXPIRY: Final = "SecondsToExpiry"  # Seconds left on each stored token, every run (per-app only)
MIN_SECONDS_TO_EXPIRY: Final = "MinSecondsToExpiry"  # dimensionless: the least of the above, per run
# Count: WeChat rejected a stored token at the guard's probe (someone else fetched one with the
# same AppSecret); per appid, and a dimensionless total for the alarm
STORED_TOKEN_REJECTED: Final = "StoredTokenRejected"
# Count, dimensionless, every run: entries of the apps secret that are not usable (0 when all are)
APPS_SECRET_INVALID: Final = "AppsSecretInvalidEntries"
# WeChat's API (dimension Endpoint = token | stable_token | getticket | api)
WECHAT_API_LATENCY: Final = "WeChatApiLatency"  # Milliseconds, per HTTP attempt
WECHAT_API_ERROR: Final = "WeChatApiError"  # Count, + ErrCode (WeChat's errcode, or "transport")
# Webhook
WEBHOOK_MESSAGE: Final = "WebhookMessage"  # Count, dimension MsgType ("text", "event:subscribe", …)
WEBHOOK_REJECTED: Final = "WebhookRejected"  # Count, dimension Reason (see REJECT_REASONS)
DUPLICATE_DELIVERY: Final = "DuplicateDelivery"  # Count: a WeChat retry answered from the dedup store
DEADLINE_FALLBACK: Final = "DeadlineFallback"  # Count: a handler overran; WeChat got "success"
# TokenClient
TOKEN_CACHE_HIT: Final = "TokenCacheHit"  # Count: served from the in-process cache
TOKEN_CACHE_MISS: Final = "TokenCacheMiss"  # Count: had to read the store
# powertools' own, from @metrics.log_metrics(capture_cold_start_metric=True)
COLD_START: Final = "ColdStart"

METRIC_NAMES: Final = frozenset(
    {
        TOKEN_REFRESHED,
        REFRESH_FAILED,
        SECONDS_TO_EXPIRY,
        MIN_SECONDS_TO_EXPIRY,
        STORED_TOKEN_REJECTED,
        APPS_SECRET_INVALID,
        WECHAT_API_LATENCY,
        WECHAT_API_ERROR,
        WEBHOOK_MESSAGE,
        WEBHOOK_REJECTED,
        DUPLICATE_DELIVERY,
        DEADLINE_FALLBACK,
        TOKEN_CACHE_HIT,
        TOKEN_CACHE_MISS,
        COLD_START,
    }
)
REJECT_REASONS: Final = ("signature", "unauthenticated", "unknown_app", "too_large", "malformed")
TRANSPORT_ERRCODE: Final = "transport"


# --- per-point metrics ---------------------------------------------------------------------
_write_lock = threading.Lock()


def put_metric(name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
    """Write one EMF data point with these dimensions (and ``service``) now, as one line.

    The document is built here, in the shape powertools' ``SingleMetric`` serialises (the
    tests parse both alike), rather than through it: the webhook writes one per message, and
    ``SingleMetric`` — a metric set, its validation, three ``os.getenv`` calls — cost 24 µs of
    a request whose crypto costs 13 (bench/webhook_roundtrip.py --breakdown); this costs
    about 5. powertools' ``single_metric`` also prints the line and its newline as two
    writes, which threads can interleave; this writes each line whole. A dimension with an
    empty value is left out, as powertools leaves it out (CloudWatch refuses the document).
    """
    if is_metrics_disabled():
        return
    try:
        if not 1 <= len(name) <= 255:  # CloudWatch's rule for a metric name
            raise ValueError(f"metric name must be 1 to 255 characters, got {len(name)}")
        kept = {key: str(dimension) for key, dimension in dimensions.items() if str(dimension).strip()}
        # EMF's rules, as SingleMetric enforced them: at most 30 dimensions with ``service``,
        # which is ours to set.
        if len(kept) > 29 or "service" in kept:
            raise ValueError("at most 29 dimensions, and none named service")
        document = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [[*kept, "service"]],
                        "Metrics": [{"Name": name, "Unit": MetricUnit(unit).value}],
                    }
                ],
            },
            **kept,
            "service": SERVICE,
            name: [float(value)],
        }
        line = json.dumps(document, separators=(",", ":")) + "\n"
    except Exception as exc:  # a metric never fails the work it measures
        logger.warning("metric dropped", extra={"metric": name, "error": f"{type(exc).__name__}: {exc}"})
        return
    with _write_lock:
        sys.stdout.write(line)


# --- per-invocation metrics ----------------------------------------------------------------
class _Provider(AmazonCloudWatchEMFProvider):
    """powertools' EMF provider, plus values gathered under a lock until the next flush.

    powertools' own metric set is not safe to add to from several threads while another
    flushes it; these values reach it only in the flushing thread.
    """

    def __init__(self) -> None:
        super().__init__(namespace=NAMESPACE, service=SERVICE)
        self._pending_lock = threading.Lock()
        self._counts: dict[str, float] = {}
        self._values: dict[str, tuple[MetricUnit, list[float]]] = {}

    def count(self, name: str, n: float = 1) -> None:
        with self._pending_lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def record(self, name: str, unit: MetricUnit, value: float) -> None:
        with self._pending_lock:
            self._values.setdefault(name, (unit, []))[1].append(value)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with self._pending_lock:
            counts, self._counts = self._counts, {}
            values, self._values = self._values, {}
        for name, total in counts.items():
            self.add_metric(name=name, unit=MetricUnit.Count, value=total)
        for name, (unit, points) in values.items():
            for value in points:
                self.add_metric(name=name, unit=unit, value=value)
        if is_metrics_disabled():
            self.clear_metrics()  # powertools would keep them, and print them once re-enabled
            return
        if not self.metric_set and not raise_on_empty_metrics:
            return  # nothing to say (a URL check, say): no line, and no powertools warning
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)


_provider = _Provider()
metrics = Metrics(namespace=NAMESPACE, service=SERVICE, provider=_provider)


def put_app_metric(name: str, unit: MetricUnit, value: float, appid: str) -> None:
    """A data point by ``appid`` that every run writes for every app: written only when
    ``WXTOKEN_PER_APP_METRICS`` is on. Each app is a custom metric of its own (USD 0.30 a
    month while it is sent); the dimensionless figures beside it (``MinSecondsToExpiry``, the
    ``TokenRefreshed`` total) are what the alarms and the dashboard need."""
    if _SETTINGS.per_app_metrics:
        put_metric(name, unit, value, appid=appid)


def count(name: str, n: float = 1) -> None:
    """Add ``n`` to a dimensionless Count, written at the next flush (cheap: no I/O)."""
    _provider.count(name, n)


def record(name: str, unit: MetricUnit, value: float) -> None:
    """Keep one dimensionless data point for the next flush."""
    _provider.record(name, unit, value)


# --- tracing -------------------------------------------------------------------------------
class TracerAPI(Protocol):
    """What wxtoken uses of powertools' ``Tracer``; decorators keep the decorated signature."""

    @overload
    def capture_lambda_handler[F: Callable[..., Any]](self, lambda_handler: F) -> F: ...
    @overload
    def capture_lambda_handler[F: Callable[..., Any]](
        self,
        lambda_handler: None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Callable[[F], F]: ...
    @overload
    def capture_method[F: Callable[..., Any]](self, method: F) -> F: ...
    @overload
    def capture_method[F: Callable[..., Any]](
        self, method: None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[F], F]: ...
    def put_annotation(self, key: str, value: str | float | bool) -> None: ...


class NoOpTracer:
    """The decorator API of powertools' ``Tracer``, doing nothing and importing nothing."""

    def capture_lambda_handler(
        self,
        lambda_handler: Any = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        return lambda_handler if lambda_handler is not None else _identity

    def capture_method(
        self, method: Any = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Any:
        return method if method is not None else _identity

    def put_annotation(self, key: str, value: str | float | bool) -> None:
        return None


def _identity[F: Callable[..., Any]](function: F) -> F:
    return function


def _build_tracer() -> TracerAPI:
    """powertools' Tracer when tracing is asked for and possible, else a :class:`NoOpTracer`."""
    if not TRACING:
        return cast(TracerAPI, NoOpTracer())
    try:
        from aws_lambda_powertools import Tracer

        # Not requests: its exception texts quote the token URL (and the AppSecret in it).
        # WeChat calls are traced by capture_method on WeChatAPI._request instead.
        return cast(TracerAPI, Tracer(service=SERVICE, patch_modules=["botocore"]))
    except ImportError:
        logger.warning(
            "WXTOKEN_TRACING=true but aws-xray-sdk is not installed: tracing stays off. "
            "Add aws-xray-sdk to layers/wxtoken/requirements.in and run make lock to trace."
        )
        return cast(TracerAPI, NoOpTracer())


tracer: TracerAPI = _build_tracer()
"""``@tracer.capture_lambda_handler(capture_response=False)``, ``@tracer.capture_method(...)``."""
