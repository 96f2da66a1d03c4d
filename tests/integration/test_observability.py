"""Observability as deployed: what the dashboard and alarms read is what the code emits, and
no secret or token ever reaches a log line or a metric.

The scenarios (tests/integration/scenarios.py) run the real handlers — refresh runs of every
trigger, a failing app and WeChat's faults, webhook messages, rejections, a duplicate and a
deadline fallback, the token API and a TokenClient — and these tests read what came out.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.wechat import APPID_A, APPID_B
from tests.integration.scenarios import Point, Scenarios, capture_logs, emf_points
from tests.unit.test_template import CloudFormationLoader
from wxtoken import observability
from wxtoken.config import ObservabilitySettings
from wxtoken.observability import METRIC_NAMES, NAMESPACE, PLATFORM_METRIC_NAMES, REJECT_REASONS, SERVICE

TEMPLATE = Path(__file__).parents[2] / "template.yaml"

# The metrics issue 4 names; other engineers' benchmarks and tests read them by these names.
ISSUE_METRICS = {
    "TokenRefreshed",
    "RefreshFailed",
    "SecondsToExpiry",
    "WeChatApiLatency",
    "WeChatApiError",
    "WebhookMessage",
    "WebhookRejected",
    "DuplicateDelivery",
    "TokenCacheHit",
    "TokenCacheMiss",
    "DeadlineFallback",
}

Wanted = tuple[str, frozenset[str], str]  # metric, dimension names, where it is read


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506


@pytest.fixture
def scenarios(system, monkeypatch) -> Scenarios:
    return Scenarios(system, monkeypatch)


@pytest.fixture
def per_app_metrics(monkeypatch) -> None:
    """The stack deployed with PerAppMetrics=true (WXTOKEN_PER_APP_METRICS), which
    observability reads once per container."""
    monkeypatch.setattr(observability, "_SETTINGS", ObservabilitySettings(per_app_metrics=True))


def dashboard_metrics(template: dict[str, Any]) -> list[Wanted]:
    """Every WxToken metric a dashboard widget graphs, with the dimension set it asks for."""
    wanted: list[Wanted] = []
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
        # What !Sub fills in is irrelevant here; the JSON around it must parse.
        dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))
        for widget in dashboard["widgets"]:
            where = f"{name}: {widget['properties'].get('title')}"
            for entry in widget["properties"].get("metrics", []):
                if isinstance(entry[0], dict):
                    wanted.extend(search_metrics(entry[0]["expression"], where))
                elif entry[0] == NAMESPACE:
                    labels = [e for e in entry[2:] if not isinstance(e, dict)]
                    wanted.append((entry[1], frozenset(labels[0::2]), where))
    return wanted


def search_metrics(expression: str, where: str) -> list[Wanted]:
    """The metric of a ``SEARCH('{Namespace,dim,…} MetricName="X" …', …)`` in our namespace.

    A SEARCH schema matches metrics with exactly those dimensions, so the set must be exact.
    """
    match = re.fullmatch(r"""SEARCH\('\{([^}]*)\}\s*([^']*)',\s*'[^']+'(?:,\s*\d+)?\)""", expression)
    assert match, f"{where}: not a SEARCH this test understands: {expression}"
    namespace, *dimensions = [part.strip() for part in match[1].split(",")]
    if namespace != NAMESPACE:
        return []
    names = re.findall(r'MetricName="(\w+)"', match[2])
    assert len(names) == 1, f"{where}: a SEARCH should name one metric: {expression}"
    return [(names[0], frozenset(dimensions), where)]


def alarm_metrics(template: dict[str, Any]) -> list[Wanted]:
    wanted: list[Wanted] = []
    for name, resource in template["Resources"].items():
        properties = resource["Properties"]
        if resource["Type"] == "AWS::CloudWatch::Alarm" and properties.get("Namespace") == NAMESPACE:
            dimensions = frozenset(d["Name"] for d in properties.get("Dimensions", []))
            wanted.append((properties["MetricName"], dimensions, name))
    return wanted


def test_the_template_reads_our_namespace(template):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}


def test_every_metric_of_the_issue_is_on_the_dashboard(template):
    on_dashboard = {metric for metric, _dims, _where in dashboard_metrics(template)}
    assert on_dashboard >= ISSUE_METRICS, f"not on the dashboard: {ISSUE_METRICS - on_dashboard}"
    assert on_dashboard >= METRIC_NAMES, f"emitted, but not on the dashboard: {METRIC_NAMES - on_dashboard}"
    assert ISSUE_METRICS <= METRIC_NAMES


@pytest.mark.parametrize("system", ["ssm"], indirect=True)
def test_everything_the_dashboard_and_alarms_read_is_emitted(template, scenarios, per_app_metrics, capsys):
    # When every scenario runs through the real handlers
    scenarios.run_all()
    points = [p for p in emf_points(capsys.readouterr().out) if p.namespace == NAMESPACE]

    # Then every metric the dashboard and the alarms read was emitted, with exactly the
    # dimensions they ask for (CloudWatch matches a metric by its whole dimension set)
    emitted = {(p.name, p.dimensions) for p in points}
    # (Open Platform's own: tests/integration/test_open_platform_refresh.py)
    wanted = [
        w for w in dashboard_metrics(template) + alarm_metrics(template) if w[0] not in PLATFORM_METRIC_NAMES
    ]
    assert len(wanted) > len(ISSUE_METRICS)
    missing = [
        (metric, sorted(dims), where) for metric, dims, where in wanted if (metric, dims) not in emitted
    ]
    assert not missing, f"read by the template, never emitted: {missing}"
    # and the code emits no metric whose name observability.py does not know
    assert {p.name for p in points} <= METRIC_NAMES
    assert {p.label("service") for p in points} == {SERVICE}  # the stack name, once deployed


@pytest.mark.parametrize("system", ["ssm"], indirect=True)
def test_emitted_metrics_carry_what_an_operator_needs(scenarios, per_app_metrics, capsys):
    scenarios.run_all()
    points = emf_points(capsys.readouterr().out)

    def of(name: str) -> list[Point]:
        return [p for p in points if p.name == name]

    # Every refresh run, whatever its trigger, reports the time to expiry of each app it
    # covered (all of them, unless it named one), and the least.
    runs = scenarios.refresh_runs
    per_app = Counter(p.label("appid") for p in of("SecondsToExpiry"))
    assert per_app == scenarios.reported
    assert per_app[APPID_B] >= 4  # scheduled, guard, forced, wrong secret
    assert len(of("MinSecondsToExpiry")) == runs
    assert all(p.unit == "Seconds" and 0 <= p.value[0] <= 7200 for p in of("SecondsToExpiry"))
    # A failure names the app and the error's class; the total per run is there too.
    failures = {(p.label("appid"), p.label("ErrorClass")) for p in of("RefreshFailed") if p.label("appid")}
    assert failures >= {
        (APPID_A, "InvalidCredentialError"),  # wrong secret (40125)
        (APPID_A, "WeChatTransportError"),  # 5xx, timeout
        (APPID_A, "IPNotAllowlistedError"),  # 40164
        (APPID_A, "QuotaExceededError"),  # 45009
    }
    totals = [p.value[0] for p in of("RefreshFailed") if not p.label("appid")]
    # written by the runs that failed, never as a 0 (a metric is billed for each hour it is sent)
    assert 0 < len(totals) < runs
    assert all(total > 0 for total in totals)
    assert all(p.value[0] > 0 for p in of("AppsSecretInvalidEntries"))
    assert {p.label("appid") for p in of("TokenRefreshed") if p.label("appid")} == {APPID_A, APPID_B}
    # and the total, which the dashboard graphs whatever PerAppMetrics says
    by_app = sum(p.value[0] for p in of("TokenRefreshed") if p.label("appid"))
    assert sum(p.value[0] for p in of("TokenRefreshed") if not p.label("appid")) == by_app
    # WeChat's API: latency per endpoint; errors by errcode, transport failures included.
    assert {p.label("Endpoint") for p in of("WeChatApiLatency")} == {"token", "getticket", "api"}
    assert all(p.unit == "Milliseconds" for p in of("WeChatApiLatency"))
    errors = {(p.label("Endpoint"), p.label("ErrCode")) for p in of("WeChatApiError")}
    assert errors >= {
        ("token", "40125"),
        ("token", "40164"),
        ("token", "45009"),
        ("token", "-1"),
        ("token", "transport"),
        ("api", "40001"),
    }
    # The webhook: messages by type, events as event:<name>, and every kind of refusal.
    assert {p.label("MsgType") for p in of("WebhookMessage")} >= {
        "text",
        "voice",
        "event:subscribe",
        "event:click",
    }
    assert {p.label("Reason") for p in of("WebhookRejected")} == set(REJECT_REASONS)
    assert sum(p.value[0] for p in of("DuplicateDelivery")) == 1
    assert sum(p.value[0] for p in of("DeadlineFallback")) == 1
    assert sum(p.value[0] for p in of("TokenCacheHit")) >= 2
    assert sum(p.value[0] for p in of("TokenCacheMiss")) >= 3
    assert {p.label("function_name") for p in of("ColdStart")} >= {
        "wxtoken-RefreshTokenFunction",
        "wxtoken-webhook",
    }


@pytest.mark.parametrize("system", ["ssm"], indirect=True)
def test_by_default_no_metric_is_written_per_app_on_every_run_and_the_alarms_have_theirs(
    template, scenarios, capsys
):
    # Given the default deployment (PerAppMetrics=false), when every scenario runs
    scenarios.run_all()
    points = [p for p in emf_points(capsys.readouterr().out) if p.namespace == NAMESPACE]

    # Then what every run writes for every app (a custom metric per app, billed while sent)
    # is not written; the totals are, once per run or per token stored
    assert not [p for p in points if p.name in {"SecondsToExpiry", "TokenRefreshed"} and p.label("appid")]
    assert sum(p.value[0] for p in points if p.name == "TokenRefreshed") >= 2
    assert len([p for p in points if p.name == "MinSecondsToExpiry"]) == scenarios.refresh_runs
    # and failures still name their app (written only when something fails)
    assert {p.label("appid") for p in points if p.name == "RefreshFailed" and p.label("appid")} >= {APPID_A}
    # and every metric an alarm reads is emitted, with its dimensions
    emitted = {(p.name, p.dimensions) for p in points}
    missing = [
        (metric, sorted(dims))
        for metric, dims, _ in alarm_metrics(template)
        if (metric, dims) not in emitted and metric not in PLATFORM_METRIC_NAMES
    ]
    assert not missing, missing


def test_no_secret_or_token_reaches_the_logs_or_the_metrics(scenarios, capsys):
    # When every scenario runs — WeChat's faults and a wrong secret included — with wxtoken's
    # loggers at DEBUG and every other logger at INFO (Lambda leaves them at WARNING; at DEBUG
    # botocore logs response bodies and urllib3 request URLs, secrets included)
    with capture_logs(logging.INFO) as logs:
        scenarios.run_all()
    out = capsys.readouterr()
    output = "\n".join([out.out, out.err, logs.text])

    # Then the output is there (the capture works) ...
    assert '"token refreshed"' in output
    assert '"refresh failed"' in output
    assert '"TokenRefreshed"' in output
    secrets = scenarios.secrets()
    assert sum(label.startswith("token or ticket") for label in secrets) >= 10
    # ... and holds no AppSecret, token, ticket, webhook Token, AES key, message or password
    leaked = sorted(label for label, secret in secrets.items() if secret in output)
    assert not leaked, f"in the logs or metrics: {leaked}"
