"""WeChat's server callbacks: the pipeline, your handlers' router, dedup, and the wiring.

- :mod:`.pipeline` URL verification and messages (plain, safe, compatible mode)
- :mod:`.router` :class:`MessageRouter`, where your handlers register
- :mod:`.context` :class:`HandlerContext`, what a handler may take besides the message
- :mod:`.dedup` dedup of WeChat's retries (on the token store's records)
- :mod:`.wiring` the webhook's objects, built once per container
"""

from wxtoken.webhook.context import HandlerContext
from wxtoken.webhook.pipeline import Deduplicator, NoDeduplication, Webhook, WebhookResponse
from wxtoken.webhook.router import MessageRouter

__all__ = ["Deduplicator", "HandlerContext", "MessageRouter", "NoDeduplication", "Webhook", "WebhookResponse"]
