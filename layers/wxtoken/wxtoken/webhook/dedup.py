"""Dedup of WeChat's retries across containers, on powertools Idempotency.

WeChat retries a callback it got no answer to (up to 3 times within ~15 s), possibly
reaching another container. The first delivery's answer is kept in Redis (when that is the
token store) or DynamoDB (``DEDUP_TABLE``, when the store is SSM), keyed by MsgId or, for
events, FromUserName + CreateTime + Event; a retry gets the same answer without running
the business handler again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from wxtoken.budget import DEDUP
from wxtoken.observability import DUPLICATE_DELIVERY, count, logger
from wxtoken.store.base import DedupBackend
from wxtoken.wechat.replies import SUCCESS


class PowertoolsDeduplicator:
    """Runs ``produce`` once per key within ``expires_after_seconds``."""

    def __init__(
        self, persistence_store: Any, *, expires_after_seconds: int, key_prefix: str | None = None
    ) -> None:
        self.config = IdempotencyConfig(
            event_key_jmespath="key",
            expires_after_seconds=expires_after_seconds,
            raise_on_no_idempotency_key=True,
            use_local_cache=True,
        )

        @idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=persistence_store,
            config=self.config,
            key_prefix=key_prefix,
        )
        def answer_once(*, delivery: dict[str, str], produce: Callable[[], str]) -> dict[str, str]:
            return {"answer": produce()}

        self._answer_once = answer_once

    def register_context(self, context: Any) -> None:
        """Lets powertools expire an in-progress record with the invocation's deadline."""
        self.config.register_lambda_context(context)

    def once(self, key: str, produce: Callable[[], str], *, delivery: bool = True) -> str:
        """``produce()``'s answer for the first delivery of ``key`` (``{appid}:…``), the stored
        answer for a retry. A retry is counted as ``DuplicateDelivery``: powertools answers it
        from the store without calling the function, so ``produce`` never runs. With
        ``delivery=False`` (a key that is not a delivery: a signature's binding) a hit is
        neither logged nor counted."""
        appid = key.partition(":")[0]  # the rest names the user: not for the logs
        produced: list[str] = []

        def produce_once() -> str:
            produced.append(produce())
            return produced[-1]

        try:
            result = self._answer_once(delivery={"key": key}, produce=produce_once)
        except IdempotencyAlreadyInProgressError:
            # The first delivery is still being handled in another container; its answer
            # will not reach WeChat in time anyway. Nothing runs twice.
            if delivery:
                logger.info(
                    "duplicate delivery while the first is in progress; answered success",
                    extra={"appid": appid},
                )
                count(DUPLICATE_DELIVERY)
            return SUCCESS
        except IdempotencyPersistenceLayerError as exc:
            # The dedup store is down: better a rare double reply than a lost message.
            logger.warning(
                "dedup store unavailable; handling without dedup",
                extra={"appid": appid, "error": type(exc).__name__},
            )
            # If it failed only to store the answer, the handler has run: do not run it twice.
            return produced[-1] if produced else produce()
        if not produced and delivery:
            logger.info("duplicate delivery; answered as the first time", extra={"appid": appid})
            count(DUPLICATE_DELIVERY)
        return str(result["answer"])


def store_deduplicator(backend: DedupBackend, *, expires_after_seconds: int) -> PowertoolsDeduplicator:
    """Dedup on the token store's own connection (see :meth:`TokenStore.dedup_backend`)."""
    return PowertoolsDeduplicator(
        backend.persistence_layer, expires_after_seconds=expires_after_seconds, key_prefix=backend.key_prefix
    )


def dynamodb_deduplicator(
    table_name: str, *, expires_after_seconds: int, boto3_session: Any = None
) -> PowertoolsDeduplicator:
    """Dedup on the DynamoDB table, with timeouts from :data:`wxtoken.budget.DEDUP`.

    A dead table makes the first write fail (IdempotencyPersistenceLayerError) in well under
    a second and the message is handled without dedup, inside WeChat's 5 s.
    """
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    layer = DynamoDBPersistenceLayer(
        table_name=table_name, boto_config=DEDUP.botocore_config(), boto3_session=boto3_session
    )
    return PowertoolsDeduplicator(layer, expires_after_seconds=expires_after_seconds)
