"""Callback signatures: WeChat's sorted-SHA-1, compared in constant time, never optional."""

import hashlib
import inspect

import pytest

from wxtoken.errors import BadRequest, SignatureMismatch
from wxtoken.wechat import signature
from wxtoken.wechat.signature import sha1_signature, verify_signature

# Tencent's official Python sample (Sample.py, WXBizMsgCrypt): token "spamtest".
TOKEN, TIMESTAMP, NONCE = "spamtest", "1409735669", "1320562132"
ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFm"
    "OD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8d"
    "KOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5"
    "RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNP"
    "fUM669WuMyVWQLCzpu9GhglF2PE="
)


def test_url_check_signature_sorts_token_timestamp_and_nonce():
    # Given the URL check's three parts, when signed, then the order they come in does not matter
    assert sha1_signature("789", "456", "123") == "f7c3bc1d808e04732adf679965ccc34ca7ae3441"
    assert sha1_signature(TOKEN, TIMESTAMP, NONCE) == sha1_signature(NONCE, TOKEN, TIMESTAMP)
    assert sha1_signature(TOKEN, TIMESTAMP, NONCE) == "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"


def test_msg_signature_of_tencents_sample_matches_the_published_one():
    assert sha1_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT) == "5d197aaffba7e9b25a30732f161a50dee96bd5fa"


def test_signature_is_sha1_hex_of_the_sorted_concatenation():
    expected = hashlib.sha1(b"".join(sorted([b"b", b"c", b"a"]))).hexdigest()  # noqa: S324
    assert sha1_signature("c", "a", "b") == expected


def test_a_correct_signature_passes():
    verify_signature("5d197aaffba7e9b25a30732f161a50dee96bd5fa", TOKEN, TIMESTAMP, NONCE, ENCRYPT)


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        "0" * 40,
        "5d197aaffba7e9b25a30732f161a50dee96bd5f",  # one character short
        "5D197AAFFBA7E9B25A30732F161A50DEE96BD5FA",  # WeChat sends lower case
        "5d197aaffba7e9b25a30732f161a50dee96bd5fä",  # non-ASCII must not crash compare_digest
    ],
)
def test_a_missing_or_wrong_signature_is_a_mismatch(given):
    with pytest.raises(SignatureMismatch) as caught:
        verify_signature(given, TOKEN, TIMESTAMP, NONCE, ENCRYPT)
    assert isinstance(caught.value, BadRequest)
    assert TOKEN not in str(caught.value)


def test_the_comparison_is_constant_time():
    source = inspect.getsource(signature.verify_signature)
    assert "hmac.compare_digest(" in source
    assert "==" not in source


@pytest.mark.parametrize("part", ["\ud800", "nonce\udc80"], ids=["lone-surrogate", "trailing-surrogate"])
def test_a_part_without_a_utf8_form_is_a_mismatch_not_a_crash(part):
    # A Lambda event is JSON; its \ud800 escapes decode to lone surrogates, which nothing
    # WeChat signed can hold.
    with pytest.raises(SignatureMismatch):
        verify_signature("0" * 40, TOKEN, TIMESTAMP, part)
