"""The apps secret is validated with errors that name the app and field, never a value."""

import json

import pytest

from wxtoken.apps import WEBHOOK_SECRET, AppsSource, parse_apps
from wxtoken.errors import ConfigError, UnknownAppError

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def test_full_entry_is_parsed_and_secrets_stay_out_of_repr():
    apps = parse_apps(
        json.dumps(
            {
                "wx1111111111111111": {
                    "app_secret": "topsecret",
                    "token": "pamtest",
                    "encoding_aes_key": AES_KEY,
                    "jsapi_ticket": True,
                }
            }
        )
    ).apps
    app = apps["wx1111111111111111"]
    assert (app.app_secret, app.token, app.encoding_aes_key, app.jsapi_ticket) == (
        "topsecret",
        "pamtest",
        AES_KEY,
        True,
    )
    assert "topsecret" not in repr(app)
    assert AES_KEY not in repr(app)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "keyed by appid"),
    ],
)
def test_a_secret_that_is_unusable_as_a_whole_is_refused(secret, message):
    with pytest.raises(ConfigError, match=message):
        parse_apps(secret)


GOOD = {"app_secret": "goodsecret"}


@pytest.mark.parametrize(
    ("key", "entry", "ref", "message"),
    [
        ("sk-live-PASTED-SECRET-9f8e7d", {"app_secret": "zzSECRETzz"}, "entry #2", "is not an appid"),
        ("wx3333333333333333", {}, "wx3333333333333333", "no app_secret"),
        (
            "wx3333333333333333",
            {"app_secret": "zzSECRETzz", "encoding_aes_key": AES_KEY[:42]},
            "wx3333333333333333",
            "43",
        ),
        (
            "wx3333333333333333",
            {"app_secret": "zzSECRETzz", "token": "tok-en-zz"},
            "wx3333333333333333",
            "letters or digits",
        ),
        (
            "wx3333333333333333",
            {"app_secret": "zzSECRETzz", "jsapi_ticket": "yes"},
            "wx3333333333333333",
            "true or false",
        ),
        ("wx3333333333333333", "just-a-string", "wx3333333333333333", "must be an object"),
    ],
)
def test_one_bad_entry_is_reported_alone_and_never_echoed(key, entry, ref, message):
    parsed = parse_apps(json.dumps({"wx1111111111111111": GOOD, key: entry, "wx2222222222222222": GOOD}))

    assert sorted(parsed.apps) == ["wx1111111111111111", "wx2222222222222222"]
    assert [problem.ref for problem in parsed.problems] == [ref]
    problem = parsed.problems[0]
    assert message in problem.message
    for value in (key if not key.startswith("wx") else "", *(v for v in _values(entry))):
        if value:
            assert value not in problem.message


def _values(entry):
    return [str(v) for v in entry.values()] if isinstance(entry, dict) else [str(entry)]


def test_a_misconfigured_app_is_a_typed_error_naming_the_field():
    from wxtoken.errors import MisconfiguredAppError

    secret = json.dumps(
        {"wx1111111111111111": GOOD, "wx3333333333333333": {"app_secret": "s", "token": "a-b"}}
    )
    source = AppsSource("ignored", fetch=lambda: secret)
    assert source.get("wx1111111111111111").app_secret == "goodsecret"
    with pytest.raises(MisconfiguredAppError, match="token"):
        source.get("wx3333333333333333")


def test_unknown_appid_is_a_typed_error():
    source = AppsSource("ignored", fetch=lambda: '{"wx1111111111111111": {"app_secret": "s"}}')
    assert source.get("wx1111111111111111").app_secret == "s"
    with pytest.raises(UnknownAppError):
        source.get("wx9999999999999999")


# --- the webhook secret: Token and EncodingAESKey, no AppSecret -----------------------------


def test_a_webhook_secret_entry_needs_no_app_secret():
    parsed = parse_apps(
        json.dumps(
            {
                "wx1111111111111111": {"token": "pamtest", "encoding_aes_key": AES_KEY},
                "wx2222222222222222": {},  # token API only: listed, no callbacks
            }
        ),
        WEBHOOK_SECRET,
    )

    assert parsed.problems == ()
    app = parsed.apps["wx1111111111111111"]
    assert (app.app_secret, app.token, app.encoding_aes_key) == (None, "pamtest", AES_KEY)
    assert parsed.apps["wx2222222222222222"].token is None


def test_an_app_secret_in_the_webhook_secret_is_not_kept():
    # Someone pasted the whole apps secret: it works, and the AppSecret is dropped on read.
    entry = {"app_secret": "zzSECRETzz", "token": "pamtest"}
    app = parse_apps(json.dumps({"wx1111111111111111": entry}), WEBHOOK_SECRET).apps["wx1111111111111111"]
    assert app.app_secret is None
    assert app.token == "pamtest"


def test_the_apps_secret_still_needs_an_app_secret_in_every_entry():
    parsed = parse_apps(json.dumps({"wx1111111111111111": {"token": "pamtest"}}))
    assert parsed.apps == {}
    assert "no app_secret" in parsed.problems[0].message


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"token": "tok-en-zz"}, "webhook secret entry wx3333333333333333: token must be 3-32"),
        ({"encoding_aes_key": AES_KEY[:42]}, "webhook secret entry wx3333333333333333: encoding_aes_key"),
        ("just-a-string", "webhook secret entry wx3333333333333333 must be an object"),
    ],
)
def test_a_bad_webhook_secret_entry_is_reported_alone_under_its_secrets_name(entry, message):
    parsed = parse_apps(
        json.dumps({"wx1111111111111111": {"token": "pamtest"}, "wx3333333333333333": entry}), WEBHOOK_SECRET
    )
    assert list(parsed.apps) == ["wx1111111111111111"]
    assert parsed.problems[0].message.startswith(message)


def test_a_webhook_secret_that_is_not_json_is_named_as_such():
    with pytest.raises(ConfigError, match="the webhook secret is not valid JSON"):
        parse_apps("{", WEBHOOK_SECRET)


def test_an_empty_webhook_secret_is_a_config_error_that_says_how_to_fill_it():
    # The stack creates it as "{}": unfilled, it answers 503 (WeChat retries, alarm fires), not 404.
    source = AppsSource("wxtoken/webhook", fetch=lambda: "{}", shape=WEBHOOK_SECRET)
    with pytest.raises(ConfigError, match="PutWebhookSecretCommand"):
        source.get("wx1111111111111111")


def test_an_empty_apps_secret_still_makes_an_unknown_app():
    with pytest.raises(UnknownAppError):
        AppsSource("wxtoken/apps", fetch=lambda: "{}").get("wx1111111111111111")


def test_a_component_entry_is_a_platform_not_an_app():
    # Given a secret with one app and one third-party platform (kind: component)
    secret = json.dumps(
        {
            "wx1111111111111111": {"app_secret": "s1"},  # pragma: allowlist secret
            "wxc0c0c0c0c0c0c0c0": {
                "kind": "component",
                "app_secret": "componentsecret",  # pragma: allowlist secret
                "token": "platformtoken",
                "encoding_aes_key": AES_KEY,
                "jsapi_ticket": True,
            },
        }
    )
    source = AppsSource("apps", fetch=lambda: secret)
    # Then the refresher's apps leave the platform out, and it is found as a component
    assert set(source.all()) == {"wx1111111111111111"}
    component = source.component("wxc0c0c0c0c0c0c0c0")
    assert (component.kind, component.app_secret, component.jsapi_ticket) == (
        "component",
        "componentsecret",  # pragma: allowlist secret
        True,
    )
    assert "componentsecret" not in repr(component)
    with pytest.raises(UnknownAppError):
        source.component("wx1111111111111111")  # an app is not a platform


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "platform", "app_secret": "s"}, 'kind must be "app"'),
        ({"kind": "component", "app_secret": "s", "token": "abc"}, "needs its token and encoding_aes_key"),
        ({"kind": "component", "token": "abc", "encoding_aes_key": AES_KEY}, "has no app_secret"),
    ],
)
def test_a_bad_component_entry_is_reported_alone(entry, message):
    parsed = parse_apps(json.dumps({"wxc0c0c0c0c0c0c0c0": entry, "wx1111111111111111": {"app_secret": "s"}}))
    assert set(parsed.apps) == {"wx1111111111111111"}
    assert not parsed.components
    (problem,) = parsed.problems
    assert problem.ref == "wxc0c0c0c0c0c0c0c0"
    assert message in problem.message


def test_a_component_in_the_webhook_secret_needs_no_app_secret():
    secret = json.dumps(
        {"wxc0c0c0c0c0c0c0c0": {"kind": "component", "token": "abc", "encoding_aes_key": AES_KEY}}
    )
    parsed = parse_apps(secret, WEBHOOK_SECRET)
    assert parsed.components["wxc0c0c0c0c0c0c0c0"].app_secret is None
    assert not parsed.apps
