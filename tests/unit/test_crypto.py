"""Safe-mode crypto: Tencent's published vectors, PKCS#7 to 32 bytes, one generic failure.

Vectors come from Tencent's official WXBizMsgCrypt samples (消息加解密 示例代码):
- Java ``WXBizMsgCryptTest`` (token "pamtest", appid "wxb11529c136998cb6", random
  "aaaabbbbccccdddd"): the exact ciphertexts of two encryptions;
- Python ``Sample.py`` (token "spamtest", appid "wx2c2769f8efd9abc2", same EncodingAESKey):
  a POST body with msg_signature, timestamp and nonce that decrypts to a text message.
"""

import base64
import binascii

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from wxtoken.errors import ConfigError, MalformedMessage
from wxtoken.wechat.crypto import MessageCrypto
from wxtoken.wechat.messages import TextMessage, parse_encrypted_envelope, parse_message
from wxtoken.wechat.signature import verify_signature

ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
KEY = base64.b64decode(ENCODING_AES_KEY + "=")
APPID = "wxb11529c136998cb6"
RANDOM16 = b"aaaabbbbccccdddd"

# Java sample, testAesEncrypt / testAesEncrypt2.
REPLY_MSG = "我是中文abcd123"
AFTER_AES_ENCRYPT = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
REPLY_MSG_2 = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName>"
    "<FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime>"
    "<MsgType><![CDATA[video]]></MsgType><Video>"
    "<MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId>"
    "<Title><![CDATA[testCallBackReplyVideo]]></Title>"
    "<Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
AFTER_AES_ENCRYPT_2 = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEc"
    "W7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAl"
    "HF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQ"
    "NSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkw"
    "WTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6"
    "YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP"
    "5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
)

# Python sample, the decryption half.
SAMPLE_TOKEN, SAMPLE_APPID = "spamtest", "wx2c2769f8efd9abc2"
SAMPLE_TIMESTAMP, SAMPLE_NONCE = "1409735669", "1320562132"
SAMPLE_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFm"
    "OD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8d"
    "KOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5"
    "RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNP"
    "fUM669WuMyVWQLCzpu9GhglF2PE="
)
SAMPLE_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>"
    "<CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId>"
    f"<Encrypt><![CDATA[{SAMPLE_ENCRYPT}]]></Encrypt></xml>"
)
SAMPLE_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n"
    "<MsgId>6054768590064713728</MsgId>\n"
    "</xml>"
)


@pytest.fixture(scope="module")
def crypto():
    return MessageCrypto(ENCODING_AES_KEY, APPID)


def _aes(plaintext: bytes) -> bytes:
    """Raw AES-256-CBC with WeChat's key and IV, no padding: for hand-built ciphertexts."""
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def _unaes(ciphertext_b64: str) -> bytes:
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).decryptor()
    return decryptor.update(base64.b64decode(ciphertext_b64)) + decryptor.finalize()


def _seal(plaintext: bytes) -> str:
    return base64.b64encode(_aes(plaintext)).decode()


def _body(msg: bytes, appid: bytes = APPID.encode(), *, length: int | None = None) -> bytes:
    size = len(msg) if length is None else length
    return RANDOM16 + size.to_bytes(4, "big") + msg + appid


def _pad32(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


# --- Tencent's published vectors ------------------------------------------------------------
@pytest.mark.parametrize(
    ("plaintext", "ciphertext"), [(REPLY_MSG, AFTER_AES_ENCRYPT), (REPLY_MSG_2, AFTER_AES_ENCRYPT_2)]
)
def test_encrypt_with_fixed_random_reproduces_tencents_ciphertext(crypto, plaintext, ciphertext):
    assert crypto.encrypt(plaintext, random16=RANDOM16) == ciphertext
    assert crypto.decrypt(ciphertext) == plaintext


def test_tencents_sample_post_verifies_and_decrypts_to_the_expected_xml():
    # Given the sample's safe-mode body and query
    crypto = MessageCrypto(ENCODING_AES_KEY, SAMPLE_APPID)
    to_user, encrypt = parse_encrypted_envelope(SAMPLE_BODY)
    # When its msg_signature is checked and the Encrypt part decrypted
    verify_signature(SAMPLE_MSG_SIGNATURE, SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, encrypt)
    plaintext = crypto.decrypt(encrypt)
    # Then it is the published XML, newlines and all, and parses to the text message
    assert to_user == "gh_10f6c3c3ac5a"
    assert plaintext == SAMPLE_PLAINTEXT
    message = parse_message(plaintext)
    assert isinstance(message, TextMessage)
    assert (message.content, message.msg_id) == ("abcdteT", 6054768590064713728)


# --- padding to 32 --------------------------------------------------------------------------
def _message_padded_with(pad: int) -> str:
    # 16 random + 4 length + msg + 18-byte appid, padded up to the next multiple of 32.
    return "x" * ((-(16 + 4 + len(APPID)) - pad) % 32)


@pytest.mark.parametrize("pad", range(17, 33))
def test_padding_is_to_32_bytes_so_pads_of_17_to_32_round_trip(crypto, pad):
    # Given a message whose 16-byte padding would end at a multiple of 16 but not of 32
    message = _message_padded_with(pad)
    assert (16 + 4 + len(message) + len(APPID)) % 32 < 16
    # When encrypted
    ciphertext = crypto.encrypt(message, random16=RANDOM16)
    # Then WeChat's pad byte (17..32) fills it to a multiple of 32, and it round-trips
    raw = _unaes(ciphertext)
    assert len(raw) % 32 == 0
    assert raw[-pad:] == bytes([pad]) * pad
    assert crypto.decrypt(ciphertext) == message
    # while a decoder that assumes AES's 16-byte blocks rejects the same bytes
    unpadder = padding.PKCS7(128).unpadder()
    unpadder.update(raw)
    with pytest.raises(ValueError, match="padding"):
        unpadder.finalize()


@pytest.mark.parametrize("pad", [1, 7, 16])
def test_pads_of_up_to_16_are_accepted_too(crypto, pad):
    # Tencent's decoders take any pad byte from 1 to 32, whatever the sender's block size.
    message = "y" * ((-(16 + 4 + len(APPID)) - pad) % 16)
    data = _body(message.encode())
    ciphertext = _seal(data + bytes([pad]) * pad)
    assert crypto.decrypt(ciphertext) == message


# --- one generic failure --------------------------------------------------------------------
def _assert_malformed(crypto, ciphertext):
    with pytest.raises(MalformedMessage) as caught:
        crypto.decrypt(ciphertext)
    assert str(caught.value) == "malformed message"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


def test_another_apps_ciphertext_is_malformed(crypto):
    other = MessageCrypto(ENCODING_AES_KEY, "wx0000000000000000")
    _assert_malformed(crypto, other.encrypt("<xml/>"))


def test_an_appid_that_merely_starts_like_ours_is_malformed(crypto):
    _assert_malformed(crypto, _seal(_pad32(_body(b"<xml/>", APPID.encode() + b"x"))))
    _assert_malformed(crypto, _seal(_pad32(_body(b"<xml/>", APPID.encode()[:-1]))))


@pytest.mark.parametrize(
    "ciphertext",
    [
        "",
        "!!!not-base64!!!",
        "YWJj",  # 3 bytes: not whole AES blocks
        AFTER_AES_ENCRYPT[:-4],  # truncated base64
        AFTER_AES_ENCRYPT.rstrip("="),  # padding characters removed
        AFTER_AES_ENCRYPT[:40] + "\n" + AFTER_AES_ENCRYPT[40:],  # whitespace is not base64
        "密文" * 20,  # not ASCII at all
        base64.b64encode(base64.b64decode(AFTER_AES_ENCRYPT)[:-1]).decode(),  # one byte short
        base64.b64encode(base64.b64decode(AFTER_AES_ENCRYPT)[:16]).decode(),  # a single block
        base64.b64encode(base64.b64decode(AFTER_AES_ENCRYPT)[16:]).decode(),  # first block gone
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  # 32 zero bytes
    ],
)
def test_bad_base64_truncation_and_garbage_are_malformed(crypto, ciphertext):
    _assert_malformed(crypto, ciphertext)


@pytest.mark.parametrize(
    "plaintext",
    [
        _pad32(_body(b"<xml/>"))[:-1] + b"\x00",
        _pad32(_body(b"<xml/>"))[:-1] + bytes([33]),
        _pad32(_body(b"<xml/>" + b"z" * 10))[:-2] + b"\x01\x10",
    ],
    ids=["pad byte 0", "pad byte beyond 32", "pad bytes that disagree"],
)
def test_bad_padding_is_malformed(crypto, plaintext):
    assert len(plaintext) % 16 == 0
    _assert_malformed(crypto, _seal(plaintext))


@pytest.mark.parametrize("length", [0xFFFFFFFF, 2**31, 1000, 7, 0])
def test_a_length_field_that_does_not_fit_is_malformed(crypto, length):
    _assert_malformed(crypto, _seal(_pad32(_body(b"<xml>ok</xml>", length=length))))


def test_text_that_is_not_utf8_is_malformed(crypto):
    _assert_malformed(crypto, _seal(_pad32(_body(b"\xff\xfe<xml/>"))))


# --- the key --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["", "short", ENCODING_AES_KEY + "H", ENCODING_AES_KEY[:-1], "!" * 43, "é" * 43, "abc=" * 10 + "abc"],
)
def test_a_key_that_is_not_43_base64_characters_is_a_config_error(key):
    with pytest.raises(ConfigError, match="43-character EncodingAESKey") as caught:
        MessageCrypto(key, APPID)
    if key:
        assert key not in str(caught.value)


def test_a_key_of_43_as_is_valid_and_all_zero():
    # Tencent's documentation uses this boundary key for its component examples.
    crypto = MessageCrypto("A" * 43, APPID)
    assert crypto.appid == APPID
    assert crypto.decrypt(crypto.encrypt("hi")) == "hi"


def test_random16_must_be_16_bytes(crypto):
    with pytest.raises(ValueError, match="16 bytes"):
        crypto.encrypt("hi", random16=b"short")


def test_each_encryption_uses_fresh_random_bytes(crypto):
    assert crypto.encrypt("same") != crypto.encrypt("same")


# --- properties -----------------------------------------------------------------------------
_TRICKY = st.sampled_from(["]]>", "<![CDATA[", "&amp;", "\r\n", "\t", "\x01", "\x1f", "😀", "中文", "\ufeff"])
_TEXTS = st.lists(st.one_of(st.text(), _TRICKY), max_size=20).map("".join)


@settings(max_examples=100, deadline=None)
@given(text=_TEXTS, random16=st.binary(min_size=16, max_size=16))
def test_any_text_round_trips(crypto, text, random16):
    ciphertext = crypto.encrypt(text, random16=random16)
    assert len(base64.b64decode(ciphertext)) % 32 == 0
    assert crypto.decrypt(ciphertext) == text


@settings(max_examples=100, deadline=None)
@given(
    data=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()))
)
def test_decrypt_of_anything_returns_text_or_raises_malformed(crypto, data):
    try:
        outcome: str | MalformedMessage = crypto.decrypt(data)
    except MalformedMessage as exc:
        outcome = exc
    assert isinstance(outcome, str) or str(outcome) == "malformed message"


def test_binascii_error_is_a_value_error():
    # decrypt() relies on it to fold bad base64 into MalformedMessage.
    assert issubclass(binascii.Error, ValueError)


# --- the kept CBC contexts (MessageCrypto keeps one of each direction between calls) ----------
def _fresh_encrypt(plaintext: str, random16: bytes) -> str:
    """Tencent's algorithm with a context started for this one call, as the samples do."""
    msg = plaintext.encode()
    return _seal(_pad32(random16 + len(msg).to_bytes(4, "big") + msg + APPID.encode()))


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["encrypt", "decrypt", "garbage"]), _TEXTS, st.binary(min_size=16, max_size=16)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_kept_contexts_give_what_a_fresh_context_gives_whatever_came_before(calls):
    # Given one MessageCrypto used for a mix of calls, malformed ciphertexts among them
    crypto = MessageCrypto(ENCODING_AES_KEY, APPID)
    for kind, text, random16 in calls:
        if kind == "encrypt":
            # Then each encryption is byte for byte what a fresh CBC context makes
            assert crypto.encrypt(text, random16=random16) == _fresh_encrypt(text, random16)
        elif kind == "decrypt":
            # And each decryption reads what a fresh context reads
            sealed = _fresh_encrypt(text, random16)
            assert crypto.decrypt(sealed) == text
        else:
            with pytest.raises(MalformedMessage):
                crypto.decrypt(base64.b64encode(random16 * 2).decode())


def test_replies_encrypted_with_drawn_random_bytes_decrypt_at_a_fresh_context(crypto):
    # Given encryptions that draw their random bytes, one after another on kept contexts
    for text in ["first", "second", "第三", "x" * 500]:
        sealed = crypto.encrypt(text)
        # Then WeChat's side, a fresh context with the IV, reads each one whole
        plain = _unaes(sealed)
        plain = plain[: -plain[-1]]
        assert plain[16:20] == len(text.encode()).to_bytes(4, "big")
        assert plain[20:].decode() == text + APPID


def test_threads_sharing_one_crypto_each_get_their_own_message(crypto):
    # Given 8 threads encrypting and decrypting on one MessageCrypto at once
    from concurrent.futures import ThreadPoolExecutor

    def round_trip(n: int) -> bool:
        texts = [f"message {n}:{i}" for i in range(300)]
        return all(crypto.decrypt(crypto.encrypt(text)) == text for text in texts)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(round_trip, range(8)))
