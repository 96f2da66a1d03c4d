"""Plays WeChat's server: builds signed (and optionally encrypted) callbacks for the webhook.

Used three ways: by the tests (API Gateway v2 events for the handler), to regenerate the
``events/webhook_*.json`` files, and — in the local loop — to POST to a running webhook.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from wxtoken.wechat.crypto import MessageCrypto
from wxtoken.wechat.replies import cdata
from wxtoken.wechat.signature import sha1_signature


@dataclass(frozen=True)
class WeChatPlayer:
    appid: str
    token: str
    encoding_aes_key: str | None = None

    def query(self, *, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
        """The URL-check query every callback carries: signature, timestamp, nonce."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or str(secrets.randbelow(10**9))
        return {"signature": sha1_signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}

    def verification(self, echostr: str = "echo-1234567890", **kw: Any) -> dict[str, str]:
        return {**self.query(**kw), "echostr": echostr}

    def message(self, xml: str, *, encrypted: bool = False, **kw: Any) -> tuple[dict[str, str], str]:
        """(query, body) of a POST; safe mode when ``encrypted``."""
        query = self.query(**kw)
        if not encrypted:
            return query, xml
        if not self.encoding_aes_key:
            raise ValueError("safe mode needs encoding_aes_key")
        encrypt = MessageCrypto(self.encoding_aes_key, self.appid).encrypt(xml)
        query = {
            **query,
            "encrypt_type": "aes",
            "msg_signature": sha1_signature(self.token, query["timestamp"], query["nonce"], encrypt),
            "openid": "oUSER",
        }
        body = (
            "<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )
        return query, body

    def component_push(
        self, xml: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> tuple[dict[str, str], str]:
        """(query, body) of what WeChat POSTs to a third-party platform's 授权事件接收URL.

        Such pushes are always encrypted with the platform's Token and EncodingAESKey, the
        platform's appid (``self.appid``) closing the plaintext, and the body names that appid
        beside ``Encrypt``
        (https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/component_verify_ticket.html).
        """
        if not self.encoding_aes_key:
            raise ValueError("a component push needs encoding_aes_key")
        query = self.query(timestamp=timestamp, nonce=nonce)
        encrypt = MessageCrypto(self.encoding_aes_key, self.appid).encrypt(xml)
        query = {
            **query,
            "encrypt_type": "aes",
            "msg_signature": sha1_signature(self.token, query["timestamp"], query["nonce"], encrypt),
        }
        body = f"<xml><AppId><![CDATA[{self.appid}]]></AppId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return query, body

    def decrypt_push(self, body: str) -> str:
        """The plaintext XML of a component push body (checks nothing: a test's own push)."""
        from wxtoken.wechat.messages import parse_xml

        if not self.encoding_aes_key:
            raise ValueError("a component push needs encoding_aes_key")
        return MessageCrypto(self.encoding_aes_key, self.appid).decrypt(parse_xml(body)["Encrypt"])

    def decrypt_reply(self, body: str) -> str:
        """The plaintext XML of a safe-mode reply (``success`` passes through)."""
        from wxtoken.wechat.messages import parse_xml

        if body == "success" or not self.encoding_aes_key:
            return body
        fields = parse_xml(body)
        expected = sha1_signature(self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
        if expected != fields["MsgSignature"]:
            raise ValueError("the reply's MsgSignature does not match")
        return MessageCrypto(self.encoding_aes_key, self.appid).decrypt(fields["Encrypt"])


def text_xml(content: str, *, msg_id: int = 1234567890123456, create_time: int | None = None) -> str:
    ts = int(time.time()) if create_time is None else create_time
    return (
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
        "<FromUserName><![CDATA[oUSER]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content><MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(event: str, *, event_key: str = "", create_time: int | None = None) -> str:
    ts = int(time.time()) if create_time is None else create_time
    return (
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
        "<FromUserName><![CDATA[oUSER]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{event_key}]]></EventKey></xml>"
    )


def apigw_event(
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: str | None = None,
    *,
    iam_user_arn: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event, as `sam local start-api` sends it."""
    query = query or {}
    route_key, path_parameters = _route(method, path)
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "wxtoken",
        "domainName": "wxtoken.execute-api.us-east-1.amazonaws.com",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.10",
            "userAgent": "Mozilla/4.0",
        },
        "requestId": f"req-{secrets.token_hex(6)}",
        "routeKey": route_key,
        "stage": "$default",
        "time": "23/Nov/2026:08:00:00 +0000",
        "timeEpoch": int(time.time() * 1000),
    }
    if iam_user_arn:
        context["authorizer"] = {
            "iam": {
                "accessKey": "AKIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAEXAMPLE",
                "userArn": iam_user_arn,
                "userId": "AIDAEXAMPLE",
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": context["routeKey"],
        "rawPath": path,
        # surrogatepass: the fuzz tests send lone surrogates too (a JSON event can carry them).
        "rawQueryString": urlencode(query, errors="surrogatepass"),
        "headers": {"content-type": "text/xml" if body else "text/plain", "host": context["domainName"]},
        "requestContext": context,
        "pathParameters": path_parameters,
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    return event


def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
    """The template's route for ``path`` and its path parameters, as API Gateway matches them
    (a literal segment wins over a parameter: ``/open/{component_appid}/events``)."""
    parts = path.strip("/").split("/")
    if parts[0] == "open" and len(parts) == 3:
        if parts[2] == "events":
            return f"{method} /open/{{component_appid}}/events", {"component_appid": parts[1]}
        route = f"{method} /open/{{component_appid}}/{{authorizer_appid}}"
        return route, {"component_appid": parts[1], "authorizer_appid": parts[2]}
    return f"{method} /{parts[0]}/{{appid}}", {"appid": parts[-1]}


if __name__ == "__main__":  # regenerate nothing by accident: print a sample event
    player = WeChatPlayer("wx1111111111111111", "wxtokenlocal", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    print(json.dumps(apigw_event("GET", "/wechat/wx1111111111111111", player.verification()), indent=2))
