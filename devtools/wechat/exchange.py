"""Calls to a local webhook as WeChat (and a reader of the token API) would make them, timed:
what `make play` and `make local`'s self-check send."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from devtools.wechat.player import WeChatPlayer


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request to the webhook and what came back."""

    method: str
    url: str
    sent: str
    status: int
    content_type: str
    body: str
    reply: str  # decrypted in safe mode
    elapsed_ms: float

    @property
    def reply_fields(self) -> dict[str, str]:
        from wxtoken.wechat.messages import parse_xml

        if not self.reply.startswith("<xml"):
            return {}
        fields: dict[str, str] = parse_xml(self.reply)
        return fields


def send(
    base_url: str, player: WeChatPlayer, xml: str, *, encrypted: bool = False, timeout: float = 10.0
) -> Exchange:
    """POST ``xml`` to ``{base_url}/wechat/{appid}`` as WeChat would (signed; encrypted)."""
    query, body = player.message(xml, encrypted=encrypted)
    url = f"{base_url.rstrip('/')}/wechat/{player.appid}?{urlencode(query)}"
    started = time.monotonic()
    response = requests.post(url, data=body.encode(), headers={"Content-Type": "text/xml"}, timeout=timeout)
    elapsed = (time.monotonic() - started) * 1000
    reply = response.text
    if encrypted and response.ok:
        reply = player.decrypt_reply(response.text)
    return Exchange(
        "POST",
        url,
        xml,
        response.status_code,
        response.headers.get("Content-Type", ""),
        response.text,
        reply,
        elapsed,
    )


def verify(
    base_url: str, player: WeChatPlayer, echostr: str = "wxtoken-local-check", timeout: float = 10.0
) -> Exchange:
    """The GET WeChat sends when you submit 服务器配置: the answer must be ``echostr``."""
    url = f"{base_url.rstrip('/')}/wechat/{player.appid}?{urlencode(player.verification(echostr))}"
    return _get(url, timeout, decoded=lambda text: text)


def token(base_url: str, appid: str, timeout: float = 10.0) -> Exchange:
    """``GET /token/{appid}`` (locally every request gets a fake IAM identity)."""
    url = f"{base_url.rstrip('/')}/token/{appid}"
    return _get(url, timeout, decoded=lambda _text: "")


def _get(url: str, timeout: float, decoded: Callable[[str], str]) -> Exchange:
    """A GET, timed; ``decoded`` says what of the answer to show as the decoded reply."""
    started = time.monotonic()
    response = requests.get(url, timeout=timeout)
    elapsed = (time.monotonic() - started) * 1000
    return Exchange(
        "GET",
        url,
        "",
        response.status_code,
        response.headers.get("Content-Type", ""),
        response.text,
        decoded(response.text),
        elapsed,
    )
