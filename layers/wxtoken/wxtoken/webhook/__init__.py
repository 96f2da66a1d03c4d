"""WeChat's server callbacks: the pipeline, your handlers' router, dedup, and the wiring.

- :mod:`.pipeline` URL verification and messages (plain, safe, compatible mode)
- :mod:`.router` :class:`MessageRouter`, where your handlers register
- :mod:`.dedup` dedup of WeChat's retries (powertools Idempotency)
- :mod:`.wiring` the webhook's objects, built once per container
"""

from wxtoken.webhook.pipeline import Deduplicator, NoDeduplication, Webhook, WebhookResponse
from wxtoken.webhook.router import MessageRouter

__all__ = ["Deduplicator", "MessageRouter", "NoDeduplication", "Webhook", "WebhookResponse"]
