"""Builds the webhook's long-lived objects once per container, from the environment.

The message path needs no HTTP client and no refresher, so the :class:`TokenClient` (which
brings both) is built only when the token API or business code first asks for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wxtoken.apps import WEBHOOK_SECRET, AppsSource
from wxtoken.aws import new_session
from wxtoken.config import Settings
from wxtoken.errors import ConfigError
from wxtoken.observability import logger
from wxtoken.store import TokenStore, open_store
from wxtoken.webhook.pipeline import Deduplicator, NoDeduplication, Webhook
from wxtoken.webhook.platform import PlatformEvents
from wxtoken.webhook.router import MessageRouter

if TYPE_CHECKING:
    from wxtoken.client import TokenClient


class WebhookRuntime:
    def __init__(
        self,
        settings: Settings,
        apps: AppsSource,
        webhook: Webhook,
        dedup: Deduplicator,
        tokens_factory: Callable[[], TokenClient],
        platform_events: PlatformEvents | None = None,
    ) -> None:
        self.settings = settings
        self.apps = apps
        self.webhook = webhook
        self._platform_events = platform_events
        self.dedup = dedup
        self._tokens = _Once(tokens_factory)

    @property
    def tokens(self) -> TokenClient:
        return self._tokens()

    @property
    def platform_events(self) -> PlatformEvents:
        """The 授权事件接收URL's intake; :class:`ConfigError` for a runtime built without a
        token store (a benchmark's: nothing to write the pushes to)."""
        if self._platform_events is None:
            raise ConfigError("this webhook runtime has no token store for third-party platform pushes")
        return self._platform_events

    def register_context(self, context: Any) -> None:
        self.dedup.register_context(context)


class _Once:
    """``factory()``, called on first use and kept: one token client per container, whether
    the token API or a handler (:class:`~wxtoken.webhook.context.HandlerContext`) asks first."""

    def __init__(self, factory: Callable[[], TokenClient]) -> None:
        self._factory = factory
        self._value: TokenClient | None = None
        self._lock = threading.Lock()

    def __call__(self) -> TokenClient:
        with self._lock:
            if self._value is None:
                self._value = self._factory()
            return self._value


def build_deduplicator(settings: Settings, store: TokenStore, boto3_session: Any = None) -> Deduplicator:
    """On the token store when it can hold dedup records (its own connection: one pool and
    one AUTH per container), else the DynamoDB table, else none (local runs)."""
    backend = store.dedup_backend()
    if backend is not None:
        from wxtoken.webhook.dedup import store_deduplicator

        return store_deduplicator(backend, expires_after_seconds=settings.dedup_seconds)
    if settings.dedup_table:
        from wxtoken.webhook.dedup import dynamodb_deduplicator

        return dynamodb_deduplicator(
            settings.dedup_table, expires_after_seconds=settings.dedup_seconds, boto3_session=boto3_session
        )
    logger.warning("no DEDUP_TABLE and no Redis store: WeChat's retries may run handlers twice")
    return NoDeduplication()


def webhook_apps(settings: Settings, boto3_session: Any = None) -> AppsSource:
    """The webhook's apps: from the webhook secret when ``WECHAT_WEBHOOK_SECRET_ID`` names one
    (then the apps secret, with every AppSecret, is never read here), else the apps secret.

    The token API answers only for apps listed in the secret read here, so the webhook secret
    lists every app the token API serves (``{}`` is enough for an app with no callbacks).
    """
    max_age = settings.secret_cache_seconds
    if settings.webhook_secret_id:
        return AppsSource(
            settings.webhook_secret_id, max_age=max_age, shape=WEBHOOK_SECRET, boto3_session=boto3_session
        )
    return AppsSource(settings.required_apps_secret_id, max_age=max_age, boto3_session=boto3_session)


def build_webhook_runtime(
    router: MessageRouter,
    *,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.time,
) -> WebhookRuntime:
    settings = settings or Settings.from_env()
    # One boto3 Session for the clients of the message path (the secret, the dedup table),
    # reading the cut service models (wxtoken.aws): each extra Session loads botocore's data
    # afresh, 25 to 45 ms of the cold start, measured here (a second client in one Session:
    # 18 to 39 ms; a new Session and its client: 62 to 67 ms).
    session = new_session()
    apps = webhook_apps(settings, session)
    # One store per container, shared by dedup and the token API. Opening it connects to
    # nothing yet (a Redis Cluster excepted), so the message path pays only for what it uses.
    store = open_store(settings, boto3_session=session)
    dedup = build_deduplicator(settings, store, session)

    def tokens() -> TokenClient:
        from wxtoken.budget import REFRESH_INVOKE
        from wxtoken.client import TokenClient

        return TokenClient.from_settings(
            settings, store=store, invoke_budget=REFRESH_INVOKE, boto3_session=session
        )

    # Handlers share the token API's client (HandlerContext.tokens), built on first use.
    shared = _Once(tokens)
    webhook = Webhook(settings=settings, apps=apps, router=router, dedup=dedup, clock=clock, tokens=shared)
    # The platform's pushes go to the same store: tickets to the component's records,
    # authorization events to the refresher's queue.
    platform_events = PlatformEvents(webhook=webhook, store=store)
    return WebhookRuntime(settings, apps, webhook, dedup, shared, platform_events)
