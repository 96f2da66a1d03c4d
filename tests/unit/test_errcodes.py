"""WeChat's errcodes become typed errors whose messages tell the user what to do."""

import pytest

from wxtoken.errors import (
    InvalidCredentialError,
    IPNotAllowlistedError,
    QuotaExceededError,
    RetryableWeChatError,
    TokenRejectedError,
    WeChatAPIError,
)
from wxtoken.wechat.errcodes import error_for, scrub


@pytest.mark.parametrize(
    ("errcode", "kind", "advice"),
    [
        (-1, RetryableWeChatError, "retries"),
        (40013, InvalidCredentialError, "appid"),
        (40125, InvalidCredentialError, "AppSecret"),
        (40001, InvalidCredentialError, "AppSecret"),
        (40164, IPNotAllowlistedError, "allow-list"),
        (45009, QuotaExceededError, "clear_quota"),
        (89503, IPNotAllowlistedError, "confirm"),
    ],
)
def test_token_api_errcodes_map_to_types_with_advice(errcode, kind, advice):
    error = error_for(errcode, "msg rid: 1", on_token_api=True)
    assert type(error) is kind
    assert error.errcode == errcode
    assert advice in str(error)


def test_40164_names_the_egress_ip_from_wechats_message():
    error = error_for(
        40164, "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist", on_token_api=True
    )
    assert "egress IP 203.0.113.7" in str(error)


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_rejected_token_codes_on_api_calls_ask_for_compare_and_refresh(errcode):
    error = error_for(errcode, "invalid credential", on_token_api=False)
    assert isinstance(error, TokenRejectedError)
    assert "compare-and-refresh" in str(error)


def test_unknown_errcode_is_a_plain_api_error_keeping_code_and_message():
    error = error_for(61451, "invalid parameter", on_token_api=True)
    assert type(error) is WeChatAPIError
    assert (error.errcode, error.errmsg) == (61451, "invalid parameter")


def test_credentials_echoed_by_wechat_are_masked():
    error = error_for(40125, "invalid appsecret, secret=abcdef0123 access_token=XYZ", on_token_api=True)
    assert "abcdef0123" not in str(error)
    assert "XYZ" not in str(error)
    assert scrub("a?appid=wx1&secret=s3cr3t&x=1") == "a?appid=wx1&secret=***&x=1"
