"""Per-request cost of a safe-mode text round trip through the webhook, next to wechatpy.

wxtoken: API Gateway v2 event → URL signature and msg_signature checks → decrypt → parse →
route → echo reply → encrypt → response, through ``functions/webhook/app.py``'s
``lambda_handler`` on a warm container, logging at INFO as deployed (to /dev/null). No
dedup store, so only the webhook's own work is timed (a dedup round trip is the same for
any SDK).

Baseline: wechatpy doing the same work on the same request — ``check_signature`` (the URL
signature), ``WeChatCrypto.decrypt_message``, ``parse_message``, ``create_reply(...).render()``
and ``WeChatCrypto.encrypt_message``. Both are also shown next to the floor: the bare crypto
no request can avoid (one AES decrypt, one AES encrypt, two SHA-1 signatures).

``--breakdown`` times the pieces of wxtoken's path by taking them away one at a time, and
``--profile`` prints cProfile's view of the full handler.

    .venv/bin/python -m bench.webhook_roundtrip [--breakdown] [--profile]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
from typing import Any

from bench.harness import AES_KEY, APPID, TOKEN, Figure, LambdaContext, Subject, interleaved, quiet_stdout

TARGET = 2.0  # wechatpy's time / wxtoken's time


def wechatpy_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("wechatpy")
    except Exception:
        return None


class Bench:
    """Both webhooks, wired on the same signed safe-mode request."""

    def __init__(self) -> None:
        os.environ.update({"WECHAT_APPS_SECRET_ID": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")  # the template's default LogLevel
        from tests.fixtures.lambda_context import load_handler

        self.app = load_handler("webhook")  # the function's app.py, as Lambda loads it
        from devtools.wechat.player import WeChatPlayer, apigw_event, text_xml
        from wxtoken.apps import AppsSource
        from wxtoken.config import Settings
        from wxtoken.webhook import NoDeduplication, Webhook
        from wxtoken.webhook.wiring import WebhookRuntime

        secret = json.dumps({APPID: {"app_secret": "x", "token": TOKEN, "encoding_aes_key": AES_KEY}})
        self.settings = Settings.from_env(os.environ)
        self.apps = AppsSource("bench", fetch=lambda: secret)
        self.webhook = Webhook(
            settings=self.settings, apps=self.apps, router=self.app.router, dedup=NoDeduplication()
        )
        runtime = WebhookRuntime(self.settings, self.apps, self.webhook, NoDeduplication(), _no_tokens)
        setattr(self.app, "runtime", lambda: runtime)  # noqa: B010 - the bench's own wiring: no AWS, no store

        self.player = WeChatPlayer(APPID, TOKEN, AES_KEY)
        self.plain_xml = text_xml("hello, benchmark")
        self.query, self.body = self.player.message(self.plain_xml, encrypted=True)
        self.event = apigw_event("POST", f"/wechat/{APPID}", self.query, self.body)
        self.context = LambdaContext()

        if wechatpy_version():
            from wechatpy.crypto import WeChatCrypto

            # Built once, as an app keeps it (it still sets up its cipher per message).
            self._wechatpy_crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)

        # Sanity: both answer the same echo (checked once, outside the timing).
        from wxtoken.wechat.messages import parse_xml

        reply = self.app.lambda_handler(self.event, self.context)
        assert reply["statusCode"] == 200, reply
        assert parse_xml(self.player.decrypt_reply(reply["body"]))["Content"] == "hello, benchmark"
        if wechatpy_version():
            assert parse_xml(self.player.decrypt_reply(self.wechatpy()))["Content"] == "hello, benchmark"

    def wxtoken(self) -> None:
        self.app.lambda_handler(self.event, self.context)

    def wechatpy(self) -> str:
        from wechatpy import create_reply, parse_message
        from wechatpy.utils import check_signature

        q, crypto = self.query, self._wechatpy_crypto
        check_signature(TOKEN, q["signature"], q["timestamp"], q["nonce"])
        message = parse_message(
            crypto.decrypt_message(self.body, q["msg_signature"], q["timestamp"], q["nonce"])
        )
        reply = create_reply(message.content, message).render()
        out: str = crypto.encrypt_message(reply, q["nonce"], q["timestamp"])
        return out

    def floor(self) -> Any:
        from wxtoken.wechat.crypto import MessageCrypto
        from wxtoken.wechat.signature import sha1_signature

        crypto = MessageCrypto(AES_KEY, APPID)
        encrypt = self.body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]

        def floor() -> None:
            sha1_signature(TOKEN, "1", "2", encrypt)
            out = crypto.encrypt(crypto.decrypt(encrypt))
            sha1_signature(TOKEN, "1", "2", out)

        return floor

    def log_level(self, level: str) -> Any:
        from wxtoken.observability import logger

        return lambda: logger.setLevel(level)

    def breakdown_subjects(self) -> tuple[dict[str, Subject], Any]:
        """wxtoken's path with one more piece taken away on each row (so each row's cost is
        the row above minus it), then the parts the rest is made of; and a function that puts
        back what the rows took away."""
        from defusedxml.ElementTree import fromstring

        import wxtoken.webhook.pipeline as webhook_module
        from wxtoken.observability import logger, set_metrics_disabled
        from wxtoken.wechat.messages import parse_encrypted_envelope, parse_message

        call_within = webhook_module.call_within  # type: ignore[attr-defined]
        body = self.body.encode()
        plain = self.plain_xml.encode()

        def state(level: str, *, metrics: bool = True, inline: bool = False) -> Any:
            def before() -> None:
                logger.setLevel(level)
                setattr(webhook_module, "call_within", _direct_call if inline else call_within)  # noqa: B010
                set_metrics_disabled(not metrics)

            return before

        def receive() -> None:
            self.webhook.receive(APPID, self.query, body)

        undecorated = inspect.unwrap(self.app.lambda_handler)

        def dispatch() -> None:
            undecorated(self.event, self.context)

        rows = {
            "handler as deployed (INFO logs, metrics)": Subject(self.wxtoken, state("INFO")),
            "- log lines (WARNING level)": Subject(self.wxtoken, state("WARNING")),
        }
        rows["- the invocation's EMF metric line (metrics off)"] = Subject(
            self.wxtoken, state("WARNING", metrics=False)
        )
        rows |= {
            "- handler decorators: logger, metrics, tracer (undecorated)": Subject(
                dispatch, state("WARNING", metrics=False)
            ),
            "- routeKey dispatch, event and response (Webhook.receive)": Subject(
                receive, state("WARNING", metrics=False)
            ),
            "- handler time limit (timer; a direct call)": Subject(
                receive, state("WARNING", metrics=False, inline=True)
            ),
        }
        parts = {
            "parse_encrypted_envelope (pyexpat reader)": Subject(lambda: parse_encrypted_envelope(body)),
            "parse_message (pyexpat reader)": Subject(lambda: parse_message(plain)),
            "defusedxml fromstring, the message alone": Subject(
                lambda: fromstring(plain, forbid_dtd=True, forbid_entities=True, forbid_external=True)
            ),
            "xml.etree C parser, same message": Subject(lambda: _c_fromstring(plain)),
            "apps secret JSON parsed per request": Subject(lambda: self.apps.get(APPID)),
            "crypto floor": Subject(self.floor()),
        }
        return {**rows, **{f"  part: {k}": v for k, v in parts.items()}}, state("INFO")


def _no_tokens() -> Any:
    raise AssertionError("the message path must not build a TokenClient")


def _direct_call(seconds: float, work: Any) -> Any:
    """A stand-in for the handler's time limit: the handler, called with no limit at all."""
    return work()


def _c_fromstring(body: bytes) -> Any:
    import xml.etree.ElementTree as ElementTree

    return ElementTree.fromstring(body)  # noqa: S314 - timing only, never on untrusted input


def measure(rounds: int = 9) -> dict[str, float]:
    with quiet_stdout():
        bench = Bench()
    subjects: dict[str, Subject] = {
        "crypto floor": Subject(bench.floor()),
        "wxtoken": Subject(bench.wxtoken, bench.log_level("INFO")),
    }
    if wechatpy_version():
        subjects["wechatpy"] = Subject(bench.wechatpy)
    with quiet_stdout():
        return interleaved(subjects, rounds=rounds)


def figures(rounds: int = 9) -> list[Figure]:
    t = measure(rounds)
    version = wechatpy_version()
    if not version:
        return [
            Figure(
                "1. webhook safe-mode round trip vs wechatpy",
                f"{t['wxtoken'] * 1e6:.0f} µs",
                f">= {TARGET:.0f}x faster",
                None,
                "wechatpy is not installed (pip install -r requirements-dev.txt); no baseline",
            )
        ]
    ratio = t["wechatpy"] / t["wxtoken"]
    return [
        Figure(
            "1. webhook safe-mode round trip: wechatpy / wxtoken",
            f"{ratio:.2f}x",
            f">= {TARGET:.1f}x",
            ratio >= TARGET,
            f"wxtoken {t['wxtoken'] * 1e6:.0f} µs (handler, INFO logs) vs wechatpy {version} "
            f"{t['wechatpy'] * 1e6:.0f} µs; crypto floor {t['crypto floor'] * 1e6:.0f} µs",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--breakdown", action="store_true", help="time the pieces of wxtoken's path")
    parser.add_argument("--profile", action="store_true", help="cProfile the full handler")
    args = parser.parse_args()

    t = measure(args.rounds)
    floor = t["crypto floor"]
    print(f"{'work (µs per request, median of interleaved rounds)':58} {'µs':>8} {'x floor':>8}")
    for name, label in (
        ("crypto floor", "crypto floor (2 SHA-1 + decrypt + encrypt)"),
        ("wechatpy", f"wechatpy {wechatpy_version()}: same work, no Lambda event"),
        ("wxtoken", "wxtoken lambda_handler, INFO logs (as deployed)"),
    ):
        if name in t:
            print(f"{label:58} {t[name] * 1e6:8.1f} {t[name] / floor:8.2f}")
    if "wechatpy" in t:
        print(f"wechatpy / wxtoken: {t['wechatpy'] / t['wxtoken']:.2f}x (target >= {TARGET:.1f}x)")

    if args.breakdown:
        with quiet_stdout():
            bench = Bench()
            subjects, restore = bench.breakdown_subjects()
            parts = interleaved(subjects, rounds=args.rounds)
            restore()
        print()
        print(f"{'wxtoken, one piece taken away per row':58} {'µs':>8} {'cost':>8}")
        previous = None
        for name, seconds in parts.items():
            cost = "" if previous is None or name.startswith("  ") else f"{(previous - seconds) * 1e6:8.1f}"
            print(f"{name:58} {seconds * 1e6:8.1f} {cost:>8}")
            if not name.startswith("  "):
                previous = seconds

    if args.profile:
        import cProfile
        import pstats

        with quiet_stdout() as out:
            bench = Bench()
            bench.log_level("INFO")()
            for _ in range(200):
                bench.wxtoken()
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(3000):
                bench.wxtoken()
            profile.disable()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
