"""The third-party platform's 授权事件接收URL: ticket pushes and authorization events.

WeChat POSTs to ``/open/{component_appid}/events``, encrypted with the platform's Token and
EncodingAESKey, and wants the plain text ``success`` back within 5 s
(https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/component_verify_ticket.html:
"接收到后必须直接返回字符串success"). What each push does:

- ``component_verify_ticket``: stored under the component as
  ``{"ticket", "expires_at", "fetched_at"}`` (WeChat: valid 12 h, a new one every 10 minutes).
  The newest wins: an older push (a retry overtaken by the next ticket) writes nothing;
- ``authorized`` / ``updateauthorized`` / ``unauthorized``: handed to the refresher as the
  authorizer's pending authorization event (:meth:`PlatformStore.post_event`), which its
  guard acts on within a minute. The webhook never calls WeChat: ``api_query_auth`` needs the
  component token, and the webhook holds no AppSecret (least privilege);
- any other InfoType: answered ``success``, logged at info, nothing written.

No dedup store is used here, on purpose: WeChat's retries carry the same ``CreateTime``, and
both writes are keyed and ordered by it (``fetched_at``; a record at least as new is never
overwritten), so a retry is a write that changes nothing. Dedup would add a store round trip
and a record per push for no change in outcome.

A ticket, an authorization code or a token is never logged: the lines name the component,
the authorizer, the InfoType and the CreateTime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from wxtoken.errors import ConfigError, MalformedMessage
from wxtoken.observability import logger
from wxtoken.store.base import RecordName, TokenStore
from wxtoken.store.platform_records import AuthorizationEvent
from wxtoken.webhook.pipeline import Webhook, WebhookResponse
from wxtoken.wechat.component_push import (
    AuthorizationPush,
    ComponentPush,
    VerifyTicketPush,
    parse_component_push,
)
from wxtoken.wechat.replies import SUCCESS

# component_verify_ticket.html: "component_verify_ticket的有效时间为12小时".
VERIFY_TICKET_TTL_SECONDS: Final = 43200

_PLATFORM_NEEDS_DYNAMODB: Final = (
    "Open Platform needs TOKEN_STORE=dynamodb: the authorization events of a third-party "
    "platform are queued for the refresher in the DynamoDB table (docs/webhook.md, Open Platform)"
)


def ticket_record(push: VerifyTicketPush) -> dict[str, Any]:
    """The stored ticket record: valid 12 h from WeChat's CreateTime, ordered by it."""
    return {
        "ticket": push.ticket,
        "expires_at": push.create_time + VERIFY_TICKET_TTL_SECONDS,
        "fetched_at": push.create_time,
    }


def event_record(push: AuthorizationPush) -> dict[str, Any]:
    """The authorization event the refresher acts on, ordered by WeChat's CreateTime
    (:class:`~wxtoken.store.platform_records.AuthorizationEvent`: no code for
    ``unauthorized``, ``code_expires_at`` only when WeChat gave it)."""
    return AuthorizationEvent(
        push.info_type, push.component_appid, push.create_time, push.authorization_code, push.code_expires_at
    ).to_record()


class PlatformEvents:
    """Takes the pushes to ``/open/{component_appid}/events``: checks them with
    :meth:`Webhook.decrypt_component_push`, stores what they carry, answers ``success``.

    Raises what the webhook raises for a bad request (4xx), :class:`MalformedMessage` for a
    push whose inner ``AppId`` is not the URL's component (a foreign push writes nothing),
    :class:`~wxtoken.errors.StoreError` when the store is unreachable and
    :class:`ConfigError` for an authorization event on a store without the platform queues:
    both a 503, so WeChat retries.
    """

    def __init__(self, *, webhook: Webhook, store: TokenStore) -> None:
        self._webhook = webhook
        self._store = store

    def receive(self, component_appid: str, query: Mapping[str, str], body: bytes) -> WebhookResponse:
        xml = self._webhook.decrypt_component_push(component_appid, query, body)
        push = parse_component_push(xml)
        if push.component_appid != component_appid:
            # The ciphertext already named the component (MessageCrypto checks it); an inner
            # AppId that disagrees is nothing WeChat sends.
            logger.warning("component push names another AppId; refused", extra={"appid": component_appid})
            raise MalformedMessage("malformed message")
        if isinstance(push, VerifyTicketPush):
            self._store_ticket(push)
        elif isinstance(push, AuthorizationPush):
            self._post_event(push)
        else:
            logger.info("component push ignored", extra=_described(push))
        return WebhookResponse(SUCCESS, "text/plain")

    def _store_ticket(self, push: VerifyTicketPush) -> None:
        written = self._store.write_if_newer(
            push.component_appid,
            RecordName.COMPONENT_VERIFY_TICKET,
            ticket_record(push),
            ttl_seconds=VERIFY_TICKET_TTL_SECONDS,
        )
        logger.info(
            "verify ticket stored" if written else "verify ticket not newer than the stored one; kept that",
            extra=_described(push),
        )

    def _post_event(self, push: AuthorizationPush) -> None:
        platform = self._store.platform_store()
        if platform is None:
            raise ConfigError(_PLATFORM_NEEDS_DYNAMODB)
        written = platform.post_event(push.authorizer_appid, push.component_appid, event_record(push))
        logger.info(
            "authorization event queued for the refresher" if written else "authorization event not newer",
            extra={**_described(push), "authorizer_appid": push.authorizer_appid},
        )


def _described(push: ComponentPush) -> dict[str, Any]:
    """What a log line may say of a push: never its ticket or code."""
    return {"appid": push.component_appid, "info_type": push.info_type[:64], "create_time": push.create_time}
