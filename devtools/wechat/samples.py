"""The sample app of the local loop and of events/: appid, the webhook Token, Tencent's
published sample EncodingAESKey, and the fixed timestamp events/webhook_*.json are signed with."""

from __future__ import annotations

from typing import Final

APPID: Final = "wx1111111111111111"
TOKEN: Final = "wxtokenlocal"
AES_KEY: Final = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TIMESTAMP: Final = 1795420800  # 2026-11-23T08:00:00Z
