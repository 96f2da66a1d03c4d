"""Per-request cost of a safe-mode text round trip through the webhook handler.

API Gateway v2 event → signature checks → decrypt → parse → route → echo reply → encrypt →
response, on a warm handler (apps secret cached, no dedup store so only the webhook's own
work is timed). Reported next to a floor measured in the same run: the bare crypto the
request cannot avoid (one AES decrypt + one AES encrypt + two SHA-1 signatures).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT / "layers" / "wxtoken"), str(ROOT), str(ROOT / "functions" / "webhook")]

APPID = "wx1111111111111111"
TOKEN = "wxtokenlocal"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def per_call(fn, seconds: float = 2.0) -> float:
    fn()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        count += 1
    return (time.perf_counter() - started) / count


def main() -> None:
    import json

    os.environ.update({"WECHAT_APPS_SECRET_ID": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    import app  # the webhook function
    from handlers import router

    from devtools.wechat_player import WeChatPlayer, apigw_event, text_xml
    from wxtoken.apps import AppsSource
    from wxtoken.config import Settings
    from wxtoken.webhook import NoDeduplication, Webhook
    from wxtoken.wechat.crypto import MessageCrypto
    from wxtoken.wechat.signature import sha1_signature

    secret = json.dumps({APPID: {"app_secret": "x", "token": TOKEN, "encoding_aes_key": AES_KEY}})
    settings = Settings.from_env(os.environ)
    webhook = Webhook(
        settings=settings,
        apps=AppsSource("bench", fetch=lambda: secret),
        router=router,
        dedup=NoDeduplication(),
    )
    runtime = app.WebhookRuntime(
        settings, AppsSource("bench", fetch=lambda: secret), webhook, NoDeduplication(), lambda: None
    )  # type: ignore[arg-type,return-value]
    app.runtime = lambda: runtime  # the bench's own wiring: no AWS, no store

    player = WeChatPlayer(APPID, TOKEN, AES_KEY)
    query, body = player.message(text_xml("hello, benchmark"), encrypted=True)
    event = apigw_event("POST", f"/wechat/{APPID}", query, body)

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "bench", 512, "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

        def get_remaining_time_in_millis(self) -> int:
            return 6000

    def round_trip() -> None:
        response = app.lambda_handler(event, Context())
        assert response["statusCode"] == 200

    crypto = MessageCrypto(AES_KEY, APPID)
    encrypt = player.message(text_xml("hello, benchmark"), encrypted=True)[1]
    ciphertext = encrypt.split("<Encrypt><![CDATA[")[1].split("]]>")[0]

    def floor() -> None:
        sha1_signature(TOKEN, "1", "2", ciphertext)
        plain = crypto.decrypt(ciphertext)
        out = crypto.encrypt(plain)
        sha1_signature(TOKEN, "1", "2", out)

    base = per_call(floor)
    full = per_call(round_trip)
    print(f"{'work':44} {'µs/request':>10} {'x floor':>8}")
    print(f"{'crypto floor (2 SHA-1 + decrypt + encrypt)':44} {base * 1e6:10.1f} {1.0:8.2f}")
    print(f"{'webhook safe-mode text round trip':44} {full * 1e6:10.1f} {full / base:8.2f}")


if __name__ == "__main__":
    main()
