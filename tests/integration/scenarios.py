"""Scenario drivers for the observability tests: every path a metric or a log line comes from,
through the real handlers, against the stand-ins (moto, Redis, WeChat's stand-in).

Each driver runs one behaviour; the tests then read what came out — the EMF lines on stdout
(``capsys``, parsed by :func:`emf_points`) and every log record (:func:`capture_logs`).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from devtools.wechat.player import WeChatPlayer, apigw_event, event_xml, text_xml
from devtools.wechat.standin import Delay, ErrCode, HTTPStatus
from tests.fixtures.aws import create_dedup_table
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A, APPID_B
from wxtoken.client import TokenClient
from wxtoken.errors import RefreshFailedError
from wxtoken.observability import logger, metrics
from wxtoken.store.base import Credential, RecordName

# Distinct from anything else in the suite, so a hit in the logs is a real leak.
WEBHOOK_TOKEN = "obsWebhookTok3n7fq"
AES_KEY = "fv5tQZGxyJJxbiYQ5WOKcjoN3DvD3zNJkFTTnWlEhVw"
WRONG_SECRET = "c3d4c3d4c3d4c3d4c3d4c3d4c3d4c3d4"
MESSAGE_TEXT = "a private message 7c1e"
DEDUP_TABLE = "wxtoken-dedup"
IAM_USER = "arn:aws:iam::123456789012:user/app"


# --- reading what came out --------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One metric of one EMF line."""

    namespace: str
    name: str
    dimensions: frozenset[str]
    labels: tuple[tuple[str, str], ...]  # the dimensions' values
    unit: str
    value: Any

    def label(self, dimension: str) -> str | None:
        return dict(self.labels).get(dimension)


def emf_points(stdout: str) -> list[Point]:
    """Every metric of every CloudWatch EMF line in ``stdout`` (other lines are skipped)."""
    points = []
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                labels = tuple(sorted((d, str(document[d])) for d in dimensions))
                for metric in directive["Metrics"]:
                    points.append(
                        Point(
                            namespace=directive["Namespace"],
                            name=metric["Name"],
                            dimensions=frozenset(dimensions),
                            labels=labels,
                            unit=metric["Unit"],
                            value=document[metric["Name"]],
                        )
                    )
    return points


class LogCapture(logging.Handler):
    """Every record that reaches the root logger, formatted the way powertools writes
    wxtoken's lines in Lambda (JSON with every ``extra`` key and any traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logger.registered_formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def capture_logs(other_loggers_level: int = logging.WARNING) -> Iterator[LogCapture]:
    """wxtoken's loggers at DEBUG (the most a deployer can set), everything else at
    ``other_loggers_level`` (Lambda's Python runtime leaves the root logger at WARNING)."""
    capture = LogCapture()
    root = logging.getLogger()
    wxtoken_logger = logging.getLogger("wxtoken")
    saved = root.level, wxtoken_logger.level
    root.addHandler(capture)
    root.setLevel(other_loggers_level)
    wxtoken_logger.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved[0])
        wxtoken_logger.setLevel(saved[1])


def discard_pending_metrics() -> None:
    """Drop the counts earlier tests of this process left for a flush that never came."""
    with redirect_stdout(io.StringIO()):
        metrics.flush_metrics()


# --- driving the system -----------------------------------------------------------------------
class Scenarios:
    """The refresh function, the webhook function and a TokenClient on one test system.

    App A has a webhook Token and EncodingAESKey (and a jsapi ticket); app B has neither.
    """

    def __init__(self, system: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.system = system
        self.monkeypatch = monkeypatch
        self.apps = {
            APPID_A: {**system.apps[APPID_A], "token": WEBHOOK_TOKEN, "encoding_aes_key": AES_KEY},
            APPID_B: system.apps[APPID_B],
        }
        system.put_apps(self.apps)
        if system.kind == "ssm":
            create_dedup_table(system.aws, DEDUP_TABLE)
            monkeypatch.setenv("DEDUP_TABLE", DEDUP_TABLE)
        self.player = WeChatPlayer(APPID_A, WEBHOOK_TOKEN, AES_KEY)
        discard_pending_metrics()
        self.refresh_runs = 0  # refresh runs so far, whoever made them
        self.reported = Counter[str]()  # runs per app that covered it (and so report its expiry)
        self._refresh_handler: ModuleType | None = None
        self._webhook_handler: ModuleType | None = None

    # --- everything, in an order where each step has what it needs
    def run_all(self) -> None:
        self.refresh_scheduled()
        self.refresh_guard_repairs_a_token_running_low()
        self.refresh_forced()
        self.refresh_compare()
        self.refresh_probe_finds_an_outside_fetch()
        self.webhook_messages()
        self.webhook_duplicate_delivery()
        self.webhook_rejections()
        self.token_api()
        self.token_client()
        self.webhook_deadline_fallback()
        self.refresh_with_a_wrong_secret()
        self.refresh_with_a_malformed_entry()
        self.refresh_faults()

    def secrets(self) -> dict[str, str]:
        """What must never appear in a log line or a metric, by a label for the failure message."""
        found = {
            "app secret A": str(self.apps[APPID_A]["app_secret"]),
            "app secret B": str(self.apps[APPID_B]["app_secret"]),
            "wrong app secret": WRONG_SECRET,
            "webhook Token": WEBHOOK_TOKEN,
            "EncodingAESKey": AES_KEY,
            "message text": MESSAGE_TEXT,
        }
        for i, value in enumerate(self.system.wechat.issued()):
            found[f"token or ticket #{i} issued by the stand-in"] = value
        for call in self.system.wechat.calls():
            token = call.params.get("access_token")
            if isinstance(token, str) and token:
                found[f"access token sent to {call.path}"] = token
        password = urlsplit(self.system.env.get("REDIS_URL", "")).password
        if password:
            found["Redis password"] = password
        return found

    # --- refresh function
    def refresh(self, payload: dict[str, Any], *, fresh: bool = False) -> dict[str, Any]:
        """The refresh function's report; a failed run's report comes from its exception."""
        if fresh or self._refresh_handler is None:
            self._refresh_handler = load_handler("refresh_token")
            cold_start.reset_cold_start_flag()  # a fresh container: ColdStart is emitted
        self.refresh_runs += 1
        self.reported.update([payload["appid"]] if "appid" in payload else [APPID_A, APPID_B])
        try:
            result: dict[str, Any] = self._refresh_handler.lambda_handler(payload, FakeLambdaContext())
        except RefreshFailedError as exc:
            result = json.loads(str(exc))
        return result

    def refresh_scheduled(self) -> None:
        report = self.refresh({"action": "scheduled"}, fresh=True)
        assert sorted(report["refreshed"]) == [APPID_A, APPID_B], report

    def refresh_guard_repairs_a_token_running_low(self) -> None:
        # The handler runs on the real clock: make B's stored token have 100 s left.
        stored = self.system.stored(APPID_B)
        low = Credential(stored.value, int(time.time()) + 100, round(time.time(), 3))
        self.system.store().write_if_newer(
            APPID_B, RecordName.ACCESS_TOKEN, low.to_record(RecordName.ACCESS_TOKEN), 100
        )
        report = self.refresh({"action": "guard"})
        assert report["refreshed"] == [APPID_B], report

    def refresh_forced(self) -> None:
        report = self.refresh({"force": True})
        assert sorted(report["refreshed"]) == [APPID_A, APPID_B], report

    def refresh_compare(self) -> None:
        rejected = self.system.stored(APPID_A).value
        report = self.refresh({"appid": APPID_A, "invalid_token": rejected})
        assert report["refreshed"] == [APPID_A], report

    def refresh_probe_finds_an_outside_fetch(self) -> None:
        """Another program fetches a token with B's AppSecret; 5 minutes later WeChat rejects
        the stored one, and the guard's probe finds out and replaces it."""
        self.system.wechat.outside_fetch(APPID_B)
        self.system.clock.advance(301)  # WeChat's clock: the stored token's grace is over
        self.monkeypatch.setenv("PROBE_PERIOD_SECONDS", "60")  # probe on every guard run
        try:
            report = self.refresh({"action": "guard"}, fresh=True)
        finally:
            self.monkeypatch.delenv("PROBE_PERIOD_SECONDS")
            self._refresh_handler = None
        assert APPID_B in report["refreshed"], report
        assert self.system.wechat.is_valid(APPID_B, self.system.stored(APPID_B).value)

    def refresh_with_a_wrong_secret(self) -> None:
        self.system.put_apps({**self.apps, APPID_A: {**self.apps[APPID_A], "app_secret": WRONG_SECRET}})
        try:
            report = self.refresh({"force": True}, fresh=True)
        finally:
            self.system.put_apps(self.apps)
        assert [f["appid"] for f in report["failed"]] == [APPID_A], report
        assert report["refreshed"] == [APPID_B], report
        self._refresh_handler = None  # the next run reads the right secret again

    def refresh_with_a_malformed_entry(self) -> None:
        """An entry of the apps secret that is not an app (a key that is not an appid)."""
        self.system.put_apps({**self.apps, "not-an-appid": {"app_secret": "x"}})
        try:
            report = self.refresh({"action": "scheduled"}, fresh=True)
        finally:
            self.system.put_apps(self.apps)
        assert [f["appid"] for f in report["failed"]] == ["entry #3"], report
        self._refresh_handler = None  # the next run reads the good secret again

    def refresh_faults(self) -> None:
        """WeChat answering 5xx, timing out, refusing the egress IP, quota spent, busy (-1)."""
        wechat = self.system.wechat
        for fault, times, fails in [
            (HTTPStatus(503), 1, False),  # ambiguous: replayed once at once, and the replay succeeds
            (HTTPStatus(503), 2, True),  # ... and when the replay fails too
            (Delay(1.0), 2, True),  # the tests' read timeout is 0.5 s
            (ErrCode(40164), 1, True),
            (ErrCode(45009), 1, True),
            (ErrCode(-1), 1, False),  # retried at once, and the retry succeeds
        ]:
            wechat.fail_next("token", fault, times=times, appid=APPID_A)
            report = self.refresh({"force": True, "appid": APPID_A})
            assert bool(report["failed"]) is fails, (fault, report)
        wechat.clear_faults()

    # --- webhook function
    def webhook(self, event: dict[str, Any], *, fresh: bool = False) -> dict[str, Any]:
        if fresh or self._webhook_handler is None:
            self._webhook_handler = load_handler("webhook")
            cold_start.reset_cold_start_flag()
        response: dict[str, Any] = self._webhook_handler.lambda_handler(
            event, FakeLambdaContext(function_name="wxtoken-webhook", remaining_seconds=6)
        )
        assert response["statusCode"] < 500, response
        return response

    def post(self, xml: str, *, encrypted: bool = False, fresh: bool = False) -> dict[str, Any]:
        query, body = self.player.message(xml, encrypted=encrypted)
        return self.webhook(apigw_event("POST", f"/wechat/{APPID_A}", query, body), fresh=fresh)

    def webhook_messages(self) -> None:
        verify = self.webhook(
            apigw_event("GET", f"/wechat/{APPID_A}", self.player.verification()), fresh=True
        )
        assert verify["statusCode"] == 200
        assert self.post(text_xml(MESSAGE_TEXT, msg_id=1001))["statusCode"] == 200
        assert self.post(text_xml(MESSAGE_TEXT, msg_id=1002), encrypted=True)["statusCode"] == 200
        assert self.post(event_xml("subscribe", event_key="qrscene_7"), encrypted=True)["statusCode"] == 200
        assert self.post(event_xml("CLICK", event_key="MENU_1"))["statusCode"] == 200

    def webhook_duplicate_delivery(self) -> None:
        # WeChat retries with the same MsgId; the retry is answered from the dedup store.
        first = self.post(text_xml("say it twice", msg_id=2001))
        again = self.post(text_xml("say it twice", msg_id=2001))
        assert first["body"] == again["body"]

    def webhook_rejections(self) -> None:
        query, body = self.player.message(text_xml("hi", msg_id=3001))
        path = f"/wechat/{APPID_A}"
        cases = [
            (apigw_event("POST", path, {**query, "signature": "0" * 40}, body), 403),
            (apigw_event("POST", "/wechat/wx9999999999999999", query, body), 404),
            (apigw_event("POST", path, query, "<xml>" + "a" * (1024 * 1024 + 1) + "</xml>"), 413),
            (apigw_event("POST", path, query, "not xml at all"), 400),
        ]
        for event, status in cases:
            assert self.webhook(event)["statusCode"] == status

    def webhook_deadline_fallback(self) -> None:
        self.monkeypatch.setenv("WEBHOOK_HANDLER_TIMEOUT_SECONDS", "0.2")
        handler = load_handler("webhook")
        self._webhook_handler = handler

        @handler.router.message("voice")
        def sleepy(message: Any) -> None:
            time.sleep(0.6)

        xml = text_xml("x", msg_id=4001).replace("<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[voice]]>")
        assert self.post(xml)["body"] == "success"
        self.monkeypatch.delenv("WEBHOOK_HANDLER_TIMEOUT_SECONDS")
        self._webhook_handler = None

    def token_api(self) -> None:
        event = apigw_event("GET", f"/token/{APPID_A}", iam_user_arn=IAM_USER)
        for _ in range(2):  # a store read, then the cache
            response = self.webhook(event)
            assert json.loads(response["body"])["access_token"] == self.system.stored(APPID_A).value
        # a request that bypassed the route's AWS_IAM authorization
        assert self.webhook(apigw_event("GET", f"/token/{APPID_A}"))["statusCode"] == 403

    # --- a reader
    def token_client(self) -> None:
        """A TokenClient as business code uses it: reads, a call, and a rejected token replaced
        by an in-process compare-and-refresh; then the flush its handler's log_metrics does."""
        client = TokenClient.from_settings(self.system.settings)
        client.access_token(APPID_A)
        client.access_token(APPID_A)
        client.jsapi_ticket(APPID_A)
        client.call(APPID_A, "GET", "/cgi-bin/get_api_domain_ip")
        self.system.wechat.revoke_tokens(APPID_A)  # as if something else had fetched a token
        client.call(APPID_A, "GET", "/cgi-bin/get_api_domain_ip")
        self.refresh_runs += 1
        self.reported.update([APPID_A])
        metrics.flush_metrics()
