"""The pushes to a third-party platform's 授权事件接收URL, parsed (pure: no signature, no I/O),
and the records the webhook stores from them."""

from __future__ import annotations

import pytest

from wxtoken.errors import MalformedMessage
from wxtoken.webhook.platform import event_record, ticket_record
from wxtoken.wechat.component_push import (
    AuthorizationPush,
    OtherPush,
    VerifyTicketPush,
    parse_component_push,
)

COMPONENT = "wx3333333333333333"
AUTHORIZER = "wx4444444444444444"
CODE = "queryauthcode@@@abc"  # pragma: allowlist secret
TICKET = "ticket@@@xyz"  # pragma: allowlist secret


def push(info_type: str, **fields: str | int) -> str:
    extra = "".join(f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items())
    return (
        f"<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>1700000000</CreateTime>"
        f"<InfoType><![CDATA[{info_type}]]></InfoType>{extra}</xml>"
    )


def test_a_ticket_push_becomes_a_ticket_valid_twelve_hours_from_create_time():
    parsed = parse_component_push(push("component_verify_ticket", ComponentVerifyTicket=TICKET))

    assert parsed == VerifyTicketPush(COMPONENT, 1700000000, "component_verify_ticket", TICKET)
    assert TICKET not in repr(parsed)
    assert ticket_record(parsed) == {"ticket": TICKET, "expires_at": 1700043200, "fetched_at": 1700000000}


@pytest.mark.parametrize("info_type", ["authorized", "updateauthorized"])
def test_an_authorization_carries_its_code_and_its_expiry(info_type):
    xml = push(
        info_type, AuthorizerAppid=AUTHORIZER, AuthorizationCode=CODE, AuthorizationCodeExpiredTime=1700000600
    )

    parsed = parse_component_push(xml)

    assert parsed == AuthorizationPush(COMPONENT, 1700000000, info_type, AUTHORIZER, CODE, 1700000600)
    assert CODE not in repr(parsed)
    assert event_record(parsed) == {
        "event": info_type,
        "component_appid": COMPONENT,
        "authorization_code": CODE,
        "code_expires_at": 1700000600,
        "fetched_at": 1700000000,
    }


def test_an_authorization_without_expiry_is_still_usable():
    parsed = parse_component_push(push("authorized", AuthorizerAppid=AUTHORIZER, AuthorizationCode=CODE))
    assert isinstance(parsed, AuthorizationPush)
    assert "code_expires_at" not in event_record(parsed)


def test_unauthorized_has_no_code():
    parsed = parse_component_push(push("unauthorized", AuthorizerAppid=AUTHORIZER))

    assert isinstance(parsed, AuthorizationPush)
    assert event_record(parsed) == {
        "event": "unauthorized",
        "component_appid": COMPONENT,
        "fetched_at": 1700000000,
    }


def test_an_info_type_wxtoken_does_not_know_is_kept_as_other():
    parsed = parse_component_push(push("notify_third_fasteregister", status=0))
    assert parsed == OtherPush(COMPONENT, 1700000000, "notify_third_fasteregister")


@pytest.mark.parametrize(
    "xml",
    [
        push("component_verify_ticket"),
        push("authorized", AuthorizerAppid=AUTHORIZER),
        push("updateauthorized", AuthorizerAppid=AUTHORIZER, AuthorizationCode=""),
        push("authorized", AuthorizerAppid="not-an-appid", AuthorizationCode=CODE),
        push("unauthorized"),
        push(
            "authorized",
            AuthorizerAppid=AUTHORIZER,
            AuthorizationCode=CODE,
            AuthorizationCodeExpiredTime="-1",
        ),
        push("unauthorized", AuthorizerAppid=AUTHORIZER).replace("1700000000", "１７００"),
        push("unauthorized", AuthorizerAppid=AUTHORIZER).replace("<CreateTime>1700000000</CreateTime>", ""),
        push("").replace("<InfoType><![CDATA[]]></InfoType>", ""),
        push("unauthorized", AuthorizerAppid=AUTHORIZER).replace(COMPONENT, ""),
        "<xml><AppId>wx3333333333333333</AppId",
        '<!DOCTYPE x [<!ENTITY a "b">]><xml><AppId>&a;</AppId></xml>',
    ],
    ids=[
        "ticket-without-ticket",
        "authorized-without-code",
        "empty-code",
        "authorizer-not-an-appid",
        "unauthorized-without-authorizer",
        "negative-expiry",
        "fullwidth-create-time",
        "no-create-time",
        "no-info-type",
        "no-appid",
        "broken-xml",
        "entity",
    ],
)
def test_pushes_wechat_never_sends_are_malformed(xml):
    with pytest.raises(MalformedMessage):
        parse_component_push(xml)
