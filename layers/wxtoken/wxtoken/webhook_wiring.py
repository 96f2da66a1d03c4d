"""Builds the webhook's long-lived objects once per container, from the environment.

The message path needs no HTTP client and no refresher, so the :class:`TokenClient` (which
brings both) is built only when the token API or business code first asks for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wxtoken.apps import AppsSource
from wxtoken.config import Settings, StoreKind
from wxtoken.dispatch import MessageRouter
from wxtoken.observability import logger
from wxtoken.webhook import Deduplicator, NoDeduplication, Webhook

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
    ) -> None:
        self.settings = settings
        self.apps = apps
        self.webhook = webhook
        self.dedup = dedup
        self._tokens_factory = tokens_factory
        self._tokens: TokenClient | None = None
        self._lock = threading.Lock()

    @property
    def tokens(self) -> TokenClient:
        with self._lock:
            if self._tokens is None:
                self._tokens = self._tokens_factory()
            return self._tokens

    def register_context(self, context: Any) -> None:
        register = getattr(self.dedup, "register_context", None)
        if register is not None:
            register(context)


def build_deduplicator(settings: Settings) -> Deduplicator:
    """Redis when it is the token store, else the DynamoDB table, else none (local runs)."""
    if settings.token_store is StoreKind.REDIS:
        from wxtoken.dedup import redis_deduplicator
        from wxtoken.store import open_store

        client = getattr(open_store(settings), "client", None)
        if client is not None:
            return redis_deduplicator(client, expires_after_seconds=settings.dedup_seconds)
    if settings.dedup_table:
        from wxtoken.dedup import dynamodb_deduplicator

        return dynamodb_deduplicator(settings.dedup_table, expires_after_seconds=settings.dedup_seconds)
    logger.warning("no DEDUP_TABLE and no Redis store: WeChat's retries may run handlers twice")
    return NoDeduplication()


def build_webhook_runtime(
    router: MessageRouter,
    *,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.time,
) -> WebhookRuntime:
    settings = settings or Settings.from_env()
    apps = AppsSource(settings.apps_secret_id, max_age=settings.secret_cache_seconds)
    dedup = build_deduplicator(settings)
    webhook = Webhook(settings=settings, apps=apps, router=router, dedup=dedup, clock=clock)

    def tokens() -> TokenClient:
        from wxtoken.client import TokenClient

        return TokenClient.from_settings(settings)

    return WebhookRuntime(settings, apps, webhook, dedup, tokens)
