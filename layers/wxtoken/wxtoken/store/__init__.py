"""Token stores: one protocol (:mod:`.base`), one module per backend.

:func:`open_store` is the only place that picks a backend; it imports that backend's
module alone, so an SSM or DynamoDB deployment never loads redis-py (and vice versa) at cold
start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

from wxtoken.config import Settings, StoreKind
from wxtoken.errors import ConfigError, StoreError
from wxtoken.secret_values import read_secret_string
from wxtoken.store.base import TokenStore

__all__ = ["TokenStore", "open_store"]


def open_store(
    settings: Settings, *, clock: Callable[[], float] = time.time, boto3_session: Any = None
) -> TokenStore:
    """The store ``settings.token_store`` names, on a new client.

    Raises :class:`ConfigError` when the Redis settings are incomplete or the AUTH secret
    has the wrong shape, :class:`StoreError` when the secret cannot be fetched (or a
    Redis Cluster cannot be reached to learn its slots). ``clock`` stands in for SSM's and
    DynamoDB's clocks until they have answered once (their leases expire on the service's
    clock); Redis leases expire on the server's clock. ``boto3_session``: the Session the SSM
    or DynamoDB client is made in (one per container keeps botocore's data loaded once), else
    boto3's default.
    """
    if settings.token_store is StoreKind.REDIS:
        from wxtoken.store.redis_store import RedisTokenStore

        url = cast(str, settings.redis_url)  # Settings refuses a Redis store without one
        username, password = (None, None)
        if settings.redis_auth_secret_id:
            username, password = _redis_auth(settings.redis_auth_secret_id, boto3_session)
        return RedisTokenStore.from_url(
            url,
            cluster=settings.redis_cluster,
            username=username,
            password=password,
        )

    if settings.token_store is StoreKind.DYNAMODB:
        from wxtoken.store.dynamodb_store import DynamoDBTokenStore

        return DynamoDBTokenStore.from_settings(settings, clock=clock, boto3_session=boto3_session)

    from wxtoken.store.ssm_store import SSMTokenStore

    return SSMTokenStore.from_settings(settings, clock=clock, boto3_session=boto3_session)


def _redis_auth(secret_id: str, boto3_session: Any) -> tuple[str | None, str]:
    """``(username, password)`` from a secret holding a password or ``{"username", "password"}``
    (read within :data:`wxtoken.budget.SECRET`: the webhook reads it before anything else)."""
    text = read_secret_string(
        secret_id, what="Redis AUTH secret", error=StoreError, boto3_session=boto3_session
    )
    if not text.lstrip().startswith("{"):
        return None, text
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigError("the Redis AUTH secret looks like JSON but does not parse") from None
    if not isinstance(value, dict) or not isinstance(value.get("password"), str):
        raise ConfigError('the Redis AUTH secret must be a password or {"username", "password"}')
    username = value.get("username")
    if username is not None and not isinstance(username, str):
        raise ConfigError("the Redis AUTH secret's username must be a string")
    return username, value["password"]
