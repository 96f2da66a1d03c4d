"""Passive replies (被动回复用户消息): the XML the webhook answers a message with.

A handler returns one of these; :func:`reply_to` renders it addressed back to the sender.
Every user-supplied string goes through :func:`cdata`, which is safe for any text. With no
reply WeChat expects the plain string :data:`SUCCESS` (or an empty body), never an empty XML.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from wxtoken.frozen import Frozen

if TYPE_CHECKING:
    from wxtoken.wechat.messages import Message

SUCCESS = "success"
# What an encrypted reply's Encrypt (base64), MsgSignature (hex) and Nonce (digits) are made of.
_ENVELOPE_VALUE = re.compile("[A-Za-z0-9+/=]*")
# A reply's MsgType: WeChat's are lower-case words ("transfer_customer_service").
_MSG_TYPE = re.compile("[a-z_]+")

# WeChat shows at most 8 articles in a news reply (1 when answering a user's text, image,
# voice, video, news or location message — WeChat enforces that one itself).
MAX_ARTICLES = 8

# Characters XML 1.0 forbids anywhere, even in CDATA (XML 1.0 §2.2 Char), lone surrogates
# included. One compiled pattern: ranges are what a str method cannot test. Written as the
# forbidden ranges, the complement of §2.2's Char up to U+10FFFF (str's last code point; the
# two match the same code points, all 1,114,112 tested): the negated class of the allowed
# ranges took 7 ms of the webhook's cold start to compile, this about 1.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def cdata(text: str) -> str:
    """``text`` as a CDATA section that holds any content.

    ``]]>`` is split across two sections; a carriage return is written as ``&#13;``
    between sections, since a parser turns a literal one into a line feed; characters XML
    1.0 forbids are dropped.
    """
    if not text.isprintable():
        # str.isprintable() is true of no character XML forbids (controls, surrogates and
        # U+FFFE/U+FFFF are not printable): the regex runs only when one may be there.
        text = _ILLEGAL_XML.sub("", text)
    if "]]>" in text:
        text = text.replace("]]>", "]]]]><![CDATA[>")
    if "\r" in text:
        text = text.replace("\r", "]]>&#13;<![CDATA[")
    return f"<![CDATA[{text}]]>"


def _fields(*fields: tuple[str, str]) -> str:
    """``<Tag><![CDATA[value]]></Tag>`` for each ``(Tag, value)``, in order. Every string a
    reply writes goes through :func:`cdata`, here or in the f-strings of the hot path (the
    reply's head, a text reply), but for values checked to hold nothing it would change: a
    reply class's ``MsgType`` (checked when the class is defined) and the encrypted envelope's
    ``Encrypt``, ``MsgSignature`` and ``Nonce`` (checked by :func:`encrypted_reply`)."""
    return "".join(f"<{tag}>{cdata(value)}</{tag}>" for tag, value in fields)


def _element(tag: str, *fields: tuple[str, str]) -> str:
    """``fields`` inside ``<tag>``: WeChat nests media and articles one level down."""
    return f"<{tag}>{_fields(*fields)}</{tag}>"


class Reply(Frozen, ABC):
    """A passive reply; :meth:`render` gives WeChat's XML.

    Replies are :class:`~wxtoken.frozen.Frozen` value classes (compared and hashed by value),
    not dataclasses, for the webhook's cold start (see :class:`~wxtoken.wechat.messages.Message`).
    """

    msg_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        msg_type = cls.__dict__.get("msg_type")
        if msg_type is not None and not (isinstance(msg_type, str) and _MSG_TYPE.fullmatch(msg_type)):
            # render() writes it into CDATA as it is: it may hold nothing cdata() would change.
            raise TypeError(
                f"{cls.__qualname__}.msg_type must be WeChat's lower-case MsgType, not {msg_type!r}"
            )

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        """The reply's XML, sent to ``to_user`` (the follower) from ``from_user`` (the account)."""
        # One f-string, each value through cdata() (MsgType, checked at the class's
        # definition, needs none): what _fields writes, without building and joining a
        # generator per call (3.5 µs of a text reply where this takes 1.6;
        # bench/webhook_roundtrip.py --breakdown). tests/unit/test_replies.py pins the XML.
        return (
            f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
            f"<CreateTime>{int(create_time)}</CreateTime><MsgType><![CDATA[{self.msg_type}]]></MsgType>"
            f"{self._body()}</xml>"
        )

    @abstractmethod
    def _body(self) -> str:
        """The elements after MsgType."""


class TextReply(Reply):
    msg_type: ClassVar[str] = "text"
    content: str

    def _body(self) -> str:
        return f"<Content>{cdata(self.content)}</Content>"


class ImageReply(Reply):
    msg_type: ClassVar[str] = "image"
    media_id: str

    def _body(self) -> str:
        return _element("Image", ("MediaId", self.media_id))


class VoiceReply(Reply):
    msg_type: ClassVar[str] = "voice"
    media_id: str

    def _body(self) -> str:
        return _element("Voice", ("MediaId", self.media_id))


class VideoReply(Reply):
    msg_type: ClassVar[str] = "video"
    media_id: str
    title: str = ""
    description: str = ""

    def _body(self) -> str:
        return _element(
            "Video", ("MediaId", self.media_id), ("Title", self.title), ("Description", self.description)
        )


class MusicReply(Reply):
    msg_type: ClassVar[str] = "music"
    title: str = ""
    description: str = ""
    music_url: str = ""
    hq_music_url: str = ""
    thumb_media_id: str = ""

    def _body(self) -> str:
        return _element(
            "Music",
            ("Title", self.title),
            ("Description", self.description),
            ("MusicUrl", self.music_url),
            ("HQMusicUrl", self.hq_music_url),
            ("ThumbMediaId", self.thumb_media_id),
        )


class Article(Frozen):
    """One item of a :class:`NewsReply`."""

    title: str
    description: str = ""
    pic_url: str = ""
    url: str = ""

    def render(self) -> str:
        return _element(
            "item",
            ("Title", self.title),
            ("Description", self.description),
            ("PicUrl", self.pic_url),
            ("Url", self.url),
        )


class NewsReply(Reply):
    """1 to 8 articles; raises ``ValueError`` otherwise."""

    msg_type: ClassVar[str] = "news"
    articles: tuple[Article, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.articles, tuple):  # a list would make the reply unhashable
            object.__setattr__(self, "articles", tuple(self.articles))
        if not 1 <= len(self.articles) <= MAX_ARTICLES:
            raise ValueError(f"a news reply holds 1 to {MAX_ARTICLES} articles, not {len(self.articles)}")

    def _body(self) -> str:
        items = "".join(article.render() for article in self.articles)
        return f"<ArticleCount>{len(self.articles)}</ArticleCount><Articles>{items}</Articles>"


class TransferCustomerServiceReply(Reply):
    """Hands the message to customer service (客服), to ``kf_account`` when given."""

    msg_type: ClassVar[str] = "transfer_customer_service"
    kf_account: str | None = None

    def _body(self) -> str:
        if not self.kf_account:
            return ""
        return _element("TransInfo", ("KfAccount", self.kf_account))


def reply_to(message: Message, reply: Reply, *, create_time: int) -> str:
    """``reply`` rendered as the answer to ``message``: back to its sender, from its account."""
    return reply.render(to_user=message.from_user, from_user=message.to_user, create_time=create_time)


def encrypted_reply(*, encrypt: str, signature: str, timestamp: str, nonce: str) -> str:
    """The safe-mode envelope around an encrypted reply (Tencent's sample template)."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise ValueError("timestamp must be decimal digits")
    if not _ENVELOPE_VALUE.fullmatch(f"{encrypt}{signature}{nonce}"):
        raise ValueError("encrypt, signature and nonce must be base64, hex and digits")
    # Checked to be base64, hex and digits: nothing in them cdata() would change, and the one
    # check costs a third of three cdata() calls.
    return (
        f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )
