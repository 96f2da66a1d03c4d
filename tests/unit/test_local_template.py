"""What the local loop reads from template.yaml, and how it speaks API Gateway and sam.

The loop repeats nothing of the template in code: these pin that the functions, their
environments, schedules and routes it runs are the template's, resolved to local values.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from devtools.invoke import apply_env_vars, sam_environment
from devtools.local import _banner
from devtools.sam.api_gateway import LOCAL_IAM_USER_ARN, build_event, http_response, pick_route
from devtools.sam.host import Console, Invocation, render_log_line
from devtools.sam.local_system import (
    DEFAULT_PORTS,
    LOCAL_PHYSICAL_IDS,
    STACK_NAME,
    LocalOptions,
    LocalSystem,
    lambda_environment,
)
from devtools.sam.template import SamTemplate, TemplateError, rate_seconds
from wxtoken.refresh import Trigger
from wxtoken.refresh.events import parse_refresh_event

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ENV_JSON = TEMPLATE.parent / "events" / "env.json"


def local_template(**parameters: str) -> SamTemplate:
    return SamTemplate.load(
        TEMPLATE, parameter_overrides=parameters, physical_ids=LOCAL_PHYSICAL_IDS, stack_name=STACK_NAME
    )


def test_each_function_gets_the_globals_and_its_own_variables_resolved_locally():
    functions = local_template(WeChatApiBase="http://127.0.0.1:8081").functions()
    refresh, webhook = functions["RefreshTokenFunction"], functions["WebhookFunction"]

    for function in (refresh, webhook):
        assert function.environment["WECHAT_APPS_SECRET_ID"] == "wxtoken/apps"
        assert function.environment["WECHAT_API_BASE"] == "http://127.0.0.1:8081"
        assert function.environment["TOKEN_STORE"] == "ssm"
        assert function.code_uri.joinpath(function.handler.split(".")[0] + ".py").is_file()
        assert [layer.name for layer in function.layers] == ["wxtoken"]
    # the webhook asks the refresh function (by its name) and dedups in the stack's table
    assert webhook.environment["REFRESH_FUNCTION_NAME"] == refresh.function_name
    assert webhook.environment["DEDUP_TABLE"] == f"{STACK_NAME}-DedupTable"
    assert "REFRESH_FUNCTION_NAME" not in refresh.environment
    # the webhook reads its own secret (no AppSecret), which `make local` seeds
    assert webhook.environment["WECHAT_WEBHOOK_SECRET_ID"] == "wxtoken/webhook"
    assert "WECHAT_WEBHOOK_SECRET_ID" not in refresh.environment
    assert (refresh.timeout, webhook.timeout) == (60, 6)


def test_token_store_redis_points_both_functions_at_redis_and_drops_the_dedup_table():
    template = local_template(TokenStore="redis", RedisUrl="redis://127.0.0.1:6379/0")
    webhook = template.functions()["WebhookFunction"]

    assert webhook.environment["TOKEN_STORE"] == "redis"
    assert webhook.environment["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert webhook.environment["DEDUP_TABLE"] == ""
    assert [r.logical_id for r in template.resources_of_type("AWS::DynamoDB::Table")] == []


def test_a_parameter_value_the_template_does_not_allow_is_refused():
    with pytest.raises(TemplateError, match="TokenStore='memcached' is not one of ssm, redis, dynamodb"):
        local_template(TokenStore="memcached")


def test_schedules_fire_the_templates_input_with_the_scheduled_time_filled_in():
    refresh = local_template().functions()["RefreshTokenFunction"]
    schedules = {s.name: s for s in refresh.schedules}

    assert schedules["Schedule"].period_seconds == 100 * 60
    assert schedules["Guard"].period_seconds == 60
    fired = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    payload = schedules["Schedule"].payload(fired)
    assert payload == {"action": "scheduled", "scheduled_time": "2026-11-23T08:00:00Z"}
    request = parse_refresh_event(payload, clock=lambda: fired.timestamp() + 5)
    assert (request.trigger, request.requested_at) == (Trigger.SCHEDULED, fired.timestamp())
    assert schedules["Guard"].payload(fired) == {"action": "guard"}


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(115 minutes)", 6900),
        ("rate(2 hours)", 7200),
        ("cron(0 * * * ? *)", None),
    ],
)
def test_rate_expressions(expression, seconds):
    assert rate_seconds(expression) == seconds


def test_a_request_becomes_the_payload_v2_event_of_its_route():
    routes = {r.route_key: r for r in local_template().functions()["WebhookFunction"].routes}
    assert set(routes) == {
        "GET /wechat/{appid}",
        "POST /wechat/{appid}",
        "GET /token/{appid}",
        "POST /open/{component_appid}/events",
        "GET /open/{component_appid}/{authorizer_appid}",
        "POST /open/{component_appid}/{authorizer_appid}",
    }

    event = build_event(
        routes["POST /wechat/{appid}"],
        "POST",
        "/wechat/wx1111111111111111?signature=abc&timestamp=1&nonce=2",
        [("Content-Type", "text/xml"), ("X-Forwarded-For", "a"), ("x-forwarded-for", "b")],
        "<xml>你好</xml>".encode(),
    )
    assert event["routeKey"] == "POST /wechat/{appid}"
    assert event["pathParameters"] == {"appid": "wx1111111111111111"}
    assert event["queryStringParameters"] == {"signature": "abc", "timestamp": "1", "nonce": "2"}
    assert event["headers"]["x-forwarded-for"] == "a,b"
    assert (event["body"], event["isBase64Encoded"]) == ("<xml>你好</xml>", False)
    assert "authorizer" not in event["requestContext"]


@pytest.mark.parametrize(
    ("method", "path", "route_key", "parameters"),
    [
        ("POST", "/open/wx3333333333333333/events", "POST /open/{component_appid}/events", None),
        (
            "POST",
            "/open/wx3333333333333333/wx4444444444444444",
            "POST /open/{component_appid}/{authorizer_appid}",
            {"component_appid": "wx3333333333333333", "authorizer_appid": "wx4444444444444444"},
        ),
        ("GET", "/open/wx3333333333333333/events", "GET /open/{component_appid}/{authorizer_appid}", None),
    ],
    ids=["literal-wins", "two-parameters", "events-has-no-get"],
)
def test_the_most_specific_route_serves_an_open_platform_path(method, path, route_key, parameters):
    routes = local_template().functions()["WebhookFunction"].routes

    route = pick_route(routes, method, path)

    assert route is not None
    assert route.route_key == route_key
    if parameters is not None:
        assert build_event(route, method, path, [], b"")["pathParameters"] == parameters


def test_an_aws_iam_route_gets_the_local_iam_identity_and_binary_bodies_go_base64():
    routes = {r.route_key: r for r in local_template().functions()["WebhookFunction"].routes}

    event = build_event(
        routes["GET /token/{appid}"], "GET", "/token/wx1", [("content-type", "image/png")], b"\x89PNG"
    )
    assert event["requestContext"]["authorizer"]["iam"]["userArn"] == LOCAL_IAM_USER_ARN
    assert base64.b64decode(event["body"]) == b"\x89PNG"
    assert event["isBase64Encoded"] is True


def test_function_results_and_failures_become_api_gateway_answers():
    ok = Invocation("F", "r", True, {"statusCode": 201, "headers": {"X-A": "1"}, "body": "hi"}, 1.0)
    assert http_response(ok) == (201, [("X-A", "1")], b"hi")
    bare = Invocation("F", "r", True, {"a": 1}, 1.0)
    assert http_response(bare) == (200, [("Content-Type", "application/json")], b'{"a": 1}')
    crashed = Invocation("F", "r", False, {"errorType": "KeyError", "errorMessage": "x"}, 1.0)
    assert http_response(crashed)[0] == 500
    timed_out = Invocation("F", "r", False, {"errorType": "Sandbox.Timedout", "errorMessage": "x"}, 1.0)
    assert http_response(timed_out)[0] == 503


def test_env_vars_override_only_declared_variables_and_docker_host_means_this_machine():
    refresh = local_template().functions()["RefreshTokenFunction"]
    environment = lambda_environment(
        refresh, aws_endpoint="http://127.0.0.1:1", lambda_endpoint="http://127.0.0.1:2"
    )
    env_vars = json.loads((TEMPLATE.parent / "events" / "env.json").read_text())
    env_vars["RefreshTokenFunction"]["UNDECLARED"] = "x"
    del env_vars["RefreshTokenFunction"]["AWS_ENDPOINT_URL"]  # make local's own: see below

    notes = apply_env_vars(refresh, environment, env_vars)

    assert environment["WECHAT_API_BASE"] == "http://127.0.0.1:8081"
    assert environment["TOKEN_PARAMETER_PREFIX"] == "/wxtoken"  # where make local's functions read
    assert "UNDECLARED" not in environment
    assert any(note.startswith("UNDECLARED: the template declares no such variable") for note in notes)
    # the function never reaches a real AWS account
    assert environment["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert environment["AWS_ENDPOINT_URL_LAMBDA"] == "http://127.0.0.1:2"
    assert environment["AWS_CONFIG_FILE"] == environment["AWS_SHARED_CREDENTIALS_FILE"]


def test_function_logs_are_shown_compactly():
    line = json.dumps({"level": "INFO", "message": "refresh run finished", "service": "x", "refreshed": 1})
    assert render_log_line(line) == "INFO    refresh run finished  refreshed=1"
    metric = {
        "_aws": {
            "CloudWatchMetrics": [
                {"Dimensions": [["appid", "service"]], "Metrics": [{"Name": "T", "Unit": "Count"}]}
            ]
        },
        "appid": "wx1",
        "service": "x",
        "T": [1.0],
    }
    assert render_log_line(json.dumps(metric)) == "METRIC  T=1  (appid=wx1)"
    assert render_log_line("plain text") == "plain text"


def env_json() -> dict[str, dict[str, str]]:
    return dict(json.loads(ENV_JSON.read_text(encoding="utf-8")))


@pytest.mark.parametrize("function_id", ["RefreshTokenFunction", "WebhookFunction"])
def test_env_json_points_each_function_where_make_local_serves_by_default(function_id):
    # events/env.json is for sam in Docker: host.docker.internal is this machine.
    section = env_json()[function_id]

    assert section["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{DEFAULT_PORTS['aws']}"
    assert section["WECHAT_API_BASE"] == f"http://host.docker.internal:{DEFAULT_PORTS['wechat']}"
    # the secret make local seeds, under the name it gives the template's apps secret
    assert section["WECHAT_APPS_SECRET_ID"] == LOCAL_PHYSICAL_IDS["AppsSecret"]


@pytest.mark.parametrize("function_id", ["RefreshTokenFunction", "WebhookFunction"])
def test_sam_takes_each_function_to_the_local_aws_from_env_json_alone(function_id):
    function = local_template().functions()[function_id]

    environment, _ = sam_environment(function, env_json(), shell={})

    assert environment["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{DEFAULT_PORTS['aws']}"
    assert environment["AWS_SAM_LOCAL"] == "true"
    assert "AWS_ENDPOINT_URL_LAMBDA" not in environment  # make local's, not sam's


def test_sam_ignores_env_json_for_a_variable_the_template_does_not_declare():
    # Given the template as it was before it declared AWS_ENDPOINT_URL
    refresh = local_template().functions()["RefreshTokenFunction"]
    undeclared = {k: v for k, v in refresh.environment.items() if k != "AWS_ENDPOINT_URL"}
    before = dataclasses.replace(refresh, environment=undeclared)

    environment, notes = sam_environment(before, env_json(), shell={})

    # Then env.json cannot point it anywhere: the function would call AWS itself
    assert "AWS_ENDPOINT_URL" not in environment
    assert any(note.startswith("AWS_ENDPOINT_URL: the template declares no such") for note in notes)


def test_sam_takes_declared_variables_from_the_shell_and_env_vars_win_function_over_parameters():
    refresh = local_template().functions()["RefreshTokenFunction"]
    env_vars = {
        "Parameters": {"LOG_LEVEL": "WARNING", "GUARD_PERIOD_SECONDS": "120"},
        refresh.function_name: {"LOG_LEVEL": "ERROR"},  # sam matches the function name too
    }
    shell = {"GUARD_MARGIN_SECONDS": "100", "TOKEN_STORE": "redis", "NOT_DECLARED": "x"}

    environment, _ = sam_environment(refresh, env_vars, shell)

    assert environment["LOG_LEVEL"] == "ERROR"
    assert environment["GUARD_PERIOD_SECONDS"] == "120"
    assert environment["GUARD_MARGIN_SECONDS"] == "100"
    assert environment["TOKEN_STORE"] == "redis"
    assert "NOT_DECLARED" not in environment
    assert environment["AWS_ENDPOINT_URL"] == ""  # the template's default: AWS's own endpoints


def banner_of(environ: dict[str, str]) -> str:
    system = LocalSystem(LocalOptions.from_environ(environ), Console(io.StringIO()))
    system.redis_url = environ.get("REDIS_URL")
    return _banner(system, SimpleNamespace(routes=[], url="http://127.0.0.1:3100"))  # type: ignore[arg-type]


def test_the_banner_keeps_a_real_apps_token_and_aes_key_off_the_screen():
    real = {"WECHAT_APPID": "wx2222222222222222", "WECHAT_APPSECRET": "real-secret"}
    banner = banner_of(real | {"WECHAT_TOKEN": "realtoken", "WECHAT_ENCODING_AES_KEY": "A" * 43})

    assert "realtoken" not in banner
    assert "A" * 43 not in banner
    assert "real-secret" not in banner
    assert "the REAL WeChat API" in banner


def test_the_banner_reads_the_token_from_the_store_in_use():
    ssm = banner_of({})
    assert "ssm get-parameter --with-decryption --name /wxtoken/" in ssm
    assert "redis-cli" not in ssm

    redis = banner_of({"TOKEN_STORE": "redis", "REDIS_URL": "redis://:pw@127.0.0.1:6390/0"})
    assert (
        "redis-cli -u redis://:***@127.0.0.1:6390/0 get 'wxtoken:{wx1111111111111111}:access_token'" in redis
    )
    assert "ssm get-parameter" not in redis
