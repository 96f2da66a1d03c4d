"""The router: handlers by type, one argument or two, decided once at registration."""

from __future__ import annotations

from typing import Any

import pytest

from wxtoken.deadline import Deadline
from wxtoken.webhook import HandlerContext, MessageRouter
from wxtoken.wechat.messages import Message, TextMessage, parse_message
from wxtoken.wechat.replies import Reply, TextReply

TEXT = (
    b"<xml><ToUserName>gh_account</ToUserName><FromUserName>oUSER</FromUserName>"
    b"<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hi</Content>"
    b"<MsgId>1</MsgId></xml>"
)


def _context(message: Message) -> HandlerContext:
    def no_client() -> Any:
        raise AssertionError("the router never builds the token client itself")

    return HandlerContext("wx1111111111111111", message.from_user, message, Deadline.after(4), no_client)


def test_a_one_argument_handler_gets_the_message_alone():
    router = MessageRouter()

    @router.message("text")
    def echo(message: TextMessage) -> Reply | None:
        return TextReply(message.content)

    message = parse_message(TEXT)
    assert router.dispatch(message, _context(message)) == TextReply("hi")
    assert router.dispatch(message) == TextReply("hi")  # as before contexts existed
    assert router.handler_for(message) is echo


def test_a_two_argument_handler_gets_the_context():
    router = MessageRouter()

    @router.message("TEXT")
    def greet(message: TextMessage, context: HandlerContext) -> Reply | None:
        return TextReply(f"{context.openid}@{context.appid}: {message.content}")

    message = parse_message(TEXT)
    assert router.dispatch(message, _context(message)) == TextReply("oUSER@wx1111111111111111: hi")
    with pytest.raises(TypeError, match="takes a context"):
        router.dispatch(message)


def test_a_lazy_dispatch_builds_the_context_only_for_a_handler_that_takes_one():
    # Given one handler with a context and one without, dispatched with a context builder
    router = MessageRouter()
    built: list[HandlerContext] = []

    @router.message("text")
    def echo(message: TextMessage) -> Reply | None:
        return TextReply(message.content)

    @router.event("subscribe")
    def welcome(event: Any, context: HandlerContext) -> Reply | None:
        return TextReply(f"welcome to {context.appid}")

    def build(message: Message) -> Any:
        def context() -> HandlerContext:
            built.append(_context(message))
            return built[-1]

        return context

    # When a text message and a subscribe event arrive
    text = parse_message(TEXT)
    subscribe = parse_message(
        b"<xml><ToUserName>gh_account</ToUserName><FromUserName>oUSER</FromUserName>"
        b"<CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>"
    )

    # Then the text's handler ran without one being built, and the event's got the one built
    assert router.dispatch_lazily(text, build(text)) == TextReply("hi")
    assert built == []
    assert router.dispatch_lazily(subscribe, build(subscribe)) == TextReply("welcome to wx1111111111111111")
    assert len(built) == 1


def test_the_default_handler_may_take_a_context_too():
    router = MessageRouter()
    seen: list[HandlerContext] = []

    @router.default
    def anything(message: Message, context: HandlerContext) -> None:
        seen.append(context)

    message = parse_message(TEXT)
    assert router.dispatch(message, _context(message)) is None
    assert [c.openid for c in seen] == ["oUSER"]


def test_a_handler_that_takes_neither_shape_is_refused_at_registration():
    router = MessageRouter()
    with pytest.raises(TypeError, match=r"\(message\) or \(message, context\)"):

        @router.message("text")
        def three(message: Any, context: Any, extra: Any) -> None: ...


def test_the_context_call_is_for_its_app_and_inside_its_deadline():
    calls: list[tuple[Any, ...]] = []

    class Client:
        def call(self, appid: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            calls.append((appid, method, path, kwargs))
            return {"errcode": 0}

    message = parse_message(TEXT)
    deadline = Deadline.after(4)
    context = HandlerContext("wx1111111111111111", "oUSER", message, deadline, Client)  # type: ignore[arg-type]

    assert context.call("POST", "/cgi-bin/message/custom/send", json={"touser": "oUSER"}) == {"errcode": 0}
    assert calls == [
        (
            "wx1111111111111111",
            "POST",
            "/cgi-bin/message/custom/send",
            {"json": {"touser": "oUSER"}, "deadline": deadline},
        )
    ]


def test_handlers_written_before_contexts_keep_getting_the_message_alone():
    # A second parameter with a default, or *args, was never the context's place.
    router = MessageRouter()
    seen: list[Any] = []

    @router.message("text")
    def count(message: TextMessage, _seen: list[Any] = seen) -> None:
        _seen.append(message.content)

    @router.default
    def anything(*args: Any) -> None:
        seen.append(len(args))

    message = parse_message(TEXT)
    router.dispatch(message, _context(message))
    router.dispatch(parse_message(TEXT.replace(b"text", b"voice")), _context(message))
    assert seen == ["hi", 1]


def test_an_async_handler_is_refused_at_registration():
    router = MessageRouter()
    with pytest.raises(TypeError, match="async"):

        @router.message("text")
        async def later(message: Any, context: Any) -> None: ...
