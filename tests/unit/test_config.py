"""Settings fail fast, naming the variable, and default to the documented values."""

import pytest

from wxtoken.config import ObservabilitySettings, Settings, StoreKind, TokenAPI
from wxtoken.errors import ConfigError


def test_defaults_match_the_documented_contract():
    settings = Settings.from_env({"WECHAT_APPS_SECRET_ID": "wxtoken/apps"})
    assert settings.token_store is StoreKind.SSM
    assert settings.parameter_prefix == "/wxtoken"
    assert settings.wechat_api_base == "https://api.weixin.qq.com"
    assert settings.wechat_token_api is TokenAPI.TOKEN
    assert settings.schedule_period_seconds == 100 * 60


def test_missing_apps_secret_names_the_variable():
    with pytest.raises(ConfigError, match="WECHAT_APPS_SECRET_ID"):
        Settings.from_env({})


def test_a_reader_needs_no_apps_secret_but_code_that_reads_appsecrets_does():
    settings = Settings.reader_from_env({"TOKEN_PARAMETER_PREFIX": "/prod/wxtoken"})
    assert settings.apps_secret_id is None
    assert settings.parameter_prefix == "/prod/wxtoken"
    with pytest.raises(ConfigError, match="WECHAT_APPS_SECRET_ID"):
        _ = settings.required_apps_secret_id
    with_secret = Settings.reader_from_env({"WECHAT_APPS_SECRET_ID": "wxtoken/apps"})
    assert with_secret.required_apps_secret_id == "wxtoken/apps"


def test_a_reader_validates_the_store_settings_as_the_functions_do():
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.reader_from_env({"TOKEN_STORE": "redis"})
    with pytest.raises(ConfigError, match="TOKEN_PARAMETER_PREFIX"):
        Settings.reader_from_env({"TOKEN_PARAMETER_PREFIX": "wxtoken/"})
    reader = Settings.reader_from_env({"TOKEN_STORE": "redis", "REDIS_URL": "rediss://cache:6379"})
    writer = Settings.from_env(
        {"TOKEN_STORE": "redis", "REDIS_URL": "rediss://cache:6379", "WECHAT_APPS_SECRET_ID": "s"}
    )
    assert reader == Settings(**{**vars(writer), "apps_secret_id": None})


def test_redis_store_needs_a_redis_url():
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", "TOKEN_STORE": "redis"})
    with pytest.raises(ConfigError, match="redis://"):
        Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", "TOKEN_STORE": "redis", "REDIS_URL": "http://x"})


@pytest.mark.parametrize("table", [None, " "], ids=["unset", "blank"])
def test_dynamodb_store_needs_a_token_table_and_says_where_to_find_it(table):
    env = {"WECHAT_APPS_SECRET_ID": "s", "TOKEN_STORE": "dynamodb"}
    if table is not None:
        env["TOKEN_TABLE"] = table
    with pytest.raises(ConfigError, match=r"TOKEN_TABLE.*TokenTableName"):
        Settings.from_env(env)
    with pytest.raises(ConfigError, match="TOKEN_TABLE"):
        Settings.reader_from_env({k: v for k, v in env.items() if k != "WECHAT_APPS_SECRET_ID"})


def test_dynamodb_settings_are_read():
    settings = Settings.reader_from_env({"TOKEN_STORE": "DynamoDB", "TOKEN_TABLE": " wxtoken-tokens "})
    assert settings.token_store is StoreKind.DYNAMODB
    assert settings.token_table == "wxtoken-tokens"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOKEN_STORE", "dynamo"),
        ("WECHAT_TOKEN_API", "oauth"),
        ("TOKEN_PARAMETER_PREFIX", "wxtoken/"),
        ("GUARD_MARGIN_SECONDS", "soon"),
        ("GUARD_MARGIN_SECONDS", "-5"),
        ("WECHAT_API_BASE", "ftp://x"),
        ("REDIS_CLUSTER", "maybe"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", name: value})


def test_redis_settings_and_stable_token_are_read():
    settings = Settings.from_env(
        {
            "WECHAT_APPS_SECRET_ID": "s",
            "TOKEN_STORE": "REDIS",
            "REDIS_URL": "rediss://cache:6379",
            "REDIS_CLUSTER": "true",
            "WECHAT_TOKEN_API": "stable_token",
            "WECHAT_API_BASE": "http://127.0.0.1:8081/",
        }
    )
    assert settings.token_store is StoreKind.REDIS
    assert settings.redis_cluster is True
    assert settings.wechat_token_api is TokenAPI.STABLE_TOKEN
    assert settings.wechat_api_base == "http://127.0.0.1:8081"


def test_the_webhook_secret_is_optional_and_read_when_set():
    assert Settings.from_env({"WECHAT_APPS_SECRET_ID": "wxtoken/apps"}).webhook_secret_id is None
    blank = Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", "WECHAT_WEBHOOK_SECRET_ID": " "})
    assert blank.webhook_secret_id is None
    settings = Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", "WECHAT_WEBHOOK_SECRET_ID": "wxtoken/w"})
    assert (settings.apps_secret_id, settings.webhook_secret_id) == ("s", "wxtoken/w")


def test_the_webhook_reads_its_own_secret_when_one_is_named_and_the_apps_secret_otherwise():
    from wxtoken.apps import APPS_SECRET, WEBHOOK_SECRET
    from wxtoken.webhook.wiring import webhook_apps

    split = webhook_apps(Settings.from_env({"WECHAT_APPS_SECRET_ID": "a", "WECHAT_WEBHOOK_SECRET_ID": "w"}))
    assert (split.secret_id, split.shape) == ("w", WEBHOOK_SECRET)
    single = webhook_apps(Settings.from_env({"WECHAT_APPS_SECRET_ID": "a"}))
    assert (single.secret_id, single.shape) == ("a", APPS_SECRET)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ("WxToken", "wxtoken", False)),
        (
            {"POWERTOOLS_METRICS_NAMESPACE": " Acme ", "POWERTOOLS_SERVICE_NAME": "stack-1"},
            ("Acme", "stack-1", False),
        ),
        ({"WXTOKEN_TRACING": " On "}, ("WxToken", "wxtoken", True)),
        ({"WXTOKEN_TRACING": "false"}, ("WxToken", "wxtoken", False)),
        # Never an error: observability must come up to log why the other settings are bad.
        ({"WXTOKEN_TRACING": "maybe", "POWERTOOLS_SERVICE_NAME": "  "}, ("WxToken", "wxtoken", False)),
    ],
)
def test_observability_settings_are_read_leniently(environ, expected):
    settings = ObservabilitySettings.from_env(environ)
    assert (settings.namespace, settings.service, settings.tracing) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WECHAT_READ_TIMEOUT", "nan"),
        ("WECHAT_READ_TIMEOUT", "inf"),
        ("WECHAT_READ_TIMEOUT", "0"),
        ("WECHAT_READ_TIMEOUT", "soon"),
        ("WEBHOOK_MAX_BODY_BYTES", "1.5"),
        ("WEBHOOK_MAX_BODY_BYTES", "0"),
        ("PROBE_PERIOD_SECONDS", "-1"),
        ("WECHAT_READ_TIMEOUT", "1e400"),
    ],
)
def test_numbers_must_be_finite_and_positive(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", name: value})


def test_zero_turns_the_probe_off():
    settings = Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", "PROBE_PERIOD_SECONDS": "0"})
    assert settings.probe_period_seconds == 0


def test_a_huge_whole_number_is_taken_as_written_not_a_crash():
    settings = Settings.from_env({"WECHAT_APPS_SECRET_ID": "s", "WEBHOOK_MAX_BODY_BYTES": "1" + "0" * 400})
    assert settings.webhook_max_body_bytes == 10**400
