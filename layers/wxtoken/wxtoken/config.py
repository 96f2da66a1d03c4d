"""Settings, read from the environment once per container and validated at cold start.

Nothing else in wxtoken calls ``os.environ``: a missing or bad variable fails here, with
a message that names it, rather than deep inside a refresh.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from enum import StrEnum
from urllib.parse import urlsplit

from wxtoken.errors import ConfigError
from wxtoken.frozen import Frozen

DEFAULT_WECHAT_API_BASE = "https://api.weixin.qq.com"
_DEFAULT_NAMESPACE = "WxToken"
_DEFAULT_SERVICE = "wxtoken"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# What powertools' strtobool reads as yes (shared/functions.py): ours, and "y" and "t".
_POWERTOOLS_TRUE = _TRUE | {"y", "t"}


class StoreKind(StrEnum):
    SSM = "ssm"
    REDIS = "redis"
    DYNAMODB = "dynamodb"


class TokenAPI(StrEnum):
    """Which WeChat endpoint mints tokens: classic ``/cgi-bin/token`` or ``stable_token``."""

    TOKEN = "token"
    STABLE_TOKEN = "stable_token"


_NO_APPS_SECRET = (
    "WECHAT_APPS_SECRET_ID is not set: name the Secrets Manager secret that "
    "holds the apps JSON (README, Configuration)"
)


class Settings(Frozen):
    """The functions' (and a reader's) settings: :meth:`from_env`, :meth:`reader_from_env`.

    A :class:`~wxtoken.frozen.Frozen` value class, not a dataclass: its 30 fields made the
    dataclass decorator's generated code about 2 ms of every cold start (issue 12).
    """

    # The secret with every AppSecret. The functions need it (from_env refuses to start
    # without it); a reader (reader_from_env) only if it refreshes in its own process.
    apps_secret_id: str | None
    # The webhook's own secret (Token and EncodingAESKey, no AppSecret). Unset: the webhook
    # reads the apps secret, as before the split.
    webhook_secret_id: str | None = None
    token_store: StoreKind = StoreKind.SSM
    parameter_prefix: str = "/wxtoken"
    kms_key_id: str | None = None
    redis_url: str | None = None
    redis_cluster: bool = False
    redis_auth_secret_id: str | None = None
    # The DynamoDB table of TOKEN_STORE=dynamodb (the stack's TokenTable).
    token_table: str | None = None
    wechat_api_base: str = DEFAULT_WECHAT_API_BASE
    # A secret holding the egress proxy's URL (credentials included), for WeChat's calls:
    # kept out of the functions' plain environment, where HTTPS_PROXY would show it.
    https_proxy_secret_id: str | None = None
    wechat_token_api: TokenAPI = TokenAPI.TOKEN
    # How often the schedule fires (must match template.yaml's ScheduleV2 rate). WeChat's
    # classic token lives 7200 s, and minting a new one retires the previous one 5 minutes
    # later (获取Access token: 新旧 access_token 在 5 分钟内都可使用). Every 100 minutes leaves
    # the stored token 20 minutes at the scheduled run, so an outage of the egress starting
    # right then (the NAT instance replaced: up to 5 minutes) ends long before the token does,
    # and the guard replaces it afterwards: outages of up to about 19 minutes are survived
    # (115 minutes left 300 s: 5 minutes were not; tests/integration/test_fault_matrix.py).
    # The old token then dies 15 minutes before its record's expires_at, which no reader
    # notices: readers re-read the store at least every 60 s (TokenClient, docs/readers.md).
    # Cost: 15 token calls per app per day instead of 13, of WeChat's 2,000.
    schedule_period_seconds: int = 100 * 60
    # The guard schedule refreshes an app whose token has less than this left: only when the
    # scheduled run and Lambda's retries failed. It stays under WeChat's 5-minute overlap, so
    # the guard never retires a token before its own end, and in stable_token mode (WeChat
    # issues a new token only in the old one's last 5 minutes) it always gets the new one: a
    # larger margin would have the guard fetch the same token every minute there.
    guard_margin_seconds: int = 240
    guard_period_seconds: int = 60
    # Refresh lease: a refresh finishes inside it (its WeChat calls are capped to fit).
    # Short, because a holder that dies (Lambda killed mid-refresh) blocks the app this long.
    lease_seconds: int = 45
    # The guard asks WeChat whether it still accepts each stored token this often (0: never).
    # Only WeChat knows when another program fetched a token with the same AppSecret; the
    # stored one then dies 5 minutes later. 120 s bounds that lapse to 2 minutes, at 720
    # probe calls per app per day (docs/how-it-works.md, "The probe").
    probe_period_seconds: int = 120
    http_connect_timeout: float = 3.0
    http_read_timeout: float = 5.0
    http_max_attempts: int = 4
    secret_cache_seconds: int = 300
    refresh_function_name: str | None = None
    # Webhook
    webhook_max_body_bytes: int = 1024 * 1024
    webhook_timestamp_window_seconds: int = 300
    # WeChat drops a callback that gets no answer in 5 s; leave room for the rest.
    webhook_handler_timeout_seconds: float = 4.0
    dedup_table: str | None = None
    # WeChat retries a callback 3 times within about 15 s; keep answers a good while longer.
    dedup_seconds: int = 3600

    def __post_init__(self) -> None:
        # The one check of what every Redis store needs, however the settings were made
        # (from_env, or directly by a test or a tool).
        if self.token_store is StoreKind.REDIS and not self.redis_url:
            raise ConfigError("TOKEN_STORE=redis needs REDIS_URL (redis://… or rediss://…)")
        if self.token_store is StoreKind.DYNAMODB and not self.token_table:
            raise ConfigError(
                "TOKEN_STORE=dynamodb needs TOKEN_TABLE: the name of the DynamoDB table that holds "
                "the tokens (the stack's TokenTableName output; partition key 'name', a string)"
            )

    @property
    def required_apps_secret_id(self) -> str:
        """``apps_secret_id``, for code that reads AppSecrets (the refresher, the webhook).

        Raises :class:`ConfigError` naming WECHAT_APPS_SECRET_ID when the settings have none
        (reader settings, :meth:`reader_from_env`).
        """
        if not self.apps_secret_id:
            raise ConfigError(_NO_APPS_SECRET)
        return self.apps_secret_id

    @property
    def min_stored_lifetime_seconds(self) -> int:
        """A freshly stored token must outlive the moment the guard would next replace it."""
        return self.guard_margin_seconds + self.guard_period_seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The functions' settings: WECHAT_APPS_SECRET_ID is required (checked first, so a
        function without it fails at cold start naming it). Raises :class:`ConfigError`."""
        env = os.environ if environ is None else environ
        if not env.get("WECHAT_APPS_SECRET_ID", "").strip():
            raise ConfigError(_NO_APPS_SECRET)
        return cls._read(env)

    @classmethod
    def reader_from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """A reader's settings (:class:`~wxtoken.client.TokenClient` outside the functions).

        A reader needs the store's variables (TOKEN_STORE; TOKEN_PARAMETER_PREFIX, TOKEN_TABLE,
        or REDIS_URL with REDIS_CLUSTER and REDIS_AUTH_SECRET_ID) and, to replace a token WeChat
        rejects, REFRESH_FUNCTION_NAME. WECHAT_APPS_SECRET_ID is optional: with it and no
        refresh function, a reader refreshes in its own process. The same variables mean
        the same as for :meth:`from_env`. Raises :class:`ConfigError` on a bad value.
        """
        return cls._read(os.environ if environ is None else environ)

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        secret_id = env.get("WECHAT_APPS_SECRET_ID", "").strip() or None
        store = _enum(env, "TOKEN_STORE", StoreKind, StoreKind.SSM)
        redis_url = env.get("REDIS_URL", "").strip() or None
        if store is StoreKind.REDIS and redis_url and urlsplit(redis_url).scheme not in {"redis", "rediss"}:
            raise ConfigError("REDIS_URL must start with redis:// or rediss://")
        prefix = env.get("TOKEN_PARAMETER_PREFIX", "/wxtoken").strip() or "/wxtoken"
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ConfigError("TOKEN_PARAMETER_PREFIX must start with '/' and not end with '/'")
        base = env.get("WECHAT_API_BASE", DEFAULT_WECHAT_API_BASE).strip().rstrip("/")
        if urlsplit(base).scheme not in {"http", "https"}:
            raise ConfigError("WECHAT_API_BASE must be an http(s) URL")
        return cls(
            apps_secret_id=secret_id,
            webhook_secret_id=env.get("WECHAT_WEBHOOK_SECRET_ID", "").strip() or None,
            token_store=store,
            parameter_prefix=prefix,
            kms_key_id=env.get("KMS_KEY_ID", "").strip() or None,
            redis_url=redis_url,
            redis_cluster=_bool(env, "REDIS_CLUSTER", False),
            redis_auth_secret_id=env.get("REDIS_AUTH_SECRET_ID", "").strip() or None,
            token_table=env.get("TOKEN_TABLE", "").strip() or None,
            wechat_api_base=base,
            https_proxy_secret_id=env.get("HTTPS_PROXY_SECRET_ID", "").strip() or None,
            wechat_token_api=_enum(env, "WECHAT_TOKEN_API", TokenAPI, TokenAPI.TOKEN),
            schedule_period_seconds=_int(env, "REFRESH_PERIOD_SECONDS", 100 * 60),
            guard_margin_seconds=_int(env, "GUARD_MARGIN_SECONDS", 240),
            guard_period_seconds=_int(env, "GUARD_PERIOD_SECONDS", 60),
            lease_seconds=_int(env, "REFRESH_LEASE_SECONDS", 45),
            probe_period_seconds=_int(env, "PROBE_PERIOD_SECONDS", 120, allow_zero=True),
            http_connect_timeout=_float(env, "WECHAT_CONNECT_TIMEOUT", 3.0),
            http_read_timeout=_float(env, "WECHAT_READ_TIMEOUT", 5.0),
            http_max_attempts=_int(env, "WECHAT_MAX_ATTEMPTS", 4),
            secret_cache_seconds=_int(env, "APPS_SECRET_CACHE_SECONDS", 300),
            refresh_function_name=env.get("REFRESH_FUNCTION_NAME", "").strip() or None,
            webhook_max_body_bytes=_int(env, "WEBHOOK_MAX_BODY_BYTES", 1024 * 1024),
            webhook_timestamp_window_seconds=_int(env, "WEBHOOK_TIMESTAMP_WINDOW_SECONDS", 300),
            webhook_handler_timeout_seconds=_float(env, "WEBHOOK_HANDLER_TIMEOUT_SECONDS", 4.0),
            dedup_table=env.get("DEDUP_TABLE", "").strip() or None,
            dedup_seconds=_int(env, "DEDUP_SECONDS", 3600),
        )


class ObservabilitySettings(Frozen):
    """What the logger, metrics and tracer need, read when :mod:`wxtoken.observability` is
    imported. Apart from :class:`Settings` because it must never fail: a container whose
    settings are bad still has to log why. A value it cannot read is its default."""

    # powertools' own variables (it reads them too; the template sets both)
    namespace: str = _DEFAULT_NAMESPACE
    service: str = _DEFAULT_SERVICE
    # WXTOKEN_TRACING: opt-in X-Ray (the template's EnableTracing parameter sets it)
    tracing: bool = False
    # WXTOKEN_PER_APP_METRICS: the metrics written for every app on every run (SecondsToExpiry
    # and TokenRefreshed by appid). CloudWatch bills each metric/dimension combination USD 0.30
    # a month, prorated by the hours it is sent: per app that is USD 0.60 a month, which the
    # template's PerAppMetrics parameter opts into. Failures keep their appid either way.
    per_app_metrics: bool = False
    # Lambda's AWS_LAMBDA_INITIALIZATION_TYPE: a provisioned-concurrency container's first
    # invocation is no cold start (powertools' Logger reads it the same way)
    provisioned_concurrency: bool = False
    # powertools' POWERTOOLS_METRICS_DISABLED, and POWERTOOLS_DEV when that is unset: no EMF
    # line is written (powertools' rule, metrics/functions.py; a value it cannot read leaves
    # metrics on, where powertools would raise at every flush)
    metrics_disabled: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilitySettings:
        env = os.environ if environ is None else environ
        return cls(
            namespace=env.get("POWERTOOLS_METRICS_NAMESPACE", "").strip() or _DEFAULT_NAMESPACE,
            service=env.get("POWERTOOLS_SERVICE_NAME", "").strip() or _DEFAULT_SERVICE,
            tracing=env.get("WXTOKEN_TRACING", "").strip().lower() in _TRUE,
            per_app_metrics=env.get("WXTOKEN_PER_APP_METRICS", "").strip().lower() in _TRUE,
            provisioned_concurrency=env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency",
            metrics_disabled=_metrics_disabled(env),
        )


def _metrics_disabled(env: Mapping[str, str]) -> bool:
    raw = env.get("POWERTOOLS_METRICS_DISABLED")
    if raw is not None:
        return raw.strip().lower() in _POWERTOOLS_TRUE
    return env.get("POWERTOOLS_DEV", "").strip().lower() in _POWERTOOLS_TRUE


def _enum[E: StrEnum](env: Mapping[str, str], name: str, kind: type[E], default: E) -> E:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ConfigError(f"{name}={raw!r} is not one of: {allowed}") from None


def _int(env: Mapping[str, str], name: str, default: int, *, allow_zero: bool = False) -> int:
    return _number(env, name, default, int, "a whole number", allow_zero=allow_zero)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float, "a number of seconds")


def _number[N: (int, float)](
    env: Mapping[str, str], name: str, default: N, parse: type[N], what: str, *, allow_zero: bool = False
) -> N:
    """``name``'s value, or ``default`` when unset: positive (or zero where allowed) and
    finite; ``nan`` and ``inf`` are no timeout or period anyone means."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    finite = not isinstance(value, float) or math.isfinite(value)  # a 400-digit int is finite
    if not (finite and (value > 0 or (allow_zero and value == 0))):
        raise ConfigError(f"{name} must be {'zero or more' if allow_zero else 'positive'}, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")
