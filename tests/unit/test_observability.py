"""The one Metrics and the lazy Tracer: EMF lines as CloudWatch reads them, and no X-Ray SDK
import (hundreds of ms of every cold start) unless tracing is asked for."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from wxtoken import observability
from wxtoken.observability import metrics, put_metric

LAYER = str(Path(__file__).parents[2] / "layers" / "wxtoken")


@pytest.fixture(autouse=True)
def nothing_pending():
    """Counts other tests of this process left unflushed must not show up here."""
    with redirect_stdout(io.StringIO()):
        metrics.flush_metrics()


def emf_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_a_point_is_one_emf_line_with_its_dimensions_and_the_service(capsys):
    put_metric("WeChatApiError", MetricUnit.Count, 1, Endpoint="token", ErrCode="40164")

    [line] = emf_lines(capsys.readouterr().out)
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "WxToken"
    assert sorted(directive["Dimensions"][0]) == ["Endpoint", "ErrCode", "service"]
    assert directive["Metrics"] == [{"Name": "WeChatApiError", "Unit": "Count"}]
    assert (line["Endpoint"], line["ErrCode"], line["WeChatApiError"]) == ("token", "40164", [1.0])


def test_points_written_from_many_threads_stay_whole_lines(capsys):
    def emit(i: int) -> None:
        for _ in range(50):
            put_metric("WeChatApiLatency", MetricUnit.Milliseconds, i, Endpoint="api")

    threads = [threading.Thread(target=emit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 400
    assert all(json.loads(line)["Endpoint"] == "api" for line in lines)


def test_counts_are_summed_into_one_line_at_the_flush(capsys):
    for _ in range(1000):
        observability.count("TokenCacheHit")
    observability.count("TokenCacheMiss")
    assert capsys.readouterr().out == ""  # a hot path writes nothing

    metrics.flush_metrics()

    [line] = emf_lines(capsys.readouterr().out)
    assert (line["TokenCacheHit"], line["TokenCacheMiss"]) == ([1000.0], [1.0])
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_an_invocation_writes_one_emf_document_with_a_directive_per_dimension_set(capsys):
    # Given a cold handler that counts a message by type, a dimensionless count and a value
    from aws_lambda_powertools.metrics.provider import cold_start

    from tests.fixtures.lambda_context import FakeLambdaContext
    from tests.integration.scenarios import emf_points

    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event, context):
        observability.count("WebhookMessage", MsgType="text")
        observability.count("WebhookMessage", MsgType="text")
        observability.count("DuplicateDelivery")
        observability.record("MinSecondsToExpiry", MetricUnit.Seconds, 7000)
        return "ok"

    cold_start.is_cold_start = True
    try:
        # When it is invoked
        handler({}, FakeLambdaContext(function_name="wxtoken-webhook"))
    finally:
        cold_start.is_cold_start = False

    # Then everything is in one line, and CloudWatch reads each metric with its own dimensions
    out = capsys.readouterr().out
    assert len(emf_lines(out)) == 1
    points = {(p.name, p.labels): (p.unit, p.value) for p in emf_points(out)}
    assert points == {
        ("WebhookMessage", (("MsgType", "text"), ("service", "wxtoken"))): ("Count", [2.0]),
        ("DuplicateDelivery", (("service", "wxtoken"),)): ("Count", [1.0]),
        ("MinSecondsToExpiry", (("service", "wxtoken"),)): ("Seconds", [7000.0]),
        ("ColdStart", (("function_name", "wxtoken-webhook"), ("service", "wxtoken"))): ("Count", [1.0]),
    }


def test_dimension_sets_that_would_clash_go_to_documents_of_their_own(capsys):
    # Given counts whose dimension values differ under one key, and a metric name under two sets
    observability.count("WebhookRejected", Reason="signature")
    observability.count("WebhookRejected", Reason="malformed")
    observability.count("WebhookRejected")
    for value in range(150):  # more values than one EMF metric may hold (100)
        observability.record("MinSecondsToExpiry", MetricUnit.Seconds, value)

    metrics.flush_metrics()

    # Then no document makes CloudWatch read a value that is not its own
    from tests.integration.scenarios import emf_points

    out = capsys.readouterr().out
    points = emf_points(out)
    rejected = sorted((p.label("Reason") or "", p.value) for p in points if p.name == "WebhookRejected")
    assert rejected == [("", [1.0]), ("malformed", [1.0]), ("signature", [1.0])]
    minimum = [p.value for p in points if p.name == "MinSecondsToExpiry"]
    assert sorted(len(values) for values in minimum) == [50, 100]
    assert sorted(v for values in minimum for v in values) == [float(v) for v in range(150)]
    assert len(emf_lines(out)) == 3


def test_counts_alone_read_the_same_from_the_cached_shape_on_every_flush(capsys):
    from tests.integration.scenarios import emf_points

    for total in (1, 3):  # the second flush fills the shape the first one cached
        for _ in range(total):
            observability.count("WebhookRejected", Reason="signature")
            observability.count("WebhookRejected", Reason="malformed")
            observability.count("WebhookRejected")
            observability.count("WebhookMessage", MsgType="text")
        metrics.flush_metrics()

        out = capsys.readouterr().out
        points = sorted((p.name, p.labels, p.value) for p in emf_points(out))
        service = ("service", "wxtoken")
        assert points == [
            ("WebhookMessage", (("MsgType", "text"), service), [float(total)]),
            ("WebhookRejected", (("Reason", "malformed"), service), [float(total)]),
            ("WebhookRejected", (("Reason", "signature"), service), [float(total)]),
            ("WebhookRejected", (service,), [float(total)]),
        ]
        assert len(emf_lines(out)) == 3


@pytest.mark.parametrize(
    ("name", "value", "dimensions"),
    [
        ("WebhookMessage", 1, {"service": "mine"}),  # service is wxtoken's own
        ("WebhookMessage", 1, {"_aws": "x"}),
        ("service", 1, {}),
        ("MsgType", 1, {"MsgType": "text"}),  # the value would overwrite the dimension
        ("WebhookMessage", float("nan"), {}),
        ("WebhookMessage", float("inf"), {}),
    ],
    ids=["service-dimension", "aws-dimension", "service-name", "name-is-a-dimension", "nan", "inf"],
)
def test_a_bad_count_is_dropped_alone_and_never_spoils_the_document(capsys, name, value, dimensions):
    # Given a good count in the same invocation
    observability.count("DuplicateDelivery")

    observability.count(name, value, **dimensions)
    metrics.flush_metrics()

    # Then the good one is written, valid, and nothing of the bad one
    [line] = emf_lines(capsys.readouterr().out)
    assert line["DuplicateDelivery"] == [1.0]
    names = [m["Name"] for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    assert names == ["DuplicateDelivery"]


def test_the_same_dimensions_in_any_order_are_one_set(capsys):
    observability.count("WeChatApiError", Endpoint="token", ErrCode="40164")
    observability.count("WeChatApiError", ErrCode="40164", Endpoint="token")
    metrics.flush_metrics()
    [line] = emf_lines(capsys.readouterr().out)
    assert line["WeChatApiError"] == [2.0]


def test_a_cold_start_without_a_function_name_writes_no_empty_dimension(capsys):
    from aws_lambda_powertools.metrics.provider import cold_start

    from tests.fixtures.lambda_context import FakeLambdaContext

    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event, context):
        observability.count("WebhookMessage", MsgType="text")

    cold_start.is_cold_start = True
    try:
        handler({}, FakeLambdaContext(function_name=""))
    finally:
        cold_start.is_cold_start = False

    [line] = emf_lines(capsys.readouterr().out)
    assert "function_name" not in line
    assert line["WebhookMessage"] == [1.0]


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
def test_the_observed_handler_writes_what_powertools_log_metrics_writes(capsys, fails):
    # Given the same cold handler under powertools' log_metrics and under wxtoken's wrapper
    from aws_lambda_powertools.metrics.provider import cold_start

    from tests.fixtures.lambda_context import FakeLambdaContext

    def work(event, context):
        observability.count("WebhookMessage", MsgType="text")
        if fails:
            raise RuntimeError("the handler failed")
        return "ok"

    theirs = metrics.log_metrics(capture_cold_start_metric=True)(work)
    ours = observability.observed_handler()(work)
    context = FakeLambdaContext(function_name="wxtoken-webhook")

    def written(handler) -> list[dict]:
        cold_start.is_cold_start = True
        try:
            handler({}, context)
        except RuntimeError:
            assert fails
        finally:
            cold_start.is_cold_start = False
        lines = emf_lines(capsys.readouterr().out)
        for line in lines:
            line["_aws"].pop("Timestamp")
        return lines

    # Then both write the same document: ColdStart only when the first invocation returns,
    # and the invocation's counts either way
    [line] = written(theirs)
    assert written(ours) == [line]
    assert ("ColdStart" in line) is not fails
    assert line["WebhookMessage"] == [1.0]


def test_a_flush_with_nothing_to_say_writes_nothing(capsys, recwarn):
    metrics.flush_metrics()
    assert capsys.readouterr().out == ""
    assert not [w for w in recwarn if "No application metrics" in str(w.message)]


def test_a_metric_that_cannot_be_written_is_dropped_not_raised(capsys):
    put_metric("", MetricUnit.Count, 1)  # an invalid name
    assert emf_lines(capsys.readouterr().out) == []


def test_metrics_can_be_turned_off(capsys, monkeypatch):
    monkeypatch.setattr(observability, "_metrics_off", False)
    observability.set_metrics_disabled(True)
    put_metric("TokenRefreshed", MetricUnit.Count, 1, appid="wx1")
    observability.count("TokenCacheHit")
    metrics.flush_metrics()
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("environment", "disabled"),
    [
        ({}, False),
        ({"POWERTOOLS_METRICS_DISABLED": "true"}, True),
        ({"POWERTOOLS_METRICS_DISABLED": "1"}, True),
        ({"POWERTOOLS_METRICS_DISABLED": "false"}, False),
        ({"POWERTOOLS_DEV": "true"}, True),
        ({"POWERTOOLS_DEV": "true", "POWERTOOLS_METRICS_DISABLED": "false"}, False),
        ({"POWERTOOLS_DEV": "false"}, False),
        ({"POWERTOOLS_METRICS_DISABLED": "maybe"}, False),  # powertools would raise at every flush
    ],
)
def test_metrics_are_off_by_powertools_rule(environment, disabled):
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    from wxtoken.config import ObservabilitySettings

    assert ObservabilitySettings.from_env(environment).metrics_disabled is disabled
    if "maybe" not in environment.values():
        with pytest.MonkeyPatch.context() as patch:
            for name in ("POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED"):
                patch.delenv(name, raising=False)
            for name, value in environment.items():
                patch.setenv(name, value)
            assert is_metrics_disabled() is disabled


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WXTOKEN_", "LAMBDA_TASK"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environment, "PYTHONPATH": LAYER, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


PROBE = """
import sys
from wxtoken.observability import tracer

@tracer.capture_method(capture_response=False)
def work(x):
    return x + 1

@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return work(event)

assert work(1) == 2
imported = any(m.startswith("aws_xray_sdk") and sys.modules[m] is not None for m in list(sys.modules))
print(type(tracer).__name__, imported)
"""


def test_tracing_is_off_by_default_and_imports_no_xray_sdk():
    assert run_python(PROBE).stdout.split() == ["NoOpTracer", "False"]


def test_tracing_on_uses_powertools_tracer():
    pytest.importorskip("aws_xray_sdk")
    assert run_python(PROBE, WXTOKEN_TRACING="true").stdout.split() == ["Tracer", "True"]


def test_tracing_on_without_the_xray_sdk_warns_and_stays_off():
    # Given an environment where aws-xray-sdk cannot be imported
    blocker = "import sys; sys.modules['aws_xray_sdk'] = None; sys.modules['aws_xray_sdk.core'] = None\n"

    result = run_python(blocker + PROBE, WXTOKEN_TRACING="true")

    assert result.stdout.splitlines()[-1].split() == ["NoOpTracer", "False"]
    assert "aws-xray-sdk is not installed" in result.stdout + result.stderr


def test_tracing_never_patches_wechats_http_calls():
    # X-Ray's httplib patch records each request's URL, and the token URL's query carries the
    # AppSecret: WeChat's calls (urllib3 on http.client) must stay unpatched, as requests did.
    pytest.importorskip("aws_xray_sdk")
    code = PROBE + (
        "import http.client, urllib3, requests\n"
        "print(type(http.client.HTTPConnection._send_request).__name__,"
        " type(urllib3.HTTPConnectionPool.urlopen).__name__, type(requests.Session.request).__name__)"
    )
    result = run_python(code, WXTOKEN_TRACING="true", LAMBDA_TASK_ROOT="/var/task")
    assert result.stdout.split()[-3:] == ["function", "function", "function"]


def test_a_metric_with_a_dimension_named_service_or_too_many_is_dropped(capsys):
    put_metric("TokenRefreshed", MetricUnit.Count, 1, service="other")
    put_metric("TokenRefreshed", MetricUnit.Count, 1, **{f"d{i}": "x" for i in range(30)})
    assert emf_lines(capsys.readouterr().out) == []


def test_a_total_that_overflows_is_dropped_never_written_as_infinity(capsys):
    # Given counts whose sum is past a float's range, beside a good one
    observability.count("DuplicateDelivery")
    observability.count("WebhookRejected", 1e308)
    observability.count("WebhookRejected", 1e308)

    metrics.flush_metrics()

    # Then nothing that is not JSON reaches CloudWatch (the invocation's line is dropped, warned)
    def no_constant(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    for line in capsys.readouterr().out.splitlines():
        json.loads(line, parse_constant=no_constant)
        assert "inf" not in line.lower()


def test_a_count_by_a_value_that_is_not_a_string_is_the_same_as_by_its_text(capsys):
    observability.count("WeChatApiError", ErrCode=40164)  # type: ignore[arg-type]
    observability.count("WeChatApiError", ErrCode="40164")
    observability.count("WeChatApiError", ErrCode=40164)  # type: ignore[arg-type]
    metrics.flush_metrics()
    [line] = emf_lines(capsys.readouterr().out)
    assert (line["ErrCode"], line["WeChatApiError"]) == ("40164", [3.0])


def test_the_handlers_log_keys_are_powertools_key_for_key(monkeypatch):
    # Given one handler under powertools' decorator and one under wxtoken's, logging alike
    import aws_lambda_powertools.logging.logger as powertools_logger

    from tests.fixtures.lambda_context import FakeLambdaContext

    logger = observability.logger

    @logger.inject_lambda_context(log_event=False)
    def theirs(event, context):
        logger.set_correlation_id(event["requestContext"]["requestId"])
        logger.info("hello")

    @observability.observed_handler(correlation_id=lambda event: event["requestContext"]["requestId"])
    def ours(event, context):
        logger.info("hello")

    context = FakeLambdaContext(function_name="wxtoken-webhook")
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    monkeypatch.setattr(powertools_logger, "is_cold_start", True)
    monkeypatch.setattr(observability, "_first_invocation", True)

    def logged(handler, request_id: str) -> dict:
        stream.seek(0)
        stream.truncate()
        handler({"requestContext": {"requestId": request_id}}, context)
        line = json.loads(stream.getvalue())
        line.pop("timestamp"), line.pop("location")  # when and where: not the keys
        return line

    try:
        # When each is invoked cold, then warm
        cold = [logged(theirs, "r-1"), logged(ours, "r-1")]
        warm = [logged(theirs, "r-2"), logged(ours, "r-2")]
    finally:
        logger.remove_keys(["correlation_id", "cold_start", "function_request_id"])

    # Then their lines are the same, key for key and in the same order
    assert cold[0]["cold_start"] is True
    assert cold[0]["correlation_id"] == "r-1"
    assert list(cold[0].items()) == list(cold[1].items())
    assert warm[0]["cold_start"] is False
    assert warm[0]["function_request_id"] == context.aws_request_id
    assert list(warm[0].items()) == list(warm[1].items())


def test_debug_sampling_is_drawn_again_on_every_warm_invocation_as_powertools_does(monkeypatch):
    from tests.fixtures.lambda_context import FakeLambdaContext

    drawn: list[bool] = []
    logger = observability.logger
    monkeypatch.setattr(logger, "sampling_rate", 0.5)
    monkeypatch.setattr(logger, "refresh_sample_rate_calculation", lambda: drawn.append(True))
    monkeypatch.setattr(observability, "_first_invocation", True)
    handler = observability.observed_handler()(lambda event, context: None)

    for _ in range(3):
        handler({}, FakeLambdaContext(function_name="wxtoken-webhook"))

    assert drawn == [True, True]  # not on the cold one: the Logger drew it when it was built


def test_counting_by_a_dimension_is_counting_with_it(capsys):
    # Given counts by MsgType through count_by and through count, and a value count refuses
    by_type = observability.count_by("WebhookMessage", "MsgType")
    by_type("text")
    by_type("text")
    observability.count("WebhookMessage", MsgType="text")
    by_type("event:subscribe")
    by_type("")  # no empty dimension: counted without it, as count() does
    metrics.flush_metrics()

    # Then they sum into the same points
    from tests.integration.scenarios import emf_points

    points = {(p.name, p.labels): p.value for p in emf_points(capsys.readouterr().out)}
    assert points[("WebhookMessage", (("MsgType", "text"), ("service", "wxtoken")))] == [3.0]
    assert points[("WebhookMessage", (("MsgType", "event:subscribe"), ("service", "wxtoken")))] == [1.0]
    assert points[("WebhookMessage", (("service", "wxtoken"),))] == [1.0]


def test_a_dimension_count_by_refuses_is_dropped_with_a_warning(capsys):
    by_name = observability.count_by("WebhookMessage", "WebhookMessage")  # the name as a dimension
    by_name("text")
    metrics.flush_metrics()
    assert emf_lines(capsys.readouterr().out) == []
