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

A handler takes the message, or the message and a
:class:`~wxtoken.webhook.context.HandlerContext` (appid, openid, deadline, token client)::

    @router.message("image")
    def on_image(message: ImageMessage, context: HandlerContext) -> Reply | None: ...

Which one is decided once, at registration, from the handler's signature: two required
positional parameters get the context; anything else gets the message alone, as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from wxtoken.webhook.context import HandlerContext
from wxtoken.wechat.messages import Event, Message
from wxtoken.wechat.replies import Reply

MessageHandler = Callable[[Any], Reply | None]
"""``handler(message)``: the message's own class (``TextMessage``, ``SubscribeEvent``, …)."""
ContextHandler = Callable[[Any, HandlerContext], Reply | None]
"""``handler(message, context)``."""
Handler = MessageHandler | ContextHandler
H = TypeVar("H", bound=Handler)
# A registered handler as the router calls it: with the message and what builds the context,
# called only for a handler that takes one (1.2 µs a message otherwise spent on a context
# nobody reads; bench/webhook_roundtrip.py --breakdown).
_Call = Callable[[Message, Callable[[], HandlerContext | None]], Reply | None]


class MessageRouter:
    """Maps WeChat's messages to your handlers: ``@router.message("text")``,
    ``@router.event("subscribe")``, ``@router.default``. A handler returns a reply (or
    ``None`` for ``success``); :meth:`dispatch` picks the handler for one message."""

    def __init__(self) -> None:
        self._messages: dict[str, tuple[Handler, _Call]] = {}
        self._events: dict[str, tuple[Handler, _Call]] = {}
        self._default: tuple[Handler, _Call] | None = None

    def message(self, msg_type: str) -> Callable[[H], H]:
        """Register a handler for a ``MsgType`` (text, image, voice, video, shortvideo, location, link)."""
        return self._register(self._messages, msg_type)

    def event(self, event: str) -> Callable[[H], H]:
        """Register a handler for an ``Event`` (subscribe, unsubscribe, scan, location, click, view, …)."""
        return self._register(self._events, event)

    def default(self, handler: H) -> H:
        """The handler for everything nothing else claimed."""
        self._default = (handler, _caller(handler))
        return handler

    def handler_for(self, message: Message) -> Handler | None:
        """The registered handler (as written) that :meth:`dispatch` would run, or ``None``."""
        found = self._entry(message)
        return found[0] if found else None

    def dispatch(self, message: Message, context: HandlerContext | None = None) -> Reply | None:
        """Run the message's handler; ``None`` when nothing is registered for it.

        A handler that takes a context and is dispatched without one gets ``TypeError``:
        the pipeline always passes one; only a test calling ``dispatch`` directly can forget.
        """
        return self.dispatch_lazily(message, lambda: context)

    def dispatch_lazily(self, message: Message, context: Callable[[], HandlerContext | None]) -> Reply | None:
        """:meth:`dispatch`, with ``context()`` called only if the message's handler takes one."""
        found = self._entry(message)
        return found[1](message, context) if found else None

    def _entry(self, message: Message) -> tuple[Handler, _Call] | None:
        if isinstance(message, Event):
            found = self._events.get(message.event.lower())
        else:
            found = self._messages.get(message.msg_type.lower())
        return found or self._default

    @staticmethod
    def _register(table: dict[str, tuple[Handler, _Call]], name: str) -> Callable[[H], H]:
        key = name.strip().lower()
        if not key:
            raise ValueError("a handler needs a message type or event name")

        def decorate(handler: H) -> H:
            if key in table:
                raise ValueError(f"a handler for {name!r} is already registered")
            table[key] = (handler, _caller(handler))
            return handler

        return decorate


def _takes_context(handler: Handler) -> bool:
    """Whether ``handler`` has a second *required* positional parameter: the context's place.

    Required, so that handlers written before contexts keep getting the message alone,
    including ``def h(message, cache={})`` or ``def h(*args)``. Raises ``TypeError`` at
    registration for a handler that cannot take the message: better at import (the
    Lambda's cold start, a test's import) than on a message.
    """
    if inspect.iscoroutinefunction(handler):
        # Called, it would return a coroutine, never a reply: the webhook answers WeChat
        # within one synchronous invocation (no event loop runs after the response).
        name = getattr(handler, "__qualname__", repr(handler))
        raise TypeError(f"handler {name} is async: handlers are plain functions (docs/webhook-handlers.md)")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return False  # a builtin without a signature: called as before, with the message
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in signature.parameters.values() if p.kind in positional and p.default is p.empty]
    if len(required) == 2:
        return True
    try:
        signature.bind(None)
    except TypeError:
        name = getattr(handler, "__qualname__", repr(handler))
        raise TypeError(f"handler {name} must take (message) or (message, context)") from None
    return False


def _caller(handler: Handler) -> _Call:
    """``handler`` as the router calls it: always (message, context)."""
    if _takes_context(handler):
        with_context: ContextHandler = handler  # type: ignore[assignment]

        def call_with(message: Message, context: Callable[[], HandlerContext | None]) -> Reply | None:
            built = context()
            if built is None:
                raise TypeError("this handler takes a context: dispatch(message, context)")
            return with_context(message, built)

        return call_with
    alone: MessageHandler = handler  # type: ignore[assignment]
    return lambda message, _context: alone(message)
