"""What WeChat pushes to a third-party platform's 授权事件接收URL, parsed into typed values.

Every push is the decrypted XML of WeChat's envelope, with ``AppId`` (the component appid),
``CreateTime`` and ``InfoType``:

- ``component_verify_ticket``, every 10 minutes, with ``ComponentVerifyTicket`` (valid 12 h)
  (https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/component_verify_ticket.html);
- ``authorized`` / ``updateauthorized`` with ``AuthorizerAppid``, ``AuthorizationCode`` and
  ``AuthorizationCodeExpiredTime`` (unix seconds), and ``unauthorized`` with
  ``AuthorizerAppid`` alone
  (https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/authorize_event.html);
- anything else (WeChat adds InfoTypes: ``notify_third_fasteregister``, …) is
  :class:`OtherPush`, which the webhook acknowledges and leaves alone.

Parsing is pure: the caller has checked the signature and decrypted the body already.
"""

from __future__ import annotations

from typing import Final

from wxtoken.apps import is_appid
from wxtoken.errors import MalformedMessage
from wxtoken.frozen import Frozen
from wxtoken.wechat.messages import parse_xml

VERIFY_TICKET: Final = "component_verify_ticket"
AUTHORIZED: Final = "authorized"
UPDATE_AUTHORIZED: Final = "updateauthorized"
UNAUTHORIZED: Final = "unauthorized"
AUTHORIZATION_INFO_TYPES: Final = frozenset({AUTHORIZED, UPDATE_AUTHORIZED, UNAUTHORIZED})
# WeChat's CreateTime and AuthorizationCodeExpiredTime are unix seconds: 10 digits until 2286.
_MAX_DIGITS = 12


class ComponentPush(Frozen):
    """What every push carries: whose it is (``AppId``), when WeChat made it, and its kind."""

    component_appid: str
    create_time: int
    info_type: str


class VerifyTicketPush(ComponentPush):
    """A new ``component_verify_ticket``; the secret ``ticket`` is never in a repr."""

    _hidden = frozenset({"ticket"})

    ticket: str


class AuthorizationPush(ComponentPush):
    """An account authorized the platform, changed what it granted, or withdrew.

    ``authorization_code`` (secret: never in a repr) and ``code_expires_at`` are ``None`` for
    ``unauthorized``; ``code_expires_at`` may be ``None`` for the others too (WeChat's
    documentation shows it, a push without it is still usable for its 10 minutes).
    """

    _hidden = frozenset({"authorization_code"})

    authorizer_appid: str
    authorization_code: str | None
    code_expires_at: int | None


class OtherPush(ComponentPush):
    """An InfoType wxtoken does not act on."""


def parse_component_push(xml: str | bytes) -> ComponentPush:
    """The typed push in decrypted XML.

    Raises :class:`MalformedMessage` when the XML is unsafe or broken, ``AppId``,
    ``CreateTime`` or ``InfoType`` is missing, a ticket push has no ticket, an authorization
    push names no appid-shaped ``AuthorizerAppid``, or ``authorized`` / ``updateauthorized``
    carries no ``AuthorizationCode`` (the refresher could do nothing with it).
    """
    fields = parse_xml(xml)
    component_appid, info_type = fields.get("AppId"), fields.get("InfoType")
    if not component_appid or not info_type:
        raise MalformedMessage
    create_time = _seconds(fields.get("CreateTime"))
    if info_type == VERIFY_TICKET:
        ticket = fields.get("ComponentVerifyTicket")
        if not ticket:
            raise MalformedMessage
        return VerifyTicketPush(component_appid, create_time, info_type, ticket)
    if info_type in AUTHORIZATION_INFO_TYPES:
        authorizer_appid = fields.get("AuthorizerAppid") or ""
        if not is_appid(authorizer_appid):
            raise MalformedMessage
        code = fields.get("AuthorizationCode") or None
        if code is None and info_type != UNAUTHORIZED:
            raise MalformedMessage
        expires = fields.get("AuthorizationCodeExpiredTime")
        return AuthorizationPush(
            component_appid,
            create_time,
            info_type,
            authorizer_appid,
            code,
            _seconds(expires) if expires else None,
        )
    return OtherPush(component_appid, create_time, info_type)


def _seconds(text: str | None) -> int:
    """Unix seconds as WeChat writes them: ASCII digits, no sign."""
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        raise MalformedMessage
    return int(text)
