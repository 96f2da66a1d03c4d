"""The XML WeChat POSTs to the webhook, parsed safely into typed messages and events.

Formats: 接收普通消息 (text, image, voice, video, shortvideo, location, link) and 接收事件推送
(subscribe, unsubscribe, SCAN, LOCATION, CLICK, VIEW, TEMPLATESENDJOBFINISH,
MASSSENDJOBFINISH). Anything else parses to :class:`UnknownMessage` / :class:`UnknownEvent`
with every raw field kept, so a new WeChat type reaches a handler instead of a 400.

The body comes from the internet: the parser refuses any DTD, entity or external reference
(billion laughs, XXE), and every way the body can be wrong is the same
:class:`MalformedMessage`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from xml.parsers.expat import ExpatError

from wxtoken.errors import MalformedMessage
from wxtoken.frozen import Frozen
from wxtoken.wechat.flat_xml import parse_flat

# WeChat nests at most four levels (MASSSENDJOBFINISH: CopyrightCheckResult.ResultList.item.*);
# a bound keeps a hostile body from building quadratic "a.a.a…" keys.
_MAX_DEPTH = 8
# Longest decimal a 64-bit MsgId can be; also keeps int() away from huge digit strings.
_MAX_DIGITS = 20
_QRSCENE = "qrscene_"


# --- XML -----------------------------------------------------------------------------------
def parse_xml(body: bytes | str) -> dict[str, str]:
    """The children of the ``<xml>`` root as a flat dict of their text (CDATA unwrapped).

    Nested elements become dotted keys (``ScanCodeInfo.ScanResult``); where an element
    repeats inside a nested one (list ``item``s) the first one wins. Raises
    :class:`MalformedMessage` for anything that is not well-formed, carries a DTD or entity,
    has another root, repeats a top-level element or nests deeper than WeChat does.
    """
    try:
        return parse_flat(body, _MAX_DEPTH)
    except (ExpatError, ValueError, LookupError):
        # ValueError: the refusals (DTD, entities, shape), undecodable text and multi-byte
        # encodings; LookupError: an encoding Python does not know.
        raise MalformedMessage from None


# --- messages ------------------------------------------------------------------------------
class Message(Frozen):
    """What every callback carries; ``fields`` keeps all raw fields, known or not.

    These are :class:`~wxtoken.frozen.Frozen` value classes, not dataclasses (as dataclasses
    the message and reply types cost 23 ms of the webhook's cold start): compared and hashed by
    value; ``fields`` is compared, not hashed, and not shown by ``repr``.
    """

    _unhashed = _hidden = frozenset({"fields"})

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    msg_id: int | None
    fields: dict[str, str]

    @property
    def dedup_key(self) -> str:
        """Identifies one delivery across WeChat's retries.

        WeChat's rule (接收普通消息 / 接收事件推送): messages by ``MsgId``, events by
        ``FromUserName`` + ``CreateTime`` (the event name added, since one user action can
        push two events in the same second).
        """
        if self.msg_id is not None:
            return f"msg:{self.msg_id}"
        return f"evt:{self.from_user}:{self.create_time}:{self.fields.get('Event', '').lower()}"


class TextMessage(Message):
    content: str


class ImageMessage(Message):
    pic_url: str
    media_id: str


class VoiceMessage(Message):
    media_id: str
    format: str
    recognition: str | None  # only when speech recognition is on in the console


class VideoMessage(Message):
    media_id: str
    thumb_media_id: str


class ShortVideoMessage(Message):
    media_id: str
    thumb_media_id: str


class LocationMessage(Message):
    latitude: float
    longitude: float
    scale: int
    label: str


class LinkMessage(Message):
    title: str
    description: str
    url: str


class UnknownMessage(Message):
    """A ``MsgType`` this module does not know; read ``fields``."""


# --- events --------------------------------------------------------------------------------
class Event(Message):
    """``MsgType`` event. ``event`` is lower-cased (WeChat mixes ``subscribe`` and ``SCAN``);
    the original is in ``fields["Event"]``. An empty ``EventKey`` is ``None``."""

    event: str
    event_key: str | None


class SubscribeEvent(Event):
    """A follow; through a parametric QR code when ``scene`` is set (``EventKey`` qrscene_…)."""

    scene: str | None
    ticket: str | None


class UnsubscribeEvent(Event):
    pass


class ScanEvent(Event):
    """A follower scanned a parametric QR code; ``event_key`` is the scene, unprefixed."""

    ticket: str | None


class LocationEvent(Event):
    latitude: float
    longitude: float
    precision: float


class ClickEvent(Event):
    """A click menu button; ``event_key`` is the button's key."""


class ViewEvent(Event):
    """A link menu button; ``event_key`` is the URL."""

    menu_id: str | None


class TemplateSendJobFinishEvent(Event):
    status: str


class MassSendJobFinishEvent(Event):
    status: str
    total_count: int | None
    filter_count: int | None
    sent_count: int | None
    error_count: int | None


class UnknownEvent(Event):
    """An ``Event`` this module does not know; read ``fields``."""


# --- parsing -------------------------------------------------------------------------------
_Common = tuple[str, str, int, str, int | None, dict[str, str]]


def parse_message(body: bytes | str) -> Message:
    """The typed message or event in a plain (or decrypted) callback body.

    Raises :class:`MalformedMessage` when the XML is unsafe or broken, ToUserName,
    FromUserName, CreateTime or MsgType is missing or empty, or a number is not one.
    """
    f = parse_xml(body)
    to_user, from_user = f.get("ToUserName"), f.get("FromUserName")
    msg_type, create_time = f.get("MsgType"), f.get("CreateTime")
    if not (to_user and from_user and msg_type and create_time):
        raise MalformedMessage
    common: _Common = (to_user, from_user, _int(create_time), msg_type, _optional_int(f.get("MsgId")), f)
    kind = msg_type.lower()
    if kind == "event":
        return _event(common, f)
    build = _MESSAGES.get(kind)
    return build(common, f) if build else UnknownMessage(*common)


def parse_encrypted_envelope(body: bytes | str) -> tuple[str, str]:
    """``(ToUserName or "", Encrypt)`` of a safe- or compatible-mode body.

    Raises :class:`MalformedMessage` when the XML is unsafe or broken or has no ``Encrypt``.
    """
    if isinstance(body, bytes) and (match := _SAFE_MODE_ENVELOPE.fullmatch(body)) is not None:
        return match[1].decode("ascii"), match[2].decode("ascii")
    f = parse_xml(body)
    encrypt = f.get("Encrypt")
    if not encrypt:
        raise MalformedMessage
    return f.get("ToUserName", ""), encrypt


# What WeChat POSTs in safe mode, byte for byte the shape of its samples (消息加解密接入指引):
# ToUserName, an account's original ID, then Encrypt, base64, each in CDATA. Read by this one
# pattern, on the bytes, where parse_xml takes 2.5 µs (bench/webhook_roundtrip.py --breakdown);
# anything else (compatible mode's plaintext beside Encrypt, a platform push's AppId, other
# characters, another order) goes to parse_xml. For what it matches, parse_xml reads the same
# two values (tests/unit/test_messages.py compares them on generated envelopes).
_WS = rb"[ \t\r\n]*"
_SAFE_MODE_ENVELOPE = re.compile(
    rb"<xml>"
    + _WS
    + rb"<ToUserName><!\[CDATA\[([A-Za-z0-9_@.\-]*)\]\]></ToUserName>"
    + _WS
    + rb"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>"
    + _WS
    + rb"</xml>"
    + _WS
)


def _event(common: _Common, f: dict[str, str]) -> Event:
    name = f.get("Event", "")
    event = name.lower()
    key = f.get("EventKey") or None
    build = _EVENTS.get(event)
    return build(common, event, key, f) if build else UnknownEvent(*common, event=event, event_key=key)


def _subscribe(common: _Common, event: str, key: str | None, f: dict[str, str]) -> Event:
    scene = key[len(_QRSCENE) :] if key and key.startswith(_QRSCENE) else None
    ticket = f.get("Ticket") or None
    return SubscribeEvent(*common, event=event, event_key=key, scene=scene, ticket=ticket)


def _mass_send(common: _Common, event: str, key: str | None, f: dict[str, str]) -> Event:
    return MassSendJobFinishEvent(
        *common,
        event=event,
        event_key=key,
        status=f.get("Status", ""),
        total_count=_optional_int(f.get("TotalCount")),
        filter_count=_optional_int(f.get("FilterCount")),
        sent_count=_optional_int(f.get("SentCount")),
        error_count=_optional_int(f.get("ErrorCount")),
    )


# Fields by position, in the order the classes declare them: a keyword makes Frozen bind the
# arguments one by one, 1.5 µs of every text message (bench/webhook_roundtrip.py --breakdown);
# tests/unit/test_messages.py checks each field's value by name.
_MESSAGES: dict[str, Callable[[_Common, dict[str, str]], Message]] = {
    "text": lambda c, f: TextMessage(*c, f.get("Content", "")),
    "image": lambda c, f: ImageMessage(*c, f.get("PicUrl", ""), f.get("MediaId", "")),
    "voice": lambda c, f: VoiceMessage(*c, f.get("MediaId", ""), f.get("Format", ""), f.get("Recognition")),
    "video": lambda c, f: VideoMessage(*c, f.get("MediaId", ""), f.get("ThumbMediaId", "")),
    "shortvideo": lambda c, f: ShortVideoMessage(*c, f.get("MediaId", ""), f.get("ThumbMediaId", "")),
    "location": lambda c, f: LocationMessage(
        *c,
        latitude=_float(f.get("Location_X")),
        longitude=_float(f.get("Location_Y")),
        scale=_int(f.get("Scale")),
        label=f.get("Label", ""),
    ),
    "link": lambda c, f: LinkMessage(
        *c, title=f.get("Title", ""), description=f.get("Description", ""), url=f.get("Url", "")
    ),
}

_EVENTS: dict[str, Callable[[_Common, str, str | None, dict[str, str]], Event]] = {
    "subscribe": _subscribe,
    "unsubscribe": lambda c, e, k, f: UnsubscribeEvent(*c, event=e, event_key=k),
    "scan": lambda c, e, k, f: ScanEvent(*c, event=e, event_key=k, ticket=f.get("Ticket") or None),
    "location": lambda c, e, k, f: LocationEvent(
        *c,
        event=e,
        event_key=k,
        latitude=_float(f.get("Latitude")),
        longitude=_float(f.get("Longitude")),
        precision=_float(f.get("Precision")),
    ),
    "click": lambda c, e, k, f: ClickEvent(*c, event=e, event_key=k),
    "view": lambda c, e, k, f: ViewEvent(*c, event=e, event_key=k, menu_id=f.get("MenuId") or None),
    "templatesendjobfinish": lambda c, e, k, f: TemplateSendJobFinishEvent(
        *c, event=e, event_key=k, status=f.get("Status", "")
    ),
    "masssendjobfinish": _mass_send,
}


def _int(text: str | None) -> int:
    """A plain non-negative decimal, as WeChat writes CreateTime and MsgId."""
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        raise MalformedMessage
    return int(text)


def _optional_int(text: str | None) -> int | None:
    return None if text is None or text == "" else _int(text)


def _float(text: str | None) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise MalformedMessage from None
    if not math.isfinite(value):
        raise MalformedMessage
    return value
