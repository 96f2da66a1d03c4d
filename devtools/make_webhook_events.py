"""Regenerates events/webhook_*.json: signed WeChat callbacks for `sam local invoke` and tests.

    .venv/bin/python -m devtools.make_webhook_events

They are signed for the app in events/env.json's sample apps secret (appid
wx1111111111111111, Token ``wxtokenlocal``, Tencent's published sample EncodingAESKey) with
a fixed timestamp; env.json widens WEBHOOK_TIMESTAMP_WINDOW_SECONDS so they stay valid.
The Open Platform ones (``webhook_component_*``, ``webhook_authorizer_*``) are WeChat's pushes
and messages for the sample third-party platform of devtools.wechat.samples (component
wx3333333333333333, Token ``componentpushtoken``, the same key): they need its
``"kind": "component"`` entry in the apps secret.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devtools.wechat.player import WeChatPlayer, apigw_event, event_xml, text_xml
from devtools.wechat.samples import (
    AES_KEY,
    APPID,
    AUTHORIZER_APPID,
    COMPONENT_APPID,
    COMPONENT_TOKEN,
    TIMESTAMP,
    TOKEN,
)

EVENTS = Path(__file__).parents[1] / "events"


def main() -> None:
    player = WeChatPlayer(APPID, TOKEN, AES_KEY)
    platform = WeChatPlayer(COMPONENT_APPID, COMPONENT_TOKEN, AES_KEY)
    path = f"/wechat/{APPID}"
    fixed: dict[str, Any] = {"timestamp": TIMESTAMP, "nonce": "1234567890"}
    events = {
        "webhook_verify.json": apigw_event("GET", path, player.verification("echo-1234567890", **fixed)),
        "webhook_text.json": apigw_event(
            "POST", path, *player.message(text_xml("hello", create_time=TIMESTAMP), **fixed)
        ),
        "webhook_text_safe_mode.json": apigw_event(
            "POST",
            path,
            *player.message(
                text_xml("hello, safe mode", msg_id=1234567890123457, create_time=TIMESTAMP),
                encrypted=True,
                **fixed,
            ),
        ),
        "webhook_subscribe.json": apigw_event(
            "POST",
            path,
            *player.message(event_xml("subscribe", event_key="qrscene_42", create_time=TIMESTAMP), **fixed),
        ),
        "webhook_token_api.json": apigw_event(
            "GET", f"/token/{APPID}", iam_user_arn="arn:aws:iam::123456789012:user/your-service"
        ),
        "webhook_component_ticket.json": apigw_event(
            "POST",
            f"/open/{COMPONENT_APPID}/events",
            *platform.component_push(_ticket_xml(), **fixed),
        ),
        "webhook_authorizer_text.json": apigw_event(
            "POST",
            f"/open/{COMPONENT_APPID}/{AUTHORIZER_APPID}",
            *platform.message(
                text_xml("hello, authorizer", msg_id=1234567890123458, create_time=TIMESTAMP),
                encrypted=True,
                **fixed,
            ),
        ),
    }
    for name, event in events.items():
        event["requestContext"]["requestId"] = f"req-{name.removesuffix('.json')}"
        event["requestContext"]["timeEpoch"] = TIMESTAMP * 1000
        (EVENTS / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        print("wrote", EVENTS / name)


def _ticket_xml() -> str:
    """A component_verify_ticket push as WeChat writes it (component_verify_ticket.html)."""
    return (
        f"<xml><AppId><![CDATA[{COMPONENT_APPID}]]></AppId><CreateTime>{TIMESTAMP}</CreateTime>"
        "<InfoType><![CDATA[component_verify_ticket]]></InfoType>"
        "<ComponentVerifyTicket><![CDATA[ticket@@@sample-for-sam-local-invoke]]></ComponentVerifyTicket></xml>"
    )


if __name__ == "__main__":
    main()
