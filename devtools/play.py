"""Play WeChat's server against a running webhook (``make local`` by default)::

    python -m devtools.play text "hello" [--encrypted]      # a text message
    python -m devtools.play event subscribe [--key qrscene_42]
    python -m devtools.play verify                          # the URL check of 服务器配置
    python -m devtools.play token                           # GET /token/{appid}

Each request is signed with the app's Token (and, with ``--encrypted``, encrypted with its
EncodingAESKey: WeChat's safe mode) exactly as WeChat signs it, sent over HTTP, and the
reply is printed decoded. URL and app come from the running ``make local`` (its state
file); ``--url``, ``--appid``, ``--token`` and ``--aes-key`` override them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from devtools.sam.local_system import DEFAULT_PORTS, DEFAULT_STATE_FILE, SAMPLE_APP, read_state
from devtools.wechat.exchange import Exchange, send, token, verify
from devtools.wechat.player import WeChatPlayer, event_xml, text_xml


def _defaults(state_file: Path) -> dict[str, Any]:
    state = read_state(state_file)
    if state is None:
        return {
            "url": f"http://127.0.0.1:{DEFAULT_PORTS['api']}",
            "appid": SAMPLE_APP.appid,
            "token": SAMPLE_APP.token,
            "aes_key": SAMPLE_APP.encoding_aes_key,
        }
    wechat = state["wechat"]
    return {
        "url": state.get("api_url"),
        "appid": wechat["appid"],
        "token": wechat["token"],
        "aes_key": wechat["encoding_aes_key"],
    }


def _print(exchange: Exchange, *, encrypted: bool = False) -> None:
    mode = " (safe mode: encrypted)" if encrypted else ""
    print(f"→ {exchange.method} {exchange.url}{mode}")
    if exchange.sent:
        print(f"  {exchange.sent}")
    print(f"← {exchange.status} {exchange.content_type} in {exchange.elapsed_ms:.0f} ms")
    print(f"  {exchange.body}")
    if encrypted and exchange.reply != exchange.body:
        print(f"  decrypted: {exchange.reply}")
    fields = exchange.reply_fields
    if fields.get("MsgType") == "text":
        print(f"  reply text: {fields.get('Content', '')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.play",
        description="Send a signed (optionally encrypted) WeChat callback to the local webhook.",
    )
    # Options every command takes, after its name: play text "hi" --url …
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the webhook's base URL (default: the running make local's)")
    common.add_argument("--appid", help="default: make local's app")
    common.add_argument("--token", help="the app's Token (default: make local's)")
    common.add_argument("--aes-key", help="the app's EncodingAESKey (default: make local's)")
    common.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    text = commands.add_parser("text", parents=[common], help="a text message")
    text.add_argument("content")
    text.add_argument("--encrypted", action="store_true", help="safe mode (encrypt_type=aes)")
    event = commands.add_parser("event", parents=[common], help="an event: subscribe, unsubscribe, CLICK, …")
    event.add_argument("event")
    event.add_argument("--key", default="", help="EventKey (e.g. qrscene_42, a menu key)")
    event.add_argument("--encrypted", action="store_true", help="safe mode (encrypt_type=aes)")
    commands.add_parser("verify", parents=[common], help="the URL check of 服务器配置")
    commands.add_parser("token", parents=[common], help="GET /token/{appid}, the token API")
    args = parser.parse_args(argv)

    defaults = _defaults(args.state_file)
    url = args.url or defaults["url"]
    player = WeChatPlayer(
        args.appid or defaults["appid"], args.token or defaults["token"], args.aes_key or defaults["aes_key"]
    )
    try:
        if args.command == "verify":
            exchange = verify(url, player)
            _print(exchange)
            ok = exchange.status == 200 and exchange.body == "wxtoken-local-check"
        elif args.command == "token":
            exchange = token(url, player.appid)
            _print(exchange)
            ok = exchange.status == 200
        else:
            xml = text_xml(args.content, msg_id=time.time_ns() // 1000) if args.command == "text" else None
            xml = xml or event_xml(args.event, event_key=args.key)
            exchange = send(url, player, xml, encrypted=args.encrypted)
            _print(exchange, encrypted=args.encrypted)
            ok = exchange.status == 200
    except requests.ConnectionError:
        print(f"nothing answers at {url}: start it with `make local`", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
