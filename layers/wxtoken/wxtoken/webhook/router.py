"""Where business code plugs in: handlers registered by message type or event.

    router = MessageRouter()

    @router.message("text")
    def echo(message: TextMessage) -> Reply | None:
        return TextReply(message.content)

    @router.event("subscribe")
    def welcome(event: SubscribeEvent) -> Reply | None: ...

A handler returns a :class:`~wxtoken.wechat.replies.Reply` for a passive reply, or ``None``
for none (WeChat gets ``success``). Unregistered types fall to ``@router.default`` or get
no reply. Names match WeChat's ``MsgType`` / ``Event`` values, case-insensitively.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from wxtoken.wechat.messages import Event, Message
from wxtoken.wechat.replies import Reply

Handler = Callable[[Any], Reply | None]
H = TypeVar("H", bound=Handler)


class MessageRouter:
    """Maps WeChat's messages to your handlers: ``@router.message("text")``,
    ``@router.event("subscribe")``, ``@router.default``. A handler returns a reply (or
    ``None`` for ``success``); :meth:`dispatch` picks the handler for one message."""

    def __init__(self) -> None:
        self._messages: dict[str, Handler] = {}
        self._events: dict[str, Handler] = {}
        self._default: Handler | None = None

    def message(self, msg_type: str) -> Callable[[H], H]:
        """Register a handler for a ``MsgType`` (text, image, voice, video, shortvideo, location, link)."""
        return self._register(self._messages, msg_type)

    def event(self, event: str) -> Callable[[H], H]:
        """Register a handler for an ``Event`` (subscribe, unsubscribe, scan, location, click, view, …)."""
        return self._register(self._events, event)

    def default(self, handler: H) -> H:
        """The handler for everything nothing else claimed."""
        self._default = handler
        return handler

    def handler_for(self, message: Message) -> Handler | None:
        if isinstance(message, Event):
            found = self._events.get(message.event.lower())
        else:
            found = self._messages.get(message.msg_type.lower())
        return found or self._default

    def dispatch(self, message: Message) -> Reply | None:
        handler = self.handler_for(message)
        return handler(message) if handler else None

    @staticmethod
    def _register(table: dict[str, Handler], name: str) -> Callable[[H], H]:
        key = name.strip().lower()
        if not key:
            raise ValueError("a handler needs a message type or event name")

        def decorate(handler: H) -> H:
            if key in table:
                raise ValueError(f"a handler for {name!r} is already registered")
            table[key] = handler
            return handler

        return decorate
