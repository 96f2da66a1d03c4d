"""What a deployer relies on in template.yaml: the handler exists, the schedules match the
settings, every variable reaches Settings, IAM stays scoped, and the printed commands work."""

from __future__ import annotations

import ast
import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from devtools.sam.local_system import LOCAL_PHYSICAL_IDS, STACK_NAME
from devtools.sam.template import NO_VALUE, CloudFormationLoader, SamTemplate
from wxtoken.config import Settings
from wxtoken.refresh import Trigger
from wxtoken.refresh.events import parse_refresh_event

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CONFIG_SOURCE = ROOT / "layers" / "wxtoken" / "wxtoken" / "config.py"
LOCAL_ENV = ROOT / "events" / "env.json"

# WeChat keeps the previous token valid for 5 minutes after a new one is minted.
WECHAT_OVERLAP_SECONDS = 300
WECHAT_TOKEN_SECONDS = 7200  # a classic access_token's expires_in
WXTOKEN_PREFIXES = ("WECHAT_", "TOKEN_", "REDIS_", "GUARD_", "REFRESH_")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506


@pytest.fixture(scope="module")
def refresh(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["RefreshTokenFunction"]["Properties"]


@pytest.fixture(scope="module")
def refresh_env(template: dict[str, Any], refresh: dict[str, Any]) -> dict[str, Any]:
    """The refresh function's variables: Globals, overridden by the function's own."""
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(refresh.get("Environment", {}).get("Variables", {}))
    return env


def rate_seconds(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
    assert match, f"not a rate() expression: {expression}"
    return int(match[1]) * (60 if match[2].startswith("minute") else 3600)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def statements(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every IAM statement of every role, with its !If unwrapped (NoValue branches skipped)."""
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if "Fn::If" in statement:
                    yield from (b for b in statement["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"})
                else:
                    yield statement


def output_command(template: dict[str, Any], name: str) -> str:
    value = template["Outputs"][name]["Value"]["Fn::Sub"]
    return value if isinstance(value, str) else value[0]


def test_refresh_handler_is_a_function_in_the_code_uri(refresh):
    module, function = refresh["Handler"].rsplit(".", 1)
    source = ROOT / refresh["CodeUri"] / f"{module.replace('.', '/')}.py"
    assert source.is_file(), f"{refresh['Handler']} names {source}, which does not exist"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    top_level = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert function in top_level


def test_refresh_schedule_fires_every_refresh_period(refresh, refresh_env):
    schedule = refresh["Events"]["Schedule"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == "rate(100 minutes)"
    period = rate_seconds(schedule["Properties"]["ScheduleExpression"])
    assert period == int(refresh_env["REFRESH_PERIOD_SECONDS"])


def test_the_scheduled_run_leaves_room_for_a_ten_minute_egress_outage(refresh):
    # The scheduled run finds the stored token with 7200 s minus the period left. An outage of
    # the egress (the NAT instance replaced) starting then must end while the token lives,
    # with a guard minute to spare: tests/integration/test_fault_matrix.py measures it.
    period = rate_seconds(refresh["Events"]["Schedule"]["Properties"]["ScheduleExpression"])
    assert WECHAT_TOKEN_SECONDS - period >= 10 * 60 + 60


def test_guard_schedule_fires_every_guard_period(refresh, refresh_env):
    guard = refresh["Events"]["Guard"]
    assert guard["Type"] == "ScheduleV2"
    assert rate_seconds(guard["Properties"]["ScheduleExpression"]) == int(refresh_env["GUARD_PERIOD_SECONDS"])


def test_guard_acts_only_after_the_scheduled_refresh_should_have_run(refresh_env):
    # The scheduled run leaves more than WECHAT_OVERLAP_SECONDS; a margin under that keeps the
    # guard out of the healthy path.
    assert int(refresh_env["GUARD_MARGIN_SECONDS"]) < WECHAT_OVERLAP_SECONDS


def test_template_timings_are_the_ones_settings_reads(refresh_env):
    literal = {name: value for name, value in refresh_env.items() if isinstance(value, str)}
    settings = Settings.from_env({**literal, "WECHAT_APPS_SECRET_ID": "wxtoken/apps"})
    assert settings.schedule_period_seconds == 100 * 60
    # and the default (a function deployed without the variable) is the template's schedule
    assert Settings.from_env({"WECHAT_APPS_SECRET_ID": "x"}).schedule_period_seconds == 100 * 60
    assert settings.guard_period_seconds == 60
    assert settings.guard_margin_seconds == int(refresh_env["GUARD_MARGIN_SECONDS"])


@pytest.mark.parametrize(("event", "trigger"), [("Schedule", Trigger.SCHEDULED), ("Guard", Trigger.GUARD)])
def test_schedule_input_is_a_payload_the_handler_accepts(refresh, event, trigger):
    raw = refresh["Events"][event]["Properties"]["Input"]
    # EventBridge Scheduler fills in its context attributes before invoking.
    raw = raw.replace("<aws.scheduler.scheduled-time>", "2026-11-23T08:00:00Z")
    assert parse_refresh_event(json.loads(raw)).trigger is trigger


@pytest.mark.parametrize("event", ["Schedule", "Guard"])
def test_schedules_give_up_before_the_next_run_and_keep_what_they_drop(refresh, event):
    properties = refresh["Events"][event]["Properties"]
    assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert properties["RetryPolicy"]["MaximumEventAgeInSeconds"] <= WECHAT_OVERLAP_SECONDS
    assert properties["DeadLetterConfig"]
    assert properties.get("OmitName") is True, "a fixed schedule name clashes between stacks"


def test_failed_refresh_runs_land_in_the_failure_queue(template, refresh):
    config = refresh["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["RefreshFailureQueue", "Arn"]
    }
    queue = template["Resources"]["RefreshFailureQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_every_wxtoken_variable_is_read_by_settings(refresh_env):
    source = CONFIG_SOURCE.read_text(encoding="utf-8")
    names = [name for name in refresh_env if name.startswith(WXTOKEN_PREFIXES)]
    assert "WECHAT_APPS_SECRET_ID" in names
    unread = [name for name in names if f'"{name}"' not in source]
    assert not unread, f"template sets variables Settings.from_env never reads: {unread}"


def test_local_env_file_only_sets_variables_the_template_declares(template, refresh_env):
    # sam local invoke --env-vars silently ignores variables the template does not declare.
    local = json.loads(LOCAL_ENV.read_text(encoding="utf-8"))
    undeclared = set(local["RefreshTokenFunction"]) - set(refresh_env)
    assert not undeclared
    webhook_vars = set(template["Resources"]["WebhookFunction"]["Properties"]["Environment"]["Variables"])
    assert not set(local["WebhookFunction"]) - (set(refresh_env) | webhook_vars)


def test_every_arn_names_the_partition(template):
    # Parameters are left out: their AllowedPatterns match ARNs of every partition.
    checked = {key: template[key] for key in ("Globals", "Resources", "Outputs", "Conditions")}
    hardcoded = [s for s in strings(checked) if re.search(r"arn:(?!\$\{AWS::Partition\}:)", s)]
    assert not hardcoded, f"use arn:${{AWS::Partition}}: (aws-cn, aws-us-gov): {hardcoded}"


def test_ssm_permissions_are_scoped_to_the_token_prefix(template):
    def action_list(statement: dict[str, Any]) -> list[str]:
        return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]

    ssm = [s for s in statements(template) if any(a.startswith("ssm:") for a in action_list(s))]
    actions = sorted(tuple(sorted(action_list(s))) for s in ssm)
    # the refresh function writes; the webhook only reads
    assert actions == [("ssm:DeleteParameter", "ssm:GetParameter", "ssm:PutParameter"), ("ssm:GetParameter",)]
    prefix_arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${TokenParameterPrefix}"
    assert all(s["Resource"] == {"Fn::Sub": f"{prefix_arn}/*"} for s in ssm)


def _handler_route_keys(source: Path) -> set[str]:
    """The string keys of app.py's ``_ROUTES`` mapping."""
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "_ROUTES":
            return {
                n.value
                for n in ast.walk(node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and " /" in n.value
            }
    raise AssertionError("no _ROUTES in the webhook's app.py")


def test_webhook_routes_match_the_handler_and_token_api_needs_iam(template):
    webhook = template["Resources"]["WebhookFunction"]["Properties"]
    module, function = webhook["Handler"].rsplit(".", 1)
    source = ROOT / webhook["CodeUri"] / f"{module}.py"
    assert function in {n.name for n in ast.parse(source.read_text()).body if isinstance(n, ast.FunctionDef)}
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"]): e["Properties"]
        for e in webhook["Events"].values()
    }
    assert set(routes) == {
        ("GET", "/wechat/{appid}"),
        ("POST", "/wechat/{appid}"),
        ("GET", "/token/{appid}"),
        ("POST", "/open/{component_appid}/events"),
        ("GET", "/open/{component_appid}/{authorizer_appid}"),
        ("POST", "/open/{component_appid}/{authorizer_appid}"),
    }
    # every route the template declares is one the handler dispatches (API Gateway's routeKey)
    assert {f"{method} {path}" for method, path in routes} == _handler_route_keys(source)
    assert routes[("GET", "/token/{appid}")]["Auth"]["Authorizer"] == "AWS_IAM"
    for signed_by_wechat in set(routes) - {("GET", "/token/{appid}")}:
        assert "Auth" not in routes[signed_by_wechat]  # WeChat signs, it cannot SigV4
    # WeChat waits 5 s; deployed, the function must answer (or be cut off) before that.
    assert webhook["Timeout"] == {"Ref": "WebhookTimeout"}
    assert template["Parameters"]["WebhookTimeout"]["Default"] <= 6
    assert float(webhook["Environment"]["Variables"]["WEBHOOK_HANDLER_TIMEOUT_SECONDS"]) < 5


def test_webhook_may_invoke_only_the_refresh_function_and_never_write_tokens(template):
    role = template["Resources"]["WebhookRole"]["Properties"]
    texts = json.dumps(role)
    assert "ssm:PutParameter" not in texts
    invoke = [
        s
        for s in statements({"Resources": {"WebhookRole": template["Resources"]["WebhookRole"]}})
        if "lambda:InvokeFunction" in strings(s["Action"])
    ]
    assert invoke
    assert invoke[0]["Resource"] == {"Fn::GetAtt": ["RefreshTokenFunction", "Arn"]}


def test_dedup_table_matches_powertools_idempotency_defaults(template):
    table = template["Resources"]["DedupTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


# Actions IAM cannot scope to a resource (the service authorizes them on "*" only), each
# with the one statement allowed to grant it.
RESOURCELESS_ACTIONS = {"ec2:DescribeNetworkInterfaces": "SeeWhetherTheInterfaceIsAttachedAlready"}


def test_no_statement_grants_every_resource(template):
    wildcards = [s for s in statements(template) if "*" in strings(s["Resource"])]
    # Only the read-only actions that have no resource-level permissions, one action each.
    assert all(
        s["Resource"] == "*" and RESOURCELESS_ACTIONS.get(s["Action"]) == s.get("Sid") for s in wildcards
    ), wildcards


@pytest.mark.parametrize(
    ("output", "payload"),
    [
        ("ForcedRefreshCommand", {"force": True}),
        ("ForcedRefreshOneAppCommand", {"force": True, "appid": "wx…"}),
    ],
)
def test_forced_refresh_commands_send_a_force_payload(template, output, payload):
    command = output_command(template, output)
    assert command.startswith("aws lambda invoke --function-name ${RefreshTokenFunction} ")
    assert "--cli-binary-format raw-in-base64-out" in command
    assert command.endswith(" /dev/stdout")
    match = re.search(r"--payload '([^']*)'", command)
    assert match, command
    assert json.loads(match[1]) == payload
    assert parse_refresh_event(payload).trigger is Trigger.FORCE
    if output == "ForcedRefreshCommand":
        assert '"force": true' in command


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_every_alarm_notifies_the_alarm_topic_both_ways(template):
    assert len(alarms(template)) == 14
    for name, alarm in alarms(template).items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert "First step:" in alarm["AlarmDescription"], name  # the runbook in one line


def test_the_alarm_email_is_subscribed_only_when_given(template):
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_token_expiry_alarms_fit_the_schedule(template, refresh_env):
    near, silent = alarms(template)["TokenNearExpiryAlarm"], alarms(template)["RefreshNotReportingAlarm"]
    # A healthy stack replaces tokens with WECHAT_OVERLAP_SECONDS left: alarming above that
    # would fire every cycle; at or under the guard margin it means the guard failed too.
    assert near["Threshold"] <= int(refresh_env["GUARD_MARGIN_SECONDS"]) < WECHAT_OVERLAP_SECONDS
    assert near["ComparisonOperator"] == "LessThanThreshold"
    # The guard reports every GUARD_PERIOD_SECONDS; ten minutes of silence is an outage.
    assert silent["MetricName"] == near["MetricName"] == "MinSecondsToExpiry"
    assert silent["TreatMissingData"] == "breaching"
    assert silent["Period"] * silent["EvaluationPeriods"] == 600
    assert silent["Period"] >= 10 * int(refresh_env["GUARD_PERIOD_SECONDS"])


def test_metrics_of_one_stack_are_read_only_by_its_own_alarms(template):
    for name, alarm in alarms(template).items():
        if alarm["Namespace"] == "WxToken":
            assert {"Name": "service", "Value": {"Ref": "AWS::StackName"}} in alarm["Dimensions"], name
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert 'service=\\"${AWS::StackName}\\"' in body


def test_tracing_is_opt_in(template):
    assert template["Parameters"]["EnableTracing"]["Default"] == "false"
    function = template["Globals"]["Function"]
    assert function["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert function["Environment"]["Variables"]["WXTOKEN_TRACING"] == {"Ref": "EnableTracing"}
    layer_requirements = (ROOT / "layers" / "wxtoken" / "requirements.txt").read_text()
    assert "aws-xray-sdk" not in layer_requirements  # it costs every cold start


def test_the_dashboard_url_is_an_output(template):
    url = json.dumps(template["Outputs"]["DashboardUrl"]["Value"])
    assert "#dashboards:name=${Dashboard}" in url
    assert "console.amazonaws.cn" in url  # AWS China has its own console


# --- the webhook's own secret: least privilege for the internet-facing function -------------

APPS_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxtoken-apps-AbCdEf"
HOOK_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxtoken-hook-AbCdEf"


def deployed(**parameters: str) -> SamTemplate:
    """The template as CloudFormation would resolve it for these parameters."""
    return SamTemplate.load(
        TEMPLATE, parameter_overrides=parameters, physical_ids=LOCAL_PHYSICAL_IDS, stack_name=STACK_NAME
    )


def secrets_readable_by(stack: SamTemplate, role: str) -> set[str]:
    roles = {r.logical_id: r.properties for r in stack.resources_of_type("AWS::IAM::Role")}
    readable: set[str] = set()
    for policy in roles[role]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "secretsmanager:GetSecretValue" in strings(statement["Action"]):
                readable.update(strings(statement["Resource"]))
    return readable


def test_when_the_stack_creates_both_secrets_the_webhook_can_read_only_its_own():
    stack = deployed()
    created = {r.logical_id: r.physical_id for r in stack.resources_of_type("AWS::SecretsManager::Secret")}
    apps, hook = created["AppsSecret"], created["WebhookSecret"]

    assert secrets_readable_by(stack, "WebhookRole") == {hook}
    assert apps in secrets_readable_by(stack, "RefreshTokenRole")
    assert hook not in secrets_readable_by(stack, "RefreshTokenRole")
    webhook = stack.functions()["WebhookFunction"].environment
    assert webhook["WECHAT_WEBHOOK_SECRET_ID"] == hook
    assert Settings.from_env(webhook).webhook_secret_id == hook


@pytest.mark.parametrize(
    ("parameters", "readable", "variable"),
    [
        # a user's own apps secret and no webhook secret: as before the split
        ({"AppsSecretArn": APPS_ARN}, {APPS_ARN}, ""),
        ({"AppsSecretArn": APPS_ARN, "WebhookSecretArn": HOOK_ARN}, {HOOK_ARN}, HOOK_ARN),
        ({"WebhookSecretArn": HOOK_ARN}, {HOOK_ARN}, HOOK_ARN),
    ],
    ids=["own-apps-secret-only", "both-own", "own-webhook-secret-only"],
)
def test_the_webhook_reads_the_secret_the_parameters_give_it(parameters, readable, variable):
    stack = deployed(**parameters)
    assert secrets_readable_by(stack, "WebhookRole") == readable
    assert stack.functions()["WebhookFunction"].environment["WECHAT_WEBHOOK_SECRET_ID"] == variable
    created = [r.logical_id for r in stack.resources_of_type("AWS::SecretsManager::Secret")]
    assert "WebhookSecret" not in created


def test_the_webhook_secret_command_is_an_output_whenever_the_webhook_has_one(template):
    command = template["Outputs"]["PutWebhookSecretCommand"]
    assert command["Condition"] == "SplitWebhookSecret"
    assert output_command(template, "PutWebhookSecretCommand").startswith(
        "aws secretsmanager put-secret-value --region ${AWS::Region} --secret-id ${SecretArn} "
    )
    assert template["Outputs"]["WebhookSecretArn"]["Condition"] == "SplitWebhookSecret"


# --- parameters that may carry credentials ----------------------------------------------------


@pytest.mark.parametrize("name", ["RedisUrl", "HttpsProxy"])
def test_parameters_that_may_carry_credentials_are_not_echoed(template, name):
    assert template["Parameters"][name]["NoEcho"] is True
    # NoEcho hides a value from describe-stacks, but not from an output that repeats it.
    assert {"Ref": name} not in list(_nodes(template["Outputs"]))


def test_the_redis_url_parameter_steers_the_password_to_the_auth_secret(template):
    description = " ".join(template["Parameters"]["RedisUrl"]["Description"].split())
    assert "RedisAuthSecretArn" in description
    assert "without a password" in description


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _nodes(child)


# --- the HTTP API's access log: who fetched which app's token, never a secret -----------------


def access_log(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["WebhookApi"]["Properties"]["AccessLogSettings"]


def test_the_access_log_names_the_caller_route_and_outcome_of_every_request(template):
    # Valid JSON once API Gateway fills in the variables (messageString comes quoted).
    fields = json.loads(re.sub(r'"?\$context\.[A-Za-z.]+"?', '"x"', access_log(template)["Format"]))
    variables = set(re.findall(r"\$context\.([A-Za-z.]+)", access_log(template)["Format"]))
    assert {"requestId", "ip", "userArn", "routeKey", "path", "status", "integrationLatency"} <= set(fields)
    assert {
        "requestId",
        "identity.sourceIp",
        "identity.caller",
        "identity.userArn",
        "routeKey",
        "path",
        "status",
        "responseLength",
        "integrationLatency",
    } <= variables


def test_the_access_log_never_records_the_query_string_or_a_body(template):
    # WeChat's signature, nonce and echostr ride in the query string; tokens in /token bodies.
    format_ = access_log(template)["Format"]
    # only $context variables: no mapping-template input ($input), no request parameters
    assert set(re.findall(r"\$([A-Za-z]+)", format_)) == {"context"}
    for variable in re.findall(r"\$context\.([A-Za-z.]+)", format_):
        lowered = variable.lower()
        assert not any(word in lowered for word in ("querystring", "body", "header", "authorizer")), variable


def test_the_access_log_group_keeps_logs_as_long_as_the_functions_do(template):
    assert access_log(template)["DestinationArn"] == {"Fn::GetAtt": ["WebhookAccessLogGroup", "Arn"]}
    group = template["Resources"]["WebhookAccessLogGroup"]["Properties"]
    functions_log = template["Resources"]["WebhookLogGroup"]["Properties"]
    assert group["RetentionInDays"] == functions_log["RetentionInDays"]


# --- the webhook's concurrency cap --------------------------------------------------------------


def test_the_webhook_is_capped_so_a_flood_leaves_concurrency_for_the_refresh_function(template):
    parameter = template["Parameters"]["WebhookReservedConcurrency"]
    # AWS keeps 100 of an account's concurrency unreserved; the default quota is 1000.
    assert 0 < parameter["Default"] <= 1000 - 100
    assert parameter["MinValue"] == 0  # 0 = no cap, for accounts with a small quota
    webhook = template["Resources"]["WebhookFunction"]["Properties"]
    assert webhook["ReservedConcurrentExecutions"] == {
        "Fn::If": ["CapWebhookConcurrency", {"Ref": "WebhookReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"]["CapWebhookConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookReservedConcurrency"}, "0"]}]
    }


@pytest.mark.parametrize(("value", "reserved"), [("50", 50), ("0", None)])
def test_the_webhook_cap_resolves_to_the_parameter_or_to_none(value, reserved):
    stack = deployed(WebhookReservedConcurrency=value)
    raw = stack.document["Resources"]["WebhookFunction"]["Properties"]["ReservedConcurrentExecutions"]
    resolved = stack.resolve(raw)
    assert (None if resolved is NO_VALUE else int(resolved)) == reserved


def test_the_functions_use_aws_endpoints_unless_aws_endpoint_url_is_set(template, monkeypatch):
    # Declared (empty) so that sam local's --env-vars may set it; empty must mean unset.
    assert template["Globals"]["Function"]["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == ""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)  # no endpoint_url from a profile
    client = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).client("ssm")

    assert client.meta.endpoint_url == "https://ssm.us-east-1.amazonaws.com"


def test_the_webhook_timeout_is_six_seconds_unless_a_local_run_overrides_it():
    # sam local under emulated arm64 cold-starts in 20-30 s: --parameter-overrides WebhookTimeout=30
    assert deployed().functions()["WebhookFunction"].timeout == 6
    assert deployed(WebhookTimeout="30").functions()["WebhookFunction"].timeout == 30


# --- egress: what each EgressMode creates (docs/egress.md) ------------------------------------

STACK_VPC = {
    "Vpc",
    "InternetGateway",
    "InternetGatewayAttachment",
    "PublicSubnet",
    "PrivateSubnetA",
    "PrivateSubnetB",
    "PublicRouteTable",
    "PublicDefaultRoute",
    "PublicSubnetRouteTableAssociation",
    "PrivateRouteTable",
    "PrivateDefaultRoute",
    "PrivateSubnetARouteTableAssociation",
    "PrivateSubnetBRouteTableAssociation",
    "FunctionSecurityGroup",
}
NAT_INSTANCE = {
    "NatInstanceSecurityGroup",
    "NatInstanceInterface",
    "NatInstanceEip",
    "NatInstanceEipAssociation",
    "NatInstanceLaunchTemplate",
    "NatInstanceGroup",
    "NatInstanceAttachRule",
    "NatInstanceAttachPermission",
    "NatInstanceAttachFunction",
    "NatInstanceAttachLogGroup",
    "NatInstanceAttachRole",
    "NatInstanceUnhealthyAlarm",
}
NAT_GATEWAY = {"NatEip", "NatGateway"}
STACK_SUBNETS = [f"{STACK_NAME}-PrivateSubnetA", f"{STACK_NAME}-PrivateSubnetB"]
OWN_VPC = {"SubnetIds": "subnet-0a,subnet-0b", "SecurityGroupIds": "sg-0a"}


def network_resources(stack: SamTemplate) -> set[str]:
    """The resources of the stack's network and its NAT that these parameters create."""
    return {
        logical_id
        for logical_id, resource in stack.document["Resources"].items()
        if stack.resource_exists(logical_id)
        and (
            resource["Type"].startswith(("AWS::EC2::", "AWS::AutoScaling::")) or logical_id.startswith("Nat")
        )
    }


def properties(stack: SamTemplate, logical_id: str) -> dict[str, Any]:
    return stack.resolve(stack.document["Resources"][logical_id]["Properties"], logical_id)


def egress_ip(stack: SamTemplate) -> Any:
    output = stack.document["Outputs"]["EgressIp"]
    return stack.resolve(output["Value"]) if stack.condition(output["Condition"]) else None


@pytest.mark.parametrize(
    ("parameters", "network", "egress"),
    [
        ({}, STACK_VPC | NAT_INSTANCE, "NatInstanceEip"),  # the default
        ({"EgressMode": "nat-instance"}, STACK_VPC | NAT_INSTANCE, "NatInstanceEip"),
        ({"EgressMode": "create-nat"}, STACK_VPC | NAT_GATEWAY, "NatEip"),
        ({"EgressMode": "vpc", **OWN_VPC}, set(), None),
        ({"EgressMode": "lambda-default"}, set(), None),
    ],
    ids=["default", "nat-instance", "create-nat", "vpc", "lambda-default"],
)
def test_each_egress_mode_creates_its_own_network_and_outputs_its_address(parameters, network, egress):
    stack = deployed(**parameters)

    assert network_resources(stack) == network
    assert egress_ip(stack) == (stack.physical_id(egress) if egress else None)
    types = {stack.document["Resources"][r]["Type"] for r in network}
    assert ("AWS::EC2::NatGateway" in types) == (parameters.get("EgressMode") == "create-nat")
    assert ("AWS::AutoScaling::AutoScalingGroup" in types) == (
        parameters.get("EgressMode", "nat-instance") == "nat-instance"
    )


@pytest.mark.parametrize(
    ("parameters", "subnets"),
    [
        ({"EgressMode": "nat-instance"}, STACK_SUBNETS),
        ({"EgressMode": "create-nat"}, STACK_SUBNETS),
        ({"EgressMode": "vpc", **OWN_VPC}, ["subnet-0a", "subnet-0b"]),
        ({"EgressMode": "lambda-default"}, None),
    ],
    ids=["nat-instance", "create-nat", "vpc", "lambda-default"],
)
def test_the_functions_run_in_the_private_subnets_of_every_mode_with_a_vpc(parameters, subnets):
    stack = deployed(**parameters)
    vpc_config = stack.resolve(stack.document["Globals"]["Function"]["VpcConfig"])
    assert (None if vpc_config is NO_VALUE else vpc_config["SubnetIds"]) == subnets


@pytest.mark.parametrize(
    ("mode", "target", "other"),
    [
        ("nat-instance", ("NetworkInterfaceId", "NatInstanceInterface"), "NatGatewayId"),
        ("create-nat", ("NatGatewayId", "NatGateway"), "NetworkInterfaceId"),
    ],
)
def test_the_private_default_route_goes_to_the_nat_of_the_mode(mode, target, other):
    stack = deployed(EgressMode=mode)
    route = properties(stack, "PrivateDefaultRoute")
    assert route["DestinationCidrBlock"] == "0.0.0.0/0"
    assert route[target[0]] == stack.physical_id(target[1])
    assert other not in route


def test_the_nat_instance_is_one_replaceable_instance_behind_a_static_interface_with_the_eip():
    stack = deployed(EgressMode="nat-instance")
    group = properties(stack, "NatInstanceGroup")
    interface = properties(stack, "NatInstanceInterface")
    association = properties(stack, "NatInstanceEipAssociation")

    # an Auto Scaling group of exactly one, replaced on a failed EC2 status check
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == ("1", "1", "1")
    assert group["HealthCheckType"] == "EC2"
    # in the interface's subnet: an instance can only attach an interface of its own AZ
    assert group["VPCZoneIdentifier"] == [interface["SubnetId"]] == [stack.physical_id("PublicSubnet")]
    # the Elastic IP sits on the static interface, which forwards others' packets
    assert interface["SourceDestCheck"] is False
    assert association["NetworkInterfaceId"] == stack.physical_id("NatInstanceInterface")
    assert association["AllocationId"] == "local-NatInstanceEip-AllocationId"
    # the group's free metric that NatInstanceUnhealthyAlarm reads
    assert group["MetricsCollection"] == [{"Granularity": "1Minute", "Metrics": ["GroupInServiceInstances"]}]
    alarm = properties(stack, "NatInstanceUnhealthyAlarm")
    assert alarm["MetricName"] == "GroupInServiceInstances"
    assert alarm["Dimensions"] == [
        {"Name": "AutoScalingGroupName", "Value": stack.physical_id("NatInstanceGroup")}
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == (
        "LessThanThreshold",
        1,
        "breaching",
    )


def test_the_nat_instance_has_no_ssh_imdsv2_only_and_the_latest_al2023_for_arm64(template):
    stack = deployed(EgressMode="nat-instance")
    data = properties(stack, "NatInstanceLaunchTemplate")["LaunchTemplateData"]

    assert "KeyName" not in data
    assert data["MetadataOptions"] == {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
    }
    assert data["InstanceType"] == "t4g.nano"
    assert data["ImageId"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    assert (
        template["Parameters"]["NatInstanceImageId"]["Type"]
        == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    )
    assert [i["Groups"] for i in data["NetworkInterfaces"]] == [
        [stack.physical_id("NatInstanceSecurityGroup")]
    ]

    group = properties(stack, "NatInstanceSecurityGroup")
    function_group = stack.physical_id("FunctionSecurityGroup")
    # only the functions may send through it, only HTTPS; nothing from the internet, no port 22
    assert group["SecurityGroupIngress"] == [
        {
            "Description": group["SecurityGroupIngress"][0]["Description"],
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "SourceSecurityGroupId": function_group,
        }
    ]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in group["SecurityGroupEgress"]] == [
        ("tcp", 443, 443)
    ]

    script = base64.b64decode(data["UserData"]).decode()
    interface = properties(stack, "NatInstanceInterface")
    assert f"ENI_ID={stack.physical_id('NatInstanceInterface')}" in script
    assert "ENI_IP=local-NatInstanceInterface-PrimaryPrivateIpAddress" in script
    assert "net.ipv4.ip_forward=1" in script
    assert 'oifname "$dev" ip saddr $VPC_CIDR ip daddr != $VPC_CIDR masquerade' in script
    # it calls no AWS API: the attach function attaches the interface it waits for
    assert "aws " not in script
    assert "169.254.169.254" not in script
    assert interface["SubnetId"] == stack.physical_id("PublicSubnet")


def test_the_nat_instance_has_no_public_address_and_no_role():
    # Given the default egress: its one public IPv4 address is the Elastic IP
    stack = deployed(EgressMode="nat-instance")
    data = properties(stack, "NatInstanceLaunchTemplate")["LaunchTemplateData"]

    assert [i["AssociatePublicIpAddress"] for i in data["NetworkInterfaces"]] == [False]
    assert "IamInstanceProfile" not in data
    types = {stack.document["Resources"][r]["Type"] for r in network_resources(stack)}
    assert "AWS::IAM::InstanceProfile" not in types
    assert "AWS::EC2::EIP" in types


def test_a_launching_nat_instance_waits_for_the_attach_function_or_is_abandoned():
    stack = deployed(EgressMode="nat-instance")
    group = properties(stack, "NatInstanceGroup")
    rule = properties(stack, "NatInstanceAttachRule")
    permission = properties(stack, "NatInstanceAttachPermission")
    function = properties(stack, "NatInstanceAttachFunction")

    # the hook is the group's own, so it holds the very first instance too
    (hook,) = group["LifecycleHookSpecificationList"]
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hook["DefaultResult"] == "ABANDON"
    # the function gives up (and abandons) before the hook would
    assert function["Timeout"] < hook["HeartbeatTimeout"] <= 7200
    # the rule matches this group's hook and invokes the function, which EventBridge may call
    assert rule["EventPattern"] == {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance-launch Lifecycle Action"],
        "detail": {
            "AutoScalingGroupName": [group["AutoScalingGroupName"]],
            "LifecycleHookName": [hook["LifecycleHookName"]],
        },
    }
    assert [t["Arn"] for t in rule["Targets"]] == [_arn(stack, "NatInstanceAttachFunction")]
    assert (permission["Principal"], permission["FunctionName"], permission["SourceArn"]) == (
        "events.amazonaws.com",
        stack.physical_id("NatInstanceAttachFunction"),
        _arn(stack, "NatInstanceAttachRule"),
    )
    # rule and function exist before the group launches its first instance
    depends_on = stack.document["Resources"]["NatInstanceGroup"]["DependsOn"]
    assert {"NatInstanceAttachRule", "NatInstanceAttachPermission"} <= set(depends_on)
    # outside the VPC (it reaches the EC2 API without the NAT it sets up), its own log group
    assert "VpcConfig" not in function
    assert "Layers" not in function
    assert function["Environment"]["Variables"] == {"INTERFACE_ID": stack.physical_id("NatInstanceInterface")}
    assert (function["Runtime"], function["Architectures"]) == ("python3.13", ["arm64"])
    log_group = properties(stack, "NatInstanceAttachLogGroup")
    assert log_group["LogGroupName"] == f"/aws/lambda/{function['FunctionName']}"
    assert log_group["RetentionInDays"] == 14


def _arn(stack: SamTemplate, logical_id: str) -> str:
    return stack.resolve({"Fn::GetAtt": [logical_id, "Arn"]})


def test_the_attach_function_may_only_attach_the_static_interface_and_let_the_instance_go_on():
    stack = deployed(EgressMode="nat-instance")
    role = properties(stack, "NatInstanceAttachRole")
    grants = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]

    assert "ManagedPolicyArns" not in role
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    assert {s["Effect"] for s in grants} == {"Allow"}
    interface_arn = (
        f"arn:aws:ec2:us-east-1:123456789012:network-interface/{stack.physical_id('NatInstanceInterface')}"
    )
    group_name = properties(stack, "NatInstanceGroup")["AutoScalingGroupName"]
    assert group_name == f"{STACK_NAME}-nat"
    assert [(s["Action"], s["Resource"], s.get("Condition")) for s in grants] == [
        ("ec2:AttachNetworkInterface", interface_arn, None),
        (
            "ec2:AttachNetworkInterface",
            "arn:aws:ec2:us-east-1:123456789012:instance/*",
            {"StringEquals": {"aws:ResourceTag/wxtoken:nat-instance": STACK_NAME}},
        ),
        ("ec2:DescribeNetworkInterfaces", "*", None),  # EC2 has no resource-level permissions for it
        (
            "autoscaling:CompleteLifecycleAction",
            f"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/{group_name}",
            None,
        ),
        (
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            _arn(stack, "NatInstanceAttachLogGroup"),
            None,
        ),
    ]
    # ...and the launch template puts that tag on the group's instances
    data = properties(stack, "NatInstanceLaunchTemplate")["LaunchTemplateData"]
    instance_tags = next(t["Tags"] for t in data["TagSpecifications"] if t["ResourceType"] == "instance")
    assert {"Key": "wxtoken:nat-instance", "Value": STACK_NAME} in instance_tags


class _Stub:
    """boto3's ec2 and autoscaling clients as the attach function calls them."""

    def __init__(self, attach_failures: int, holder: str = "i-0old") -> None:
        self.attach_failures = attach_failures
        self.holder = holder  # the instance the interface is attached to while attaches fail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def describe_network_interfaces(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("describe", kwargs))
        return {"NetworkInterfaces": [{"Attachment": {"InstanceId": self.holder}}]}

    def attach_network_interface(self, **kwargs: Any) -> None:
        from botocore.exceptions import ClientError

        self.calls.append(("attach", kwargs))
        if sum(name == "attach" for name, _ in self.calls) <= self.attach_failures:
            raise ClientError({"Error": {"Code": "InvalidNetworkInterface.InUse"}}, "AttachNetworkInterface")

    def complete_lifecycle_action(self, **kwargs: Any) -> None:
        self.calls.append(("complete", kwargs))


class _Context:
    def __init__(self, remaining_ms: list[int]) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms.pop(0)


LIFECYCLE_EVENT = {
    "source": "aws.autoscaling",
    "detail-type": "EC2 Instance-launch Lifecycle Action",
    "detail": {
        "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
        "AutoScalingGroupName": f"{STACK_NAME}-nat",
        "LifecycleHookName": "attach-static-interface",
        "EC2InstanceId": "i-1234567890abcdef0",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
    },
}


@pytest.mark.parametrize(
    ("attach_failures", "remaining_ms", "attempts", "result"),
    [
        (0, [], 1, "CONTINUE"),
        (2, [200_000, 190_000], 3, "CONTINUE"),  # the old instance let go of the interface
        (9, [200_000, 100_000, 29_000], 3, "ABANDON"),  # out of time: the group launches another
    ],
    ids=["attached", "attached-after-retries", "abandoned"],
)
def test_the_attach_function_completes_the_lifecycle_action_after_its_attach(
    template, monkeypatch, attach_failures, remaining_ms, attempts, result
):
    # Given the inline code, with both clients stubbed and no sleeping
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("INTERFACE_ID", "eni-0static")
    code = template["Resources"]["NatInstanceAttachFunction"]["Properties"]["Code"]["ZipFile"]
    module: dict[str, Any] = {"__name__": "index"}
    exec(compile(code, "index.py", "exec"), module)  # noqa: S102
    stub = _Stub(attach_failures)
    module.update(ec2=stub, autoscaling=stub)
    monkeypatch.setattr(module["time"], "sleep", lambda _: None)

    # When a launching instance's lifecycle event arrives
    module["handler"](LIFECYCLE_EVENT, _Context(remaining_ms))

    # Then the interface is attached as its second device, and the action completed once
    attach = {"NetworkInterfaceId": "eni-0static", "InstanceId": "i-1234567890abcdef0", "DeviceIndex": 1}
    detail = LIFECYCLE_EVENT["detail"]
    describe = ("describe", {"NetworkInterfaceIds": ["eni-0static"]})
    tries = [("attach", attach), describe] * (attempts - 1) + [("attach", attach)]
    if result == "ABANDON":
        tries.append(describe)  # the last attach failed too
    completion = {
        "AutoScalingGroupName": detail["AutoScalingGroupName"],
        "LifecycleHookName": detail["LifecycleHookName"],
        "LifecycleActionToken": detail["LifecycleActionToken"],
        "LifecycleActionResult": result,
    }
    assert stub.calls == [*tries, ("complete", completion)]


def test_every_dashboard_widget_names_each_series_once(template):
    """CloudWatch refuses a dashboard whose widget gives two series the same id (PutDashboard:
    a metric id must be unique in its widget)."""
    import json
    import re

    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))
    for widget in dashboard["widgets"]:
        ids = [
            option["id"]
            for entry in widget["properties"].get("metrics", [])
            for option in entry
            if isinstance(option, dict) and "id" in option
        ]
        assert len(ids) == len(set(ids)), (widget["properties"].get("title"), ids)


def test_a_retried_launch_event_finds_the_interface_attached_and_goes_on(template, monkeypatch):
    """Lambda retries an async invoke that failed after its attach (say, at the completion):
    the attach fails then with the interface in use, by this very instance: CONTINUE."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("INTERFACE_ID", "eni-0static")
    code = template["Resources"]["NatInstanceAttachFunction"]["Properties"]["Code"]["ZipFile"]
    module: dict[str, Any] = {"__name__": "index"}
    exec(compile(code, "index.py", "exec"), module)  # noqa: S102
    stub = _Stub(attach_failures=9, holder=LIFECYCLE_EVENT["detail"]["EC2InstanceId"])
    module.update(ec2=stub, autoscaling=stub)
    monkeypatch.setattr(module["time"], "sleep", lambda _: None)

    module["handler"](LIFECYCLE_EVENT, _Context([200_000]))

    assert [name for name, _ in stub.calls] == ["attach", "describe", "complete"]
    assert stub.calls[-1][1]["LifecycleActionResult"] == "CONTINUE"


# --- the DynamoDB store (TokenStore=dynamodb) ---------------------------------------------------

KMS_ARN = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-4000-8000-000000000000"


def role_statements(stack: SamTemplate, role: str) -> list[dict[str, Any]]:
    roles = {r.logical_id: r.properties for r in stack.resources_of_type("AWS::IAM::Role")}
    return [s for policy in roles[role]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def table_statements(stack: SamTemplate, role: str, table_arn: str) -> list[dict[str, Any]]:
    return [s for s in role_statements(stack, role) if table_arn in strings(s["Resource"])]


def test_the_token_table_is_what_the_dynamodb_store_expects(template):
    from wxtoken.store import dynamodb_store

    table = template["Resources"]["TokenTable"]
    assert table["Condition"] == "UseDynamoDb"
    # it will hold authorizer refresh tokens (issue 13): never lost with the stack
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [{"AttributeName": dynamodb_store.KEY, "KeyType": "HASH"}]
    assert {d["AttributeName"]: d["AttributeType"] for d in properties["AttributeDefinitions"]} == {
        dynamodb_store.KEY: "S",
        dynamodb_store.QUEUE: "S",
        dynamodb_store.DUE_AT: "N",
    }
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": dynamodb_store.TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEType"] == "KMS"


def test_the_open_platform_queues_are_a_sparse_keys_only_index_on_queue_and_due_at(template):
    from wxtoken.store import dynamodb_store

    (index,) = template["Resources"]["TokenTable"]["Properties"]["GlobalSecondaryIndexes"]

    assert index["IndexName"] == dynamodb_store.QUEUE_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": dynamodb_store.QUEUE, "KeyType": "HASH"},
        {"AttributeName": dynamodb_store.DUE_AT, "KeyType": "RANGE"},
    ]
    # keys only: no record's value (a refresh token) is copied into the index
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # on-demand: an index of a PAY_PER_REQUEST table takes no provisioned throughput
    assert "ProvisionedThroughput" not in index


def test_the_tests_create_the_token_table_exactly_as_the_template_does(template):
    from tests.fixtures.aws import TOKEN_TABLE_SCHEMA

    properties = template["Resources"]["TokenTable"]["Properties"]

    assert {key: properties[key] for key in TOKEN_TABLE_SCHEMA} == TOKEN_TABLE_SCHEMA


def test_make_local_creates_the_token_table_with_its_index():
    from devtools.sam.local_system import create_table_params
    from tests.fixtures.aws import TOKEN_TABLE_SCHEMA

    (table,) = deployed(TokenStore="dynamodb").resources_of_type("AWS::DynamoDB::Table")
    params = create_table_params(table.physical_id, table.properties)

    assert {key: params[key] for key in TOKEN_TABLE_SCHEMA} == TOKEN_TABLE_SCHEMA
    assert params["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.parametrize(
    ("store", "tables"),
    [("ssm", {"DedupTable"}), ("dynamodb", {"TokenTable"}), ("redis", set())],
)
def test_each_store_gets_only_its_own_table(store, tables):
    parameters = {"TokenStore": store}
    if store == "redis":
        parameters["RedisUrl"] = "rediss://cache.example.com:6379"
    stack = deployed(**parameters)

    assert {r.logical_id for r in stack.resources_of_type("AWS::DynamoDB::Table")} == tables
    for name, function in stack.functions().items():
        settings = Settings.from_env(function.environment)
        assert settings.token_store == store, name
        assert bool(settings.token_table) == (store == "dynamodb"), name


def test_on_dynamodb_the_refresh_function_may_only_get_put_and_delete_items_of_its_table():
    stack = deployed(TokenStore="dynamodb")
    arn = _arn(stack, "TokenTable")

    (statement,) = table_statements(stack, "RefreshTokenRole", arn)
    assert sorted(statement["Action"]) == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"]
    assert "Condition" not in statement


def test_on_dynamodb_the_refresh_function_may_query_only_the_queue_index():
    from wxtoken.store.dynamodb_store import QUEUE_INDEX

    stack = deployed(TokenStore="dynamodb")
    arn = _arn(stack, "TokenTable")

    queries = [
        s for s in role_statements(stack, "RefreshTokenRole") if "dynamodb:Query" in strings(s["Action"])
    ]
    (query,) = queries
    assert query["Effect"] == "Allow"
    assert query["Action"] == "dynamodb:Query"
    assert query["Resource"] == f"{arn}/index/{QUEUE_INDEX}"


def test_on_dynamodb_the_webhook_reads_tokens_and_writes_only_its_dedup_items_and_open_platform_pushes():
    from wxtoken.store.base import RecordName
    from wxtoken.store.dynamodb_store import DEDUP_KEY_PREFIX

    stack = deployed(TokenStore="dynamodb")
    arn = _arn(stack, "TokenTable")

    granted = [s for s in table_statements(stack, "WebhookRole", arn) if s["Effect"] == "Allow"]
    reads = [s for s in granted if "Condition" not in s]
    writes = {s["Sid"]: s for s in granted if "Condition" in s}
    assert [s["Action"] for s in reads] == ["dynamodb:GetItem"]
    assert set(writes) == {"DedupWeChatRetriesInTokenTable", "StoreOpenPlatformPushes"}
    for write in writes.values():
        assert "dynamodb:GetItem" not in strings(write["Action"])
    # powertools keys each dedup item "<key_prefix>#<hash>" (wxtoken.webhook.dedup)
    assert writes["DedupWeChatRetriesInTokenTable"]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{DEDUP_KEY_PREFIX}#*"]}
    }
    # WeChat's pushes to the 授权事件接收URL: one conditional PutItem each, and nothing else
    pushes = writes["StoreOpenPlatformPushes"]
    assert pushes["Action"] == "dynamodb:PutItem"
    assert pushes["Condition"] == {
        "ForAllValues:StringLike": {
            "dynamodb:LeadingKeys": [
                f"*/{RecordName.COMPONENT_VERIFY_TICKET}",
                f"*/{RecordName.AUTHORIZATION_EVENT}",
            ]
        }
    }


def test_on_dynamodb_the_webhook_may_never_touch_a_refresh_token():
    from wxtoken.store.base import RecordName

    stack = deployed(TokenStore="dynamodb")
    arn = _arn(stack, "TokenTable")

    denied = [s for s in table_statements(stack, "WebhookRole", arn) if s["Effect"] == "Deny"]
    (deny,) = denied
    # every item call (GetItem, PutItem, ...) names its key; ForAnyValue denies the request if
    # any key it names is a refresh token, whatever another statement allows
    assert deny["Action"] == "dynamodb:*"
    assert deny["Condition"] == {
        "ForAnyValue:StringLike": {"dynamodb:LeadingKeys": [f"*/{RecordName.AUTHORIZER_REFRESH_TOKEN}"]}
    }
    # and no keyless call (Scan, Query, PartiQL), which the condition cannot see, is granted
    granted = [
        a
        for s in role_statements(stack, "WebhookRole")
        if s["Effect"] == "Allow"
        for a in strings(s["Action"])
    ]
    assert not [
        a
        for a in granted
        if a.startswith("dynamodb:")
        and a not in {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    ]


@pytest.mark.parametrize("key", ["", KMS_ARN], ids=["aws-managed", "customer-managed"])
def test_the_token_table_is_encrypted_with_the_given_key_and_both_roles_may_use_only_it(key):
    stack = deployed(TokenStore="dynamodb", KmsKeyArn=key)
    (table,) = stack.resources_of_type("AWS::DynamoDB::Table")
    sse = table.properties["SSESpecification"]

    assert (sse["SSEEnabled"], sse["SSEType"]) == (True, "KMS")
    assert sse.get("KMSMasterKeyId", "") == key
    for role in ("RefreshTokenRole", "WebhookRole"):
        kms = [
            s for s in role_statements(stack, role) if any(a.startswith("kms:") for a in strings(s["Action"]))
        ]
        if not key:
            assert kms == [], role
            continue
        (statement,) = kms
        assert statement["Resource"] == KMS_ARN
        assert statement["Condition"]["StringEquals"]["kms:ViaService"].startswith("dynamodb.")


def test_open_platform_alarms_and_dashboard_exist_only_with_a_platform(template):
    platform = {
        "ComponentTicketAgeAlarm",
        "AuthorizerRefreshFailingAlarm",
        "AuthorizerRefreshTokenLostAlarm",
        "AuthorizerNearExpiryAlarm",
        "PlatformDashboard",
    }
    resources = template["Resources"]
    assert {name for name, r in resources.items() if r.get("Condition") == "UseOpenPlatform"} == platform
    assert template["Conditions"]["UseOpenPlatform"] == {"Fn::Equals": [{"Ref": "OpenPlatform"}, "enabled"]}
    assert template["Parameters"]["OpenPlatform"]["Default"] == "disabled"


def test_open_platform_is_refused_on_any_store_but_dynamodb_with_the_reason(template):
    rule = template["Rules"]["OpenPlatformNeedsDynamoDb"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "OpenPlatform"}, "enabled"]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "TokenStore"}, "dynamodb"]}
    assert "refresh tokens" in assertion["AssertDescription"]


def test_the_platform_example_of_samconfig_deploys_open_platform_on_dynamodb():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).parents[2] / "samconfig.toml").read_text(encoding="utf-8"))
    overrides = dict(
        pair.split("=", 1)
        for pair in config["platform"]["deploy"]["parameters"]["parameter_overrides"].split()
    )
    assert overrides["TokenStore"] == "dynamodb"
    assert overrides["OpenPlatform"] == "enabled"
