"""The sample app of the local loop and of events/: appid, the webhook Token, Tencent's
published sample EncodingAESKey, and the fixed timestamp events/webhook_*.json are signed with;
and a sample third-party platform (its component appid and Token, the same EncodingAESKey) with
one authorizer, for the Open Platform events."""

from __future__ import annotations

from typing import Final

APPID: Final = "wx1111111111111111"
TOKEN: Final = "wxtokenlocal"
AES_KEY: Final = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TIMESTAMP: Final = 1795420800  # 2026-11-23T08:00:00Z
COMPONENT_APPID: Final = "wx3333333333333333"
COMPONENT_TOKEN: Final = "componentpushtoken"
AUTHORIZER_APPID: Final = "wx4444444444444444"
