"""The one Logger, Metrics and Tracer every module imports, and the name of every metric.

Created once per container. powertools reads ``POWERTOOLS_LOG_LEVEL``,
``POWERTOOLS_METRICS_NAMESPACE`` (default ``WxToken``) and ``POWERTOOLS_SERVICE_NAME`` from
the environment the template sets. The service name (the stack name, in the template) is
the ``service`` dimension of every metric, so two stacks in one account keep their
dashboards and alarms apart; log lines keep ``"service": "wxtoken"``, the name of the
logger every ``wxtoken.*`` module's records propagate to.

Metrics are CloudWatch EMF lines on stdout, in two kinds:

- :func:`count` and :func:`record` — values kept in this process (counts summed, by their
  dimensions if they have any) and written when the handler's ``@metrics.log_metrics``
  flushes: **one EMF document per invocation**, its directives one per dimension set (with
  powertools' ``ColdStart`` among them), so a hot path (a cached token read, a webhook
  message) costs a dict update, not a line. Code running outside such a handler (a
  long-lived service using :class:`~wxtoken.client.TokenClient`) writes nothing unless it
  calls ``metrics.flush_metrics()`` itself; counts waiting are bounded by the names and
  dimensions in use, not by the number of calls (recorded values are kept one by one).
- :func:`put_metric` — one data point with its own dimensions (an appid, an endpoint), written
  at once as one line. Safe from the refresh's app threads; for what must not wait for the
  end of an invocation, or would grow without bound in a long-lived process (latencies).

Tracing is opt-in: ``Tracer()`` imports the X-Ray SDK, hundreds of milliseconds of every cold
start, so ``tracer`` is a no-op with the same decorators unless ``WXTOKEN_TRACING=true``
(the template's ``EnableTracing`` parameter sets it, with ``Tracing: Active``) and
aws-xray-sdk is installed. Even then only botocore is patched: X-Ray's HTTP patch would
record WeChat's request URLs, and the token URL's query string carries the AppSecret.

Nothing here may fail a refresh or a webhook answer: a metric that cannot be written is
dropped with a warning.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, Final, Protocol, cast, overload

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import resolve_cold_start_function_name
from aws_lambda_powertools.metrics.provider import cold_start as metrics_cold_start
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

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
# dimensionless: the least of the above and of the component tokens (Open Platform), per run
MIN_SECONDS_TO_EXPIRY: Final = "MinSecondsToExpiry"
# Count: WeChat rejected a stored token at the guard's probe (someone else fetched one with the
# same AppSecret); per appid, and a dimensionless total for the alarm
STORED_TOKEN_REJECTED: Final = "StoredTokenRejected"
# Count, dimensionless, every run: entries of the apps secret that are not usable (0 when all are)
APPS_SECRET_INVALID: Final = "AppsSecretInvalidEntries"
# Open Platform (dimensionless: one data point per run across every platform, so that an alarm
# needs no dimension; the logs name the component or authorizer)
COMPONENT_TICKET_AGE: Final = "ComponentTicketAgeSeconds"  # Seconds since the oldest platform's last ticket
AUTHORIZERS_ACTIVE: Final = "AuthorizersActive"  # accounts in api_get_authorizer_list at the last import
AUTHORIZERS_REFRESHED: Final = "AuthorizersRefreshed"  # Count of authorizer tokens stored by the run
AUTHORIZER_REFRESH_FAILED: Final = "AuthorizerRefreshFailed"  # Count of authorizers whose refresh failed
AUTHORIZERS_DUE: Final = "AuthorizersDue"  # authorizers still due when the run ended (the backlog)
AUTHORIZER_MIN_SECONDS_TO_EXPIRY: Final = "AuthorizerMinSecondsToExpiry"  # the least, at the queue's head
# Count: a refresh token WeChat refused that api_get_authorizer_list could not replace: the account
# must authorize the platform again
AUTHORIZER_REFRESH_TOKEN_LOST: Final = "AuthorizerRefreshTokenLost"
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

# Written only by a stack with a third-party platform in its apps secret (OpenPlatform=enabled).
PLATFORM_METRIC_NAMES: Final = frozenset(
    {
        COMPONENT_TICKET_AGE,
        AUTHORIZERS_ACTIVE,
        AUTHORIZERS_REFRESHED,
        AUTHORIZER_REFRESH_FAILED,
        AUTHORIZERS_DUE,
        AUTHORIZER_MIN_SECONDS_TO_EXPIRY,
        AUTHORIZER_REFRESH_TOKEN_LOST,
    }
)
METRIC_NAMES: Final = PLATFORM_METRIC_NAMES | frozenset(
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


# --- EMF documents ---------------------------------------------------------------------------
_Dimensions = tuple[tuple[str, str], ...]
# EMF's limits (CloudWatch "Specification: Embedded metric format"): 30 dimensions in a set
# (``service`` is one), 100 metrics in a directive, 100 values in a metric's array.
_MAX_DIMENSIONS = 29
_MAX_METRICS = 100
_MAX_VALUES = 100
_write_lock = threading.Lock()


# Top-level keys every document has: no dimension or metric may take one.
_RESERVED: Final = frozenset({"service", "_aws"})


def _dimensions(dimensions: dict[str, Any]) -> _Dimensions:
    """``dimensions`` as a key (sorted: the same set in any order is one key), each value a
    string. An empty value is left out, as powertools leaves it out (CloudWatch refuses the
    document); ``service`` is ours to set."""
    kept = tuple(sorted((key, text) for key, value in dimensions.items() if (text := str(value)).strip()))
    if len(kept) > _MAX_DIMENSIONS or any(key in _RESERVED for key, _ in kept):
        raise ValueError(f"at most {_MAX_DIMENSIONS} dimensions, and none named service or _aws")
    return kept


def _check_name(name: str, dimensions: _Dimensions = ()) -> None:
    """A metric's value is the top-level key of its name: it may not be a dimension's too."""
    if not 1 <= len(name) <= 255:  # CloudWatch's rule for a metric name
        raise ValueError(f"metric name must be 1 to 255 characters, got {len(name)}")
    if name in _RESERVED or any(key == name for key, _ in dimensions):
        raise ValueError(f"metric name {name!r} is taken by the document or a dimension")


def _check_finite(value: float) -> None:
    if not math.isfinite(value):  # NaN and infinities have no JSON form
        raise ValueError(f"metric value must be finite, got {value}")


def _metrics_disabled() -> bool:
    """Whether EMF lines are off: powertools' ``is_metrics_disabled`` rule (metrics/functions.py),
    read once with the other settings. powertools reads the environment at every flush, 4 µs
    (three ``os.getenv``), and reading it here even without them cost 1.7 µs of a webhook
    request (bench/webhook_roundtrip.py --breakdown); a container's environment does not
    change. Tests switch it with :func:`set_metrics_disabled`."""
    return _metrics_off


_metrics_off = _SETTINGS.metrics_disabled


def set_metrics_disabled(disabled: bool) -> None:
    """Turn EMF lines off (or back on) in this process, as ``POWERTOOLS_METRICS_DISABLED`` does
    at a container's start."""
    global _metrics_off
    _metrics_off = disabled


class _Group:
    """The metrics of one dimension set: name → (unit, values)."""

    __slots__ = ("dimensions", "metrics")

    def __init__(self, dimensions: _Dimensions, metrics: dict[str, tuple[str, list[float]]]) -> None:
        self.dimensions = dimensions
        self.metrics = metrics

    def shape(self) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """What its directive says: dimension names, metric names and units (no values)."""
        return (
            tuple(key for key, _ in self.dimensions),
            tuple((name, unit) for name, (unit, _) in self.metrics.items()),
        )


# One encoder, not one per line; NaN and infinities are not JSON (the line is dropped, warned).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_SERVICE_JSON: Final = _ENCODER.encode(SERVICE)
# The "CloudWatchMetrics" array by the shapes of a document's groups: the same few every
# invocation (a webhook message by MsgType, a cold start), so each is serialised once.
_DIRECTIVES: dict[tuple[Any, ...], str] = {}
_DIRECTIVES_KEPT = 256


def _directives(members: list[_Group]) -> str:
    shapes = tuple(group.shape() for group in members)
    text = _DIRECTIVES.get(shapes)
    if text is None:
        text = _ENCODER.encode(
            [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [[*dimensions, "service"]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
                }
                for dimensions, metrics in shapes
            ]
        )
        if len(_DIRECTIVES) >= _DIRECTIVES_KEPT:  # per-app shapes are many: keep it bounded
            _DIRECTIVES.clear()
        _DIRECTIVES[shapes] = text
    return text


def _pieces(groups: list[_Group]) -> list[_Group]:
    """``groups``, each cut to EMF's limits (100 metrics a directive, 100 values a metric)."""
    pieces: list[_Group] = []
    for group in groups:
        metrics = group.metrics
        if len(metrics) <= _MAX_METRICS and all(len(values) <= _MAX_VALUES for _, values in metrics.values()):
            pieces.append(group)
            continue
        items = list(metrics.items())
        for start in range(0, len(items), _MAX_METRICS):
            chunk = items[start : start + _MAX_METRICS]
            depth = max(len(values) for _, (_, values) in chunk)
            for offset in range(0, depth, _MAX_VALUES):
                cut = {
                    name: (unit, values[offset : offset + _MAX_VALUES])
                    for name, (unit, values) in chunk
                    if values[offset : offset + _MAX_VALUES]
                }
                pieces.append(_Group(group.dimensions, cut))
    return pieces


def _fits(keys: dict[str, Any], group: _Group) -> bool:
    for key, value in group.dimensions:
        if keys.get(key, value) != value:
            return False
    return keys.keys().isdisjoint(group.metrics)


def _pack(groups: list[_Group]) -> list[tuple[dict[str, Any], list[_Group]]]:
    """``groups`` packed into as few EMF documents as CloudWatch reads correctly (usually one):
    each document's top-level keys and the groups whose directives it holds.

    Directives of one document read dimension values and metric values from the same top-level
    keys, so a group joins a document only when its dimension values agree with those there
    and none of its metric names is a key there already.
    """
    documents: list[tuple[dict[str, Any], list[_Group]]] = []
    for piece in _pieces(groups):
        found = next((document for document in documents if _fits(document[0], piece)), None)
        if found is None:
            found = ({}, [])
            documents.append(found)
        keys, members = found
        keys.update(piece.dimensions)
        keys.update((name, values) for name, (_, values) in piece.metrics.items())
        members.append(piece)
    return documents


def _emf_lines(groups: list[_Group], timestamp: int) -> str:
    """``groups`` as EMF lines (see :func:`_pack`)."""
    return "".join(
        f'{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":{_directives(members)}}},'
        f'{_ENCODER.encode(keys)[1:-1]},"service":{_SERVICE_JSON}}}\n'
        for keys, members in _pack(groups)
    )


_CountKey = tuple[str, _Dimensions]
# A flush of counts alone (a webhook invocation: WebhookMessage by MsgType, now and then a
# ColdStart) has the same few sets of names and dimensions every time: each set's documents
# are packed and serialised once, as a %-format that a flush fills with the timestamp and the
# totals. Packing and serialising anew cost 15-25 µs of a 200 µs request, and filling the
# pieces in with f-strings and the JSON encoder 2.8 µs where the format takes 1
# (bench/webhook_roundtrip.py --breakdown). Per set: each document's format, and the counts
# its totals are read from, in order.
_COUNT_TEMPLATES: dict[tuple[_CountKey, ...], list[tuple[str, tuple[_CountKey, ...]]]] = {}


def _count_templates(keys: tuple[_CountKey, ...]) -> list[tuple[str, tuple[_CountKey, ...]]]:
    templates = _COUNT_TEMPLATES.get(keys)
    if templates is None:
        groups: dict[_Dimensions, _Group] = {}
        for name, dimensions in keys:
            groups.setdefault(dimensions, _Group(dimensions, {})).metrics[name] = ("Count", [0.0])
        templates = []
        for document, members in _pack(list(groups.values())):
            labels = {key: value for key, value in document.items() if not isinstance(value, list)}
            middle = f',"CloudWatchMetrics":{_directives(members)}}},'
            if labels:
                middle += _ENCODER.encode(labels)[1:-1] + ","
            totals = [
                (_ENCODER.encode(name), (name, group.dimensions))
                for group in members
                for name in group.metrics
            ]
            text = '{"_aws":{"Timestamp":\0' + middle + ",".join(f"{name}:[\0]" for name, _ in totals)
            text += f',"service":{_SERVICE_JSON}}}\n'
            # Every "%" of the names and labels escaped; the placeholders are the NULs (JSON
            # writes a NUL in a string as \u0000, so none is there otherwise).
            templates.append((text.replace("%", "%%").replace("\0", "%s"), tuple(key for _, key in totals)))
        if len(_COUNT_TEMPLATES) >= _DIRECTIVES_KEPT:
            _COUNT_TEMPLATES.clear()
        _COUNT_TEMPLATES[keys] = templates
    return templates


def _count_lines(counts: dict[_CountKey, float], timestamp: int) -> str:
    """What :func:`_emf_lines` writes for these counts, from the cached templates. A total is
    written as JSON writes a float (its ``repr``); one that is not finite (a sum that
    overflowed) raises ``ValueError``, as the encoder does, and the flush drops the line."""
    templates = _count_templates(tuple(counts))
    if len(templates) == 1:  # the usual flush: one document (no generator to join)
        template, keys = templates[0]
        return template % (timestamp, *[_json_float(counts[key]) for key in keys])
    return "".join(
        template % (timestamp, *[_json_float(counts[key]) for key in keys]) for template, keys in templates
    )


def _json_float(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"metric value must be finite, got {number}")
    return repr(number)


def _write(text: str) -> None:
    with _write_lock:  # one write per line or batch of lines: threads never interleave them
        sys.stdout.write(text)


# --- per-point metrics ---------------------------------------------------------------------
def put_metric(name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
    """Write one EMF data point with these dimensions (and ``service``) now, as one line.

    The document is built here, in the shape powertools' ``SingleMetric`` serialises (the
    tests parse both alike), rather than through it: ``SingleMetric`` — a metric set, its
    validation, three ``os.getenv`` calls — cost 24 µs where the crypto of a webhook request
    costs 13 (bench/webhook_roundtrip.py --breakdown). powertools' ``single_metric`` also
    prints the line and its newline as two writes, which threads can interleave; this writes
    each line whole.
    """
    if _metrics_disabled():
        return
    try:
        labels = _dimensions(dimensions)
        _check_name(name, labels)
        group = _Group(labels, {name: (MetricUnit(unit).value, [float(value)])})
        line = _emf_lines([group], int(time.time() * 1000))
    except Exception as exc:  # a metric never fails the work it measures
        logger.warning("metric dropped", extra={"metric": name, "error": f"{type(exc).__name__}: {exc}"})
        return
    _write(line)


def _groups(counts: dict[_CountKey, float], values: dict[_CountKey, tuple[str, list[float]]]) -> list[_Group]:
    """Counts and recorded values, a group per dimension set."""
    groups: dict[_Dimensions, _Group] = {}
    for (name, dimensions), total in counts.items():
        groups.setdefault(dimensions, _Group(dimensions, {})).metrics[name] = ("Count", [float(total)])
    for (name, dimensions), (unit, points) in values.items():
        group = groups.setdefault(dimensions, _Group(dimensions, {}))
        if name in group.metrics:
            logger.warning("metric dropped: counted and recorded alike", extra={"metric": name})
            continue
        group.metrics[name] = (unit, [float(point) for point in points])
    return list(groups.values())


# --- per-invocation metrics ----------------------------------------------------------------
class _Provider(AmazonCloudWatchEMFProvider):
    """powertools' EMF provider, flushing what :func:`count` and :func:`record` gathered as one
    document per invocation.

    powertools' own metric set holds one dimension set per document (a webhook message's
    ``MsgType`` would need a line of its own, 24 µs of a request) and is not safe to add to
    from several threads while another flushes it; these values are kept under a lock and
    written by the flushing thread. ``ColdStart`` joins the same document instead of a
    ``single_metric`` line of its own. Metrics added through powertools' API
    (``metrics.add_metric``) are still flushed by powertools, as a line of their own.
    """

    def __init__(self) -> None:
        super().__init__(namespace=NAMESPACE, service=SERVICE)
        self._pending_lock = threading.Lock()
        self._counts: dict[tuple[str, _Dimensions], float] = {}
        self._values: dict[tuple[str, _Dimensions], tuple[str, list[float]]] = {}

    def count(self, name: str, n: float, dimensions: _Dimensions) -> None:
        key = (name, dimensions)
        with self._pending_lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def record(self, name: str, unit: MetricUnit, value: float, dimensions: _Dimensions) -> None:
        with self._pending_lock:
            self._values.setdefault((name, dimensions), (MetricUnit(unit).value, []))[1].append(value)

    def add_cold_start_metric(self, context: LambdaContext) -> None:
        """``ColdStart`` by ``function_name``, as powertools writes it, in this invocation's
        document (``log_metrics`` adds it just before its flush)."""
        function_name = resolve_cold_start_function_name(function_name=self.function_name, context=context)
        try:
            labels = _dimensions({"function_name": function_name})  # no empty dimension value
        except ValueError:
            return
        self.count(COLD_START, 1, labels)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with self._pending_lock:
            counts, self._counts = self._counts, {}
            values, self._values = self._values, {}
        if _metrics_disabled():
            self.clear_metrics()  # powertools would keep them, and print them once re-enabled
            return
        if counts or values:
            timestamp = int(time.time() * 1000)
            try:
                if values:
                    text = _emf_lines(_groups(counts, values), timestamp)
                else:  # the usual invocation: counts alone, from a cached shape
                    text = _count_lines(counts, timestamp)
            except Exception as exc:  # a metric never fails the work it measures
                logger.warning("metrics dropped", extra={"error": f"{type(exc).__name__}: {exc}"})
            else:
                _write(text)
        if self.metric_set or (raise_on_empty_metrics and not counts and not values):
            # Metrics from powertools' own add_metric; or nothing at all, for its error.
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


def count(name: str, n: float = 1, **dimensions: str) -> None:
    """Add ``n`` to a Count, by ``dimensions`` if given, written at the next flush (cheap: no
    I/O). A bad name or dimension is dropped with a warning, never raised."""
    try:
        key = _count_key(name, dimensions)
        _check_finite(n)
    except ValueError as exc:  # dropped here, so it cannot spoil the invocation's document
        logger.warning("metric dropped", extra={"metric": name, "error": str(exc)})
        return
    _provider.count(name, n, key)


def _count_key(name: str, dimensions: dict[str, Any]) -> _Dimensions:
    """``dimensions`` checked and sorted for ``name``, the verdict kept per (name, dimensions as
    given): the same few are counted on every request (a webhook message by ``MsgType``), and
    checking them anew cost 1.5 µs of a request (bench/webhook_roundtrip.py --breakdown)."""
    try:
        seen = (name, *dimensions.items())
        key = _COUNT_KEYS.get(seen)
    except TypeError:  # a dimension value that cannot be hashed: checked, not kept
        seen, key = None, None
    if key is None:
        key = _dimensions(dimensions) if dimensions else ()
        _check_name(name, key)
        # Kept for str values only: nothing else equals one, so a 1 is never read as a "1" kept.
        if seen is not None and all(type(value) is str for value in dimensions.values()):
            if len(_COUNT_KEYS) >= _COUNT_KEYS_KEPT:  # per-app counts are many: keep it bounded
                _COUNT_KEYS.clear()
            _COUNT_KEYS[seen] = key
    return key


_COUNT_KEYS: dict[tuple[Any, ...], _Dimensions] = {}
_COUNT_KEYS_KEPT = 1024


def count_by(name: str, dimension: str) -> Callable[[str], None]:
    """``count(name, **{dimension: value})`` as a function of ``value``, for a hot path: each
    value's key is checked once and kept, and an add is one dict update under the lock (0.4
    µs of a webhook request where :func:`count` takes 0.9; bench/webhook_roundtrip.py
    --breakdown). A bad value is dropped with a warning, as :func:`count` drops it."""
    keys: dict[str, _Dimensions] = {}

    def add(value: str) -> None:
        key = keys.get(value)
        if key is None:
            try:
                key = _count_key(name, {dimension: value})
            except ValueError as exc:
                logger.warning("metric dropped", extra={"metric": name, "error": str(exc)})
                return
            if len(keys) >= _COUNT_KEYS_KEPT:
                keys.clear()
            keys[value] = key
        _provider.count(name, 1, key)

    return add


def record(name: str, unit: MetricUnit, value: float) -> None:
    """Keep one dimensionless data point for the next flush."""
    try:
        _check_name(name)
        _check_finite(value)
    except ValueError as exc:
        logger.warning("metric dropped", extra={"metric": name, "error": str(exc)})
        return
    _provider.record(name, unit, value, ())


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

        # Not http.client/urllib3 (WeChat's calls): X-Ray would record the token URL, AppSecret included.
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


# --- the handler ---------------------------------------------------------------------------
type _Handler[**P, R] = Callable[Concatenate[Any, LambdaContext, P], R]
_first_invocation = not _SETTINGS.provisioned_concurrency


def observed_handler[**P, R](
    *, correlation_id: Callable[[Any], str | None] | None = None
) -> Callable[[_Handler[P, R]], _Handler[P, R]]:
    """A Lambda handler's logging, tracing and metrics, in one wrapper doing what powertools'
    three decorators do::

        @logger.inject_lambda_context(log_event=False)
        @tracer.capture_lambda_handler(capture_response=False)
        @metrics.log_metrics(capture_cold_start_metric=True)

    - every log line of the invocation gets ``cold_start``, ``function_name``,
      ``function_memory_size``, ``function_arn``, ``function_request_id`` and, given a function
      that reads it from the event, ``correlation_id`` (one ``append_keys``);
    - the handler is traced when tracing is on, its response never recorded (tokens);
    - ``ColdStart`` is counted after a first invocation that returns, and the invocation's one
      EMF document is flushed whether it returns or raises.

    Written here for a measured reason: the three decorators, with ``set_correlation_id``,
    cost 9–12 µs of a warm webhook request that has about 43 to be twice as fast as
    wechatpy; this wrapper about 3 (bench/webhook_roundtrip.py --breakdown). powertools'
    Logger decorator alone builds a context model, reads ``AWS_LAMBDA_INITIALIZATION_TYPE`` and
    resolves its options on every invocation (4.2 µs). The log keys are powertools', key for
    key, and the metrics the same document (tests/unit/test_observability.py compares both).
    """

    def decorate(handler: _Handler[P, R]) -> _Handler[P, R]:
        traced = tracer.capture_lambda_handler(capture_response=False)(handler)

        @functools.wraps(handler)
        def observed(event: Any, context: LambdaContext, /, *args: P.args, **kwargs: P.kwargs) -> R:
            global _first_invocation
            cold_start, _first_invocation = _first_invocation, False
            keys: dict[str, Any] = {
                "cold_start": cold_start,
                "function_name": context.function_name,
                "function_memory_size": context.memory_limit_in_mb,
                "function_arn": context.invoked_function_arn,
                "function_request_id": context.aws_request_id,
            }
            if correlation_id is not None:
                keys["correlation_id"] = correlation_id(event)
            logger.append_keys(**keys)
            if logger.sampling_rate and not cold_start:
                logger.refresh_sample_rate_calculation()  # DEBUG sampling drawn per invocation
            try:
                response = traced(event, context, *args, **kwargs)
                if metrics_cold_start.is_cold_start:  # powertools' flag, as log_metrics reads it
                    metrics_cold_start.is_cold_start = False
                    _provider.add_cold_start_metric(context)
            finally:
                metrics.flush_metrics()
            return response

        return observed

    return decorate
