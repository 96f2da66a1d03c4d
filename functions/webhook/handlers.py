"""YOUR business logic: register a handler per message type or event here.

This is the one place to edit; replace the example below or delete it (wxtoken's own tests
do not use it; its tests are tests/integration/test_example_handlers.py, yours to adapt or
delete). docs/webhook-handlers.md says more.

A handler takes the parsed message, or the message and a
:class:`~wxtoken.webhook.HandlerContext` (``appid``, ``openid`` — the sender —, ``deadline``,
``tokens`` for calls back to WeChat), and returns a passive reply (``TextReply``,
``ImageReply``, ``NewsReply``, …) or ``None`` for no reply. It has about 4 s
(``WEBHOOK_HANDLER_TIMEOUT_SECONDS``); past that WeChat is answered ``success`` and the reply
is dropped. Nothing runs after the Lambda's response, so slow work goes to another function
(an async invoke or SQS) that answers later with a customer-service message::

    context.tokens.call(context.appid, "POST", "/cgi-bin/message/custom/send",
                        json={"touser": context.openid, "msgtype": "text", "text": {"content": "done"}})

A dependency of your own goes in requirements.txt next to this file (``sam build`` installs it).
"""

from __future__ import annotations

from wxtoken.webhook import HandlerContext, MessageRouter
from wxtoken.wechat.messages import SubscribeEvent, TextMessage
from wxtoken.wechat.replies import Reply, TextReply

router = MessageRouter()


@router.message("text")
def echo(message: TextMessage) -> Reply | None:
    """Text comes back as it was sent: a passive reply, inside WeChat's 5 s."""
    return TextReply(message.content)


@router.event("subscribe")
def welcome(event: SubscribeEvent, context: HandlerContext) -> Reply | None:
    """A new follower is greeted; ``context`` says who (the openid) and for which app."""
    return TextReply(f"Welcome to {context.appid}! Send me any text and I will echo it.")
