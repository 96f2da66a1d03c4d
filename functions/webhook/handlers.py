"""YOUR business logic: register a handler per message type or event here.

This is the one place to edit. A handler gets the parsed message and returns a passive
reply (``TextReply``, ``ImageReply``, ``NewsReply``, …) or ``None`` for no reply. It has
about 4 s (``WEBHOOK_HANDLER_TIMEOUT_SECONDS``); past that WeChat is answered ``success``
and the handler's reply is dropped — slow work should reply later through the
customer-service message API::

    from wxtoken.client import get_client
    get_client().call(appid, "POST", "/cgi-bin/message/custom/send",
                      json={"touser": openid, "msgtype": "text", "text": {"content": "done"}})

The shipped example below echoes text and welcomes new followers; replace it.
"""

from __future__ import annotations

from wxtoken.webhook.router import MessageRouter
from wxtoken.wechat.messages import SubscribeEvent, TextMessage
from wxtoken.wechat.replies import Reply, TextReply

router = MessageRouter()


@router.message("text")
def echo(message: TextMessage) -> Reply | None:
    return TextReply(message.content)


@router.event("subscribe")
def welcome(event: SubscribeEvent) -> Reply | None:
    return TextReply("Welcome! Send me any text and I will echo it.")
