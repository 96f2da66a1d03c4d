"""Passive replies (被动回复用户消息): the XML the webhook answers a message with.

A handler returns one of these; :func:`reply_to` renders it addressed back to the sender.
Every user-supplied string goes through :func:`cdata`, which is safe for any text. With no
reply WeChat expects the plain string :data:`SUCCESS` (or an empty body), never an empty XML.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from wxtoken.wechat.messages import Message

SUCCESS = "success"

# WeChat shows at most 8 articles in a news reply (1 when answering a user's text, image,
# voice, video, news or location message — WeChat enforces that one itself).
MAX_ARTICLES = 8

# Characters XML 1.0 forbids anywhere, even in CDATA (XML 1.0 §2.2 Char), lone surrogates
# included. One compiled pattern: ranges are what a str method cannot test.
_ILLEGAL_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def cdata(text: str) -> str:
    """``text`` as a CDATA section that holds any content.

    ``]]>`` is split across two sections; a carriage return is written as ``&#13;``
    between sections, since a parser turns a literal one into a line feed; characters XML
    1.0 forbids are dropped.
    """
    text = _ILLEGAL_XML.sub("", text)
    if "]]>" in text:
        text = text.replace("]]>", "]]]]><![CDATA[>")
    if "\r" in text:
        text = text.replace("\r", "]]>&#13;<![CDATA[")
    return f"<![CDATA[{text}]]>"


@dataclass(frozen=True, slots=True)
class Reply(ABC):
    """A passive reply; :meth:`render` gives WeChat's XML."""

    msg_type: ClassVar[str]

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        """The reply's XML, sent to ``to_user`` (the follower) from ``from_user`` (the account)."""
        return (
            f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
            f"<FromUserName>{cdata(from_user)}</FromUserName>"
            f"<CreateTime>{int(create_time)}</CreateTime>"
            f"<MsgType><![CDATA[{self.msg_type}]]></MsgType>"
            f"{self._body()}</xml>"
        )

    @abstractmethod
    def _body(self) -> str:
        """The elements after MsgType."""


@dataclass(frozen=True, slots=True)
class TextReply(Reply):
    msg_type: ClassVar[str] = "text"
    content: str

    def _body(self) -> str:
        return f"<Content>{cdata(self.content)}</Content>"


@dataclass(frozen=True, slots=True)
class ImageReply(Reply):
    msg_type: ClassVar[str] = "image"
    media_id: str

    def _body(self) -> str:
        return f"<Image><MediaId>{cdata(self.media_id)}</MediaId></Image>"


@dataclass(frozen=True, slots=True)
class VoiceReply(Reply):
    msg_type: ClassVar[str] = "voice"
    media_id: str

    def _body(self) -> str:
        return f"<Voice><MediaId>{cdata(self.media_id)}</MediaId></Voice>"


@dataclass(frozen=True, slots=True)
class VideoReply(Reply):
    msg_type: ClassVar[str] = "video"
    media_id: str
    title: str = ""
    description: str = ""

    def _body(self) -> str:
        return (
            f"<Video><MediaId>{cdata(self.media_id)}</MediaId><Title>{cdata(self.title)}</Title>"
            f"<Description>{cdata(self.description)}</Description></Video>"
        )


@dataclass(frozen=True, slots=True)
class MusicReply(Reply):
    msg_type: ClassVar[str] = "music"
    title: str = ""
    description: str = ""
    music_url: str = ""
    hq_music_url: str = ""
    thumb_media_id: str = ""

    def _body(self) -> str:
        return (
            f"<Music><Title>{cdata(self.title)}</Title>"
            f"<Description>{cdata(self.description)}</Description>"
            f"<MusicUrl>{cdata(self.music_url)}</MusicUrl>"
            f"<HQMusicUrl>{cdata(self.hq_music_url)}</HQMusicUrl>"
            f"<ThumbMediaId>{cdata(self.thumb_media_id)}</ThumbMediaId></Music>"
        )


@dataclass(frozen=True, slots=True)
class Article:
    """One item of a :class:`NewsReply`."""

    title: str
    description: str = ""
    pic_url: str = ""
    url: str = ""

    def render(self) -> str:
        return (
            f"<item><Title>{cdata(self.title)}</Title>"
            f"<Description>{cdata(self.description)}</Description>"
            f"<PicUrl>{cdata(self.pic_url)}</PicUrl><Url>{cdata(self.url)}</Url></item>"
        )


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class TransferCustomerServiceReply(Reply):
    """Hands the message to customer service (客服), to ``kf_account`` when given."""

    msg_type: ClassVar[str] = "transfer_customer_service"
    kf_account: str | None = None

    def _body(self) -> str:
        if not self.kf_account:
            return ""
        return f"<TransInfo><KfAccount>{cdata(self.kf_account)}</KfAccount></TransInfo>"


def reply_to(message: Message, reply: Reply, *, create_time: int) -> str:
    """``reply`` rendered as the answer to ``message``: back to its sender, from its account."""
    return reply.render(to_user=message.from_user, from_user=message.to_user, create_time=create_time)


def encrypted_reply(*, encrypt: str, signature: str, timestamp: str, nonce: str) -> str:
    """The safe-mode envelope around an encrypted reply (Tencent's sample template)."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise ValueError("timestamp must be decimal digits")
    return (
        f"<xml><Encrypt>{cdata(encrypt)}</Encrypt><MsgSignature>{cdata(signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
    )
