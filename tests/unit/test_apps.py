"""The apps secret is validated with errors that name the app and field, never a value."""

import json

import pytest

from wxtoken.apps import AppsSource, parse_apps
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
    )
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
        ('{"nope": {"app_secret": "x"}}', "is not an appid"),
        ('{"wx1111111111111111": {}}', "no app_secret"),
        ('{"wx1111111111111111": {"app_secret": "s", "encoding_aes_key": "short"}}', "43 base64"),
        ('{"wx1111111111111111": {"app_secret": "s", "jsapi_ticket": "yes"}}', "true or false"),
    ],
)
def test_bad_secret_is_refused_with_a_clear_message(secret, message):
    with pytest.raises(ConfigError, match=message) as raised:
        parse_apps(secret)
    assert '"s"' not in str(raised.value)


def test_unknown_appid_is_a_typed_error():
    source = AppsSource("ignored", fetch=lambda: '{"wx1111111111111111": {"app_secret": "s"}}')
    assert source.get("wx1111111111111111").app_secret == "s"
    with pytest.raises(UnknownAppError):
        source.get("wx9999999999999999")
