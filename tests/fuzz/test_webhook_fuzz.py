"""Fuzzing the webhook through its Lambda handler, on a real store: whatever arrives, it answers
with a 2xx-4xx, never a 5xx and never an unhandled exception (``webhook`` checks both on
every invocation).

- any request at all on a known app's path, not signed with its Token → 403: query values
  and paths of any code point (lone surrogates too), digits of any script (², ١٢٣, fullwidth)
  and thousands of characters long, in the timestamp, nonce and signature above all;
- a signed request whose signature, timestamp, nonce, msg_signature or ciphertext was then
  changed, or re-signed over its timestamp written in other digits → 403;
- a signed, well-formed WeChat message (any type, known or not, with random fields, values and
  nesting; plain, safe or compatible mode; base64-encoded by API Gateway or not) → 200 and a
  reply WeChat can read (text is echoed); its plain-mode query sent again with another
  message → 403, with the same one → the same answer;
- a signed body with a DTD, entities, nesting deeper than WeChat's, a wrong root, a repeated
  or missing field, a bad number, or cut short → 400; one past the size limit → 413;
- a signed ciphertext that is not this app's (random base64, not base64, another appid, cut
  short) → 400; one with flipped bits → 400, or 200 in the rare case it still decrypts to a
  message;
- URL verification with any ``echostr`` → 200 and the ``echostr`` unchanged;
- Open Platform: any request to ``/open/…`` not signed with the platform's Token → 403 (400
  for an authorizer that is no appid); a signed ticket push with any ticket → ``success`` and
  that very ticket stored, and one with any other InfoType and fields → ``success``.

Examples per test: the ``ci`` profile (150) under ``make test``, ``fuzz`` (10,000) under
``make fuzz``; see conftest.py.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import operator
import string
import time
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devtools.wechat.player import WeChatPlayer, apigw_event
from tests.fixtures.wechat import APPID_A, APPID_B
from tests.fuzz.conftest import AES_KEY, COMPONENT, COMPONENT_TOKEN, TOKEN, active_profile
from wxtoken.apps import is_appid
from wxtoken.wechat.crypto import MessageCrypto
from wxtoken.wechat.messages import parse_xml
from wxtoken.wechat.replies import cdata
from wxtoken.wechat.signature import sha1_signature

FUZZ = active_profile()
PATH = f"/wechat/{APPID_A}"
MAX_BODY = 1024 * 1024  # WEBHOOK_MAX_BODY_BYTES' default
_msg_ids = itertools.count(1_000_000_000_000)  # unique per delivery: no dedup hits between examples

# --- text -----------------------------------------------------------------------------------
# Anything a JSON event can carry (no lone surrogates)...
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
# ...and what an XML 1.0 document may hold (§2.2 Char), with the pieces that break naive XML.
XML_CHAR = st.one_of(
    st.sampled_from("\t\n\r"),
    st.characters(min_codepoint=0x20, max_codepoint=0xD7FF),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFD),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
)
TRICKY = st.sampled_from(["]]>", "<", ">", "&", "&amp;", "<![CDATA[", "]]", "\r\n", "<xml>", '"', "'"])
XML_TEXT = st.lists(st.one_of(st.text(XML_CHAR, max_size=12), TRICKY), max_size=4).map("".join)
NONEMPTY_XML_TEXT = XML_TEXT.filter(lambda s: s != "")
# What an attacker can put in the query and the path: any code point (lone
# surrogates too: a Lambda event is JSON, whose \ud800 escapes decode to them); digits of
# every script, which str.isdigit() takes and int() refuses (², ①) or reads (١٢٣, fullwidth);
# and values thousands of characters long (int() refuses more than 4,300 digits). Long values
# repeat a short piece: drawing 5,000 characters one by one would be slow and overrun
# Hypothesis's buffer.
WIDE_TEXT = st.text(st.characters(), max_size=40)
UNICODE_DIGITS = st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=12)
LONG_TEXT = st.builds(
    operator.mul,
    st.one_of(st.sampled_from(string.digits), st.text(st.characters(), min_size=1, max_size=3)),
    st.integers(1000, 6000),
)
QUERY_TEXT = st.one_of(WIDE_TEXT, UNICODE_DIGITS, LONG_TEXT)
# Timestamps WeChat never sends, most of them digits of some kind, some of them fresh.
DIGIT_ZEROS = {"Arabic-Indic": 0x660, "Devanagari": 0x966, "fullwidth": 0xFF10, "math bold": 0x1D7CE}
OTHER_DIGITS = st.sampled_from(
    [str.maketrans(string.digits, "".join(chr(zero + i) for i in range(10))) for zero in DIGIT_ZEROS.values()]
)
ODD_TIMESTAMP = st.one_of(
    QUERY_TEXT,
    st.builds(lambda table: str(int(time.time())).translate(table), OTHER_DIGITS),
    st.integers(0, 10**4).map(lambda n: "0" * n + str(int(time.time()))),
)

KNOWN_FIELDS = {
    "ToUserName", "FromUserName", "CreateTime", "MsgType", "MsgId", "Content", "PicUrl", "MediaId",
    "Format", "Recognition", "ThumbMediaId", "Location_X", "Location_Y", "Scale", "Label", "Title",
    "Description", "Url", "Event", "EventKey", "Ticket", "Latitude", "Longitude", "Precision",
    "MenuId", "Status", "TotalCount", "FilterCount", "SentCount", "ErrorCount", "Encrypt",
}  # fmt: skip
# Element names a random field may have: not WeChat's (a typed field with a random value is a
# different property), no dots (nested fields flatten to dotted keys), not xml-prefixed.
TAG = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters),
    st.text(string.ascii_letters + string.digits + "_", max_size=8),
).filter(lambda t: t not in KNOWN_FIELDS and not t.lower().startswith("xml"))


# --- XML ------------------------------------------------------------------------------------
def leaf(text: str, as_cdata: bool) -> str:
    return cdata(text) if as_cdata else escape(text)


LEAF = st.tuples(XML_TEXT, st.booleans())


def nested(depth: int) -> st.SearchStrategy[Any]:
    """A field's content: a leaf, or child elements down to ``depth`` more levels."""
    if depth == 0:
        return LEAF
    children = st.lists(st.tuples(TAG, nested(depth - 1)), min_size=1, max_size=2, unique_by=lambda c: c[0])
    return st.one_of(LEAF, children)


def render(tag: str, content: Any) -> str:
    if isinstance(content, tuple):
        return f"<{tag}>{leaf(*content)}</{tag}>"
    return f"<{tag}>{''.join(render(t, c) for t, c in content)}</{tag}>"


# Random extra fields, nested at most 4 levels, as WeChat nests them (the parser allows 8).
EXTRA_FIELDS = st.lists(st.tuples(TAG, nested(3)), max_size=3, unique_by=lambda f: f[0])


def number(low: int = 0, high: int = 10**20 - 1) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(str)


FLOAT = st.floats(allow_nan=False, allow_infinity=False).map(repr)
OPTIONAL_INT = st.one_of(st.just(""), number(0, 10**12))

# Typed fields of each known MsgType / Event, with values their parser accepts.
MESSAGE_FIELDS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "text": {"Content": XML_TEXT},
    "image": {"PicUrl": XML_TEXT, "MediaId": XML_TEXT},
    "voice": {"MediaId": XML_TEXT, "Format": XML_TEXT, "Recognition": XML_TEXT},
    "video": {"MediaId": XML_TEXT, "ThumbMediaId": XML_TEXT},
    "shortvideo": {"MediaId": XML_TEXT, "ThumbMediaId": XML_TEXT},
    "location": {"Location_X": FLOAT, "Location_Y": FLOAT, "Scale": number(0, 30), "Label": XML_TEXT},
    "link": {"Title": XML_TEXT, "Description": XML_TEXT, "Url": XML_TEXT},
}
EVENT_FIELDS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "subscribe": {"EventKey": st.one_of(XML_TEXT, XML_TEXT.map("qrscene_".__add__)), "Ticket": XML_TEXT},
    "unsubscribe": {},
    "SCAN": {"EventKey": XML_TEXT, "Ticket": XML_TEXT},
    "LOCATION": {"Latitude": FLOAT, "Longitude": FLOAT, "Precision": FLOAT},
    "CLICK": {"EventKey": XML_TEXT},
    "VIEW": {"EventKey": XML_TEXT, "MenuId": XML_TEXT},
    "TEMPLATESENDJOBFINISH": {"Status": XML_TEXT},
    "MASSSENDJOBFINISH": {
        "Status": XML_TEXT,
        "TotalCount": OPTIONAL_INT,
        "FilterCount": OPTIONAL_INT,
        "SentCount": OPTIONAL_INT,
        "ErrorCount": OPTIONAL_INT,
    },
}
UNKNOWN_NAME = NONEMPTY_XML_TEXT.filter(
    lambda s: (
        s.lower() not in {*MESSAGE_FIELDS, "event"} and s.lower() not in {e.lower() for e in EVENT_FIELDS}
    )
)


@st.composite
def wechat_messages(draw: st.DrawFn) -> list[tuple[str, str]]:
    """The top-level fields of a well-formed callback, as (tag, rendered XML), in random order.

    ``MsgId`` is left out: the test gives each delivery a unique one.
    """
    kind = draw(st.sampled_from(["message", "event", "unknown message", "unknown event"]))
    if kind == "message":
        msg_type = draw(st.sampled_from(sorted(MESSAGE_FIELDS)))
        typed = MESSAGE_FIELDS[msg_type]
        head: dict[str, str] = {"MsgType": msg_type}
    elif kind == "event":
        event = draw(st.sampled_from(sorted(EVENT_FIELDS)))
        typed = EVENT_FIELDS[event]
        head = {"MsgType": "event", "Event": event}
    elif kind == "unknown message":
        typed, head = {}, {"MsgType": draw(UNKNOWN_NAME)}
    else:
        typed, head = {}, {"MsgType": "event", "Event": draw(UNKNOWN_NAME)}
    head |= {
        "ToUserName": draw(NONEMPTY_XML_TEXT),
        "FromUserName": draw(NONEMPTY_XML_TEXT),
        "CreateTime": draw(number(0, 10**12)),
    }
    fields = [(tag, f"<{tag}>{leaf(value, draw(st.booleans()))}</{tag}>") for tag, value in head.items()]
    for tag, values in typed.items():
        if draw(st.booleans()) or tag.startswith(("Location", "Latitude", "Longitude", "Precision", "Scale")):
            fields.append((tag, f"<{tag}>{leaf(draw(values), draw(st.booleans()))}</{tag}>"))
    fields += [(tag, render(tag, content)) for tag, content in draw(EXTRA_FIELDS)]
    return draw(st.permutations(fields))


def assemble(fields: list[tuple[str, str]], *, msg_id: int | None, pretty: bool = False) -> str:
    parts = [xml for _, xml in fields]
    if msg_id is not None:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    separator = "\n  " if pretty else ""
    return "<xml>" + separator + separator.join(parts) + ("\n" if pretty else "") + "</xml>"


MODES = st.sampled_from(["plain", "safe", "compatible"])


def signed_post(
    player: WeChatPlayer, xml: str, mode: str, *, base64_body: bool = False
) -> tuple[dict[str, str], str, dict[str, Any]]:
    """(query, body, event) of a POST signed as WeChat signs it, in ``mode``."""
    if mode == "plain":
        query, body = player.message(xml)
    else:
        query, body = player.message(xml, encrypted=True)
        if mode == "compatible":  # the plaintext fields and Encrypt side by side
            encrypt = parse_xml(body)["Encrypt"]
            body = xml.replace("</xml>", f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>")
    return query, body, apigw_event("POST", PATH, query, body, base64_body=base64_body)


def signed(signature: str | None, *parts: str) -> bool:
    """Whether ``signature`` is app A's signature of ``parts`` (never, when one of them has no
    UTF-8 form: a lone surrogate)."""
    try:
        return signature == sha1_signature(TOKEN, *parts)
    except UnicodeEncodeError:
        return False


def envelope(encrypt: str) -> str:
    return f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt>{cdata(encrypt)}</Encrypt></xml>"


# --- 1. anything at all ---------------------------------------------------------------------
QUERY = st.dictionaries(
    st.one_of(
        st.sampled_from(
            ["signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature", "openid"]
        ),
        WIDE_TEXT,
    ),
    st.one_of(QUERY_TEXT, st.from_regex(r"[0-9a-f]{40}", fullmatch=True), number(0, 2 * 10**9)),
    max_size=7,
)
BODY = st.one_of(st.none(), WIDE_TEXT, st.binary(max_size=200), XML_TEXT.map(lambda t: f"<xml>{t}</xml>"))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    appid=st.one_of(st.sampled_from([APPID_A, APPID_B, "wx9999999999999999"]), WIDE_TEXT, LONG_TEXT),
    route=st.sampled_from(["wechat", "token", "other"]),
    query=QUERY,
    body=BODY,
    base64_body=st.booleans(),
)
def test_any_request_gets_an_answer_and_unsigned_ones_on_a_known_app_get_403(
    webhook, method, appid, route, query, body, base64_body
):
    raw = body if isinstance(body, bytes) else (body or "").encode("utf-8", "surrogatepass")
    event = apigw_event(method, f"/{route}/{appid}", query, body if isinstance(body, str) else None)
    if body is not None and (base64_body or isinstance(body, bytes)):
        event |= {"body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    # A random query is not signed with app A's Token (a SHA-1 preimage away).
    assume(not signed(query.get("signature"), query.get("timestamp", ""), query.get("nonce", "")))

    response = webhook(event)

    if route == "wechat" and appid == APPID_A and method in ("GET", "POST"):
        assert response["statusCode"] == 403, response


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST"]),
    timestamp=st.one_of(
        ODD_TIMESTAMP, st.builds(lambda d: str(int(time.time()) + d), st.integers(-400, 400))
    ),
    nonce=st.one_of(QUERY_TEXT, number(0, 10**10)),
    signature=st.one_of(QUERY_TEXT, st.from_regex(r"[0-9a-f]{40}", fullmatch=True)),
    extra=st.dictionaries(st.sampled_from(["echostr", "encrypt_type", "msg_signature"]), QUERY_TEXT),
    body=st.one_of(st.none(), ANY_TEXT, XML_TEXT.map(lambda t: f"<xml>{t}</xml>")),
)
def test_unsigned_requests_with_any_timestamp_nonce_or_signature_get_403(
    webhook, method, timestamp, nonce, signature, extra, body
):
    # The query's three signed values, each anything at all (any script's digits, thousands of
    # characters, lone surrogates): all WeChat never sends, none signed with app A's Token.
    assume(not signed(signature, timestamp, nonce))
    query = {**extra, "timestamp": timestamp, "nonce": nonce, "signature": signature}

    response = webhook(apigw_event(method, PATH, query, body if method == "POST" else None))

    assert response["statusCode"] == 403, response
    assert response["body"] == "forbidden"


# --- 2. signed, then spoiled ----------------------------------------------------------------
@st.composite
def spoiled(draw: st.DrawFn, query: dict[str, str], encrypted: bool) -> tuple[dict[str, str], str | None]:
    """``query`` with its signature made wrong in one way, and a replacement Encrypt (or None)."""
    targets = ["signature", "timestamp", "nonce", "stale", "drop signature", "other digits"]
    if encrypted:
        targets += ["msg_signature", "drop msg_signature", "Encrypt"]
    target = draw(st.sampled_from(targets))
    query = dict(query)
    if target in ("signature", "msg_signature"):
        query[target] = draw(st.one_of(QUERY_TEXT, st.from_regex(r"[0-9a-f]{40}", fullmatch=True)))
    elif target.startswith("drop "):
        del query[target.removeprefix("drop ")]
    elif target == "timestamp":  # still inside the 300 s window, but not what was signed
        query["timestamp"] = str(int(query["timestamp"]) + draw(st.integers(-250, 250).filter(bool)))
    elif target == "nonce":
        query["nonce"] = draw(QUERY_TEXT.filter(lambda n: n != query["nonce"]))
    elif target == "other digits":  # fresh and signed, but not in the ASCII digits WeChat writes
        stamp = query["timestamp"].translate(draw(OTHER_DIGITS))
        query |= {"timestamp": stamp, "signature": sha1_signature(TOKEN, stamp, query["nonce"])}
    elif target == "stale":  # correctly signed, but outside the timestamp window
        stamp = str(int(time.time()) + draw(st.sampled_from([-1, 1])) * draw(st.integers(301, 10**8)))
        query |= {"timestamp": stamp, "signature": sha1_signature(TOKEN, stamp, query["nonce"])}
    else:  # a different ciphertext under the original msg_signature
        other = MessageCrypto(AES_KEY, APPID_A).encrypt(draw(XML_TEXT))
        return query, other
    return query, None


@FUZZ
@given(fields=wechat_messages(), mode=MODES, verification=st.booleans(), data=st.data())
def test_requests_whose_signature_does_not_match_get_403(webhook, player, fields, mode, verification, data):
    xml = assemble(fields, msg_id=next(_msg_ids))
    if verification:
        query, body = player.verification(data.draw(ANY_TEXT.filter(bool), label="echostr")), None
    else:
        query, body, _ = signed_post(player, xml, mode)
    encrypted = not verification and mode != "plain"
    bad_query, other_encrypt = data.draw(spoiled(query, encrypted), label="spoiled")
    if other_encrypt is not None:
        body = envelope(other_encrypt)
    # The spoiled parts really do not match (WeChat's concatenation can collide by accident).
    timestamp = bad_query.get("timestamp", "")
    sig_ok = (
        signed(bad_query.get("signature"), timestamp, bad_query.get("nonce", ""))
        and timestamp.isascii()
        and abs(int(timestamp or 0) - time.time()) < 290
    )
    msg_ok = not encrypted or (
        other_encrypt is None
        and signed(
            bad_query.get("msg_signature"),
            bad_query["timestamp"],
            bad_query["nonce"],
            parse_xml(body)["Encrypt"],
        )
    )
    assume(not (sig_ok and msg_ok))

    response = webhook(apigw_event("GET" if verification else "POST", PATH, bad_query, body))

    assert response["statusCode"] == 403, response
    assert response["body"] == "forbidden"


# --- 3. signed, well-formed messages --------------------------------------------------------
# The one property whose requests reach the dedup store: on each store.
@pytest.mark.parametrize("webhook", ["ssm", "redis", "dynamodb"], indirect=True)
@FUZZ
@given(
    fields=wechat_messages(),
    mode=MODES,
    with_msg_id=st.booleans(),
    pretty=st.booleans(),
    base64_body=st.booleans(),
)
def test_signed_wellformed_messages_get_200_and_a_readable_reply(
    webhook, player, fields, mode, with_msg_id, pretty, base64_body
):
    is_event = parse_xml(assemble(fields, msg_id=None))["MsgType"].lower() == "event"
    # Events without a MsgId are deduplicated by FromUserName + CreateTime + Event (WeChat's
    # rule), so a random one may be a "retry" of an earlier example: answered as that one was.
    new_delivery = not is_event or with_msg_id
    xml = assemble(fields, msg_id=next(_msg_ids) if new_delivery else None, pretty=pretty)
    _, _, event = signed_post(player, xml, mode, base64_body=base64_body)

    response = webhook(event)

    assert response["statusCode"] == 200, (response, xml)
    if response["body"] == "success":
        return
    reply = parse_xml(player.decrypt_reply(response["body"]) if mode != "plain" else response["body"])
    sent = parse_xml(xml)
    assert reply["ToUserName"] == sent["FromUserName"]
    if new_delivery:
        assert reply["FromUserName"] == sent["ToUserName"]
    if sent["MsgType"] == "text":  # the shipped handler echoes text
        assert reply["Content"] == sent.get("Content", "")


# Three invocations an example: on Redis only and a third of the examples, to keep the ci
# profile's time (tests/integration/test_webhook.py runs the same cases on DynamoDB too).
@pytest.mark.parametrize("webhook", ["redis"], indirect=True)
@settings(FUZZ, max_examples=FUZZ.max_examples // 3)
@given(fields=wechat_messages(), other=wechat_messages(), base64_body=st.booleans())
def test_a_plain_mode_query_is_good_for_one_body_only(webhook, player, fields, other, base64_body):
    # Plain mode signs no body: the query of a delivery, sent again with another body, is
    # refused; with the same body (WeChat's retry, base64-encoded by API Gateway or not) it
    # gets the first answer.
    xml = assemble(fields, msg_id=next(_msg_ids))
    query, body, event = signed_post(player, xml, "plain")
    first = webhook(event)
    assert first["statusCode"] == 200, first

    forged = webhook(apigw_event("POST", PATH, query, assemble(other, msg_id=next(_msg_ids))))
    retry = webhook(apigw_event("POST", PATH, query, body, base64_body=base64_body))

    assert forged["statusCode"] == 403, forged
    assert (retry["statusCode"], retry["body"]) == (200, first["body"])


# --- 4. signed, hostile or malformed bodies -------------------------------------------------
ENTITY_NAME = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)


@st.composite
def with_dtd(draw: st.DrawFn, xml: str) -> str:
    """``xml`` behind a DOCTYPE: internal entities (billion laughs), external ones, or bare."""
    name = draw(ENTITY_NAME)
    kind = draw(st.sampled_from(["bare", "internal", "laughs", "system", "public", "parameter"]))
    if kind == "bare":
        return f"<!DOCTYPE xml>{xml}"
    if kind == "laughs":
        levels = draw(st.integers(1, 12))
        decls = [f'<!ENTITY {name}0 "lol">'] + [
            f'<!ENTITY {name}{i} "{f"&{name}{i - 1};" * 10}">' for i in range(1, levels)
        ]
        use = f"&{name}{levels - 1};"
    elif kind == "internal":
        decls, use = [f'<!ENTITY {name} "{escape(draw(XML_TEXT), {chr(34): "&quot;"})}">'], f"&{name};"
    elif kind == "system":
        url = draw(st.sampled_from(["file:///etc/passwd", "http://169.254.169.254/latest/meta-data/", "x"]))
        decls, use = [f'<!ENTITY {name} SYSTEM "{url}">'], f"&{name};"
    elif kind == "public":
        decls, use = [f'<!ENTITY {name} PUBLIC "-//x//y" "http://example.com/x.dtd">'], f"&{name};"
    else:
        decls, use = [f'<!ENTITY % {name} SYSTEM "http://example.com/x.dtd"> %{name};'], ""
    body = xml.replace("</xml>", f"<Content>{use}</Content></xml>") if use else xml
    return f'<?xml version="1.0"?><!DOCTYPE xml [{"".join(decls)}]>{body}'


HOSTILE = (
    "dtd",
    "deep",
    "wrong root",
    "repeated field",
    "missing field",
    "bad number",
    "cut short",
    "over the limit",
    "random bytes",
    "latin-1",
)


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[str, bytes, int]:
    """(what, body, the status it must get) — every one of them properly signed."""
    fields = draw(wechat_messages())
    xml = assemble(fields, msg_id=next(_msg_ids))
    what = draw(st.sampled_from(HOSTILE))
    if what == "dtd":
        return what, draw(with_dtd(xml)).encode(), 400
    if what == "deep":  # WeChat nests 4 levels; anything past 8 is refused
        depth = draw(st.integers(9, 400))
        names = draw(st.lists(TAG, min_size=1, max_size=3))
        tags = list(itertools.islice(itertools.cycle(names), depth))
        chain = "".join(f"<{t}>" for t in tags) + "x" + "".join(f"</{t}>" for t in reversed(tags))
        return what, xml.replace("</xml>", chain + "</xml>").encode(), 400
    if what == "wrong root":
        root = draw(TAG)
        return what, f"<{root}>{xml.removeprefix('<xml>').removesuffix('</xml>')}</{root}>".encode(), 400
    if what == "repeated field":
        # WeChat's own (leaf) fields; a repeated nested one is not refused, see
        # test_a_repeated_nested_top_level_field_is_refused.
        tag, field_xml = draw(st.sampled_from([f for f in fields if f[0] in KNOWN_FIELDS]))
        return what, xml.replace("</xml>", field_xml + "</xml>").encode(), 400
    if what == "missing field":
        gone = draw(st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType"]))
        kept = [f for f in fields if f[0] != gone]
        return what, assemble(kept, msg_id=next(_msg_ids)).encode(), 400
    if what == "bad number":
        tag = draw(st.sampled_from(["CreateTime", "MsgId"]))
        value = draw(st.one_of(st.just(""), st.just("-1"), st.just("1.5"), st.just("9" * 21), ANY_TEXT))
        text = parse_xml(f"<xml><v>{cdata(value)}</v></xml>").get("v", "")  # as the parser will read it
        assume(not (text.isascii() and text.isdigit() and len(text) <= 20))
        assume(text or tag != "MsgId")  # an empty MsgId is no MsgId (events have none)
        kept = [f for f in fields if f[0] != tag] + [(tag, f"<{tag}>{cdata(value)}</{tag}>")]
        return what, assemble(kept, msg_id=None if tag == "MsgId" else next(_msg_ids)).encode(), 400
    if what == "cut short":
        raw = xml.encode()
        return what, raw[: draw(st.integers(0, len(raw) - 1))], 400
    if what == "over the limit":
        pad = MAX_BODY - len(xml.encode()) + draw(st.integers(1, 4096))
        return what, xml.replace("</xml>", f"<Pad>{'a' * pad}</Pad></xml>").encode(), 413
    if what == "random bytes":
        return what, draw(st.binary(max_size=300)), 400
    # latin-1 bytes: readable with an encoding declaration, else (non-ASCII) not UTF-8
    declared = draw(st.booleans())
    body = xml.encode("latin-1", errors="replace")
    if declared:
        return what, b'<?xml version="1.0" encoding="ISO-8859-1"?>' + body, -1
    return what, body, -1


@FUZZ
@given(case=hostile_bodies(), mode=st.sampled_from(["plain", "safe"]), base64_body=st.booleans())
def test_signed_hostile_or_malformed_bodies_get_400_or_413(webhook, player, case, mode, base64_body):
    what, body, status = case
    if mode == "safe" and what != "over the limit":
        # The same body, encrypted: what arrives is a valid envelope around it.
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = body.decode("latin-1")
        query, envelope_xml = player.message(text, encrypted=True)
        event = apigw_event("POST", PATH, query, envelope_xml, base64_body=base64_body)
    else:
        query = player.query()
        event = apigw_event("POST", PATH, query, None)
        event |= {"body": base64.b64encode(body).decode(), "isBase64Encoded": True}
        if not base64_body:
            # API Gateway base64-encodes a body that is not UTF-8; the others, as it likes.
            with contextlib.suppress(UnicodeDecodeError):
                event |= {"body": body.decode(), "isBase64Encoded": False}

    response = webhook(event)

    if status == -1:
        assert response["statusCode"] in (200, 400), (what, response)
    else:
        assert response["statusCode"] == status, (what, response)


def test_a_repeated_nested_top_level_field_is_refused(webhook, player):
    # parse_xml's docstring: MalformedMessage for a body that "repeats a top-level element".
    xml = (
        "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>text</MsgType><Content>x</Content><MsgId>42</MsgId>"
        "<Extra><A>1</A></Extra><Extra><A>2</A></Extra></xml>"
    )
    query, body = player.message(xml)

    response = webhook(apigw_event("POST", PATH, query, body))

    assert response["statusCode"] == 400


# --- 5. signed ciphertexts that are not this app's ------------------------------------------
FOREIGN = ("random base64", "not base64", "another appid", "another key", "cut short", "flipped bits")


@st.composite
def foreign_ciphertexts(draw: st.DrawFn, xml: str) -> tuple[str, str, tuple[int, ...]]:
    """(what, Encrypt value, allowed statuses)."""
    what = draw(st.sampled_from(FOREIGN))
    good = MessageCrypto(AES_KEY, APPID_A).encrypt(xml)
    if what == "random base64":
        return what, base64.b64encode(draw(st.binary(max_size=512))).decode(), (400,)
    if what == "not base64":
        text = draw(XML_TEXT.filter(lambda t: t.strip() != ""))
        return what, text, (400,)
    if what == "another appid":
        appid = draw(st.sampled_from([APPID_B, "wx9999999999999999", APPID_A[:-1], APPID_A + "0"]))
        return what, MessageCrypto(AES_KEY, appid).encrypt(xml), (400,)
    if what == "another key":
        key = draw(st.from_regex(r"[A-Za-z0-9]{42}[AQgw]", fullmatch=True).filter(lambda k: k != AES_KEY))
        return what, MessageCrypto(key, APPID_A).encrypt(xml), (400,)
    if what == "cut short":
        return what, good[: draw(st.integers(1, len(good) - 1))], (400,)
    raw = bytearray(base64.b64decode(good))
    for bit in draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=8, unique=True)):
        raw[bit // 8] ^= 1 << (bit % 8)
    # A flipped bit in the random prefix's block lands in the message: it may still read.
    return what, base64.b64encode(bytes(raw)).decode(), (200, 400)


@FUZZ
@given(fields=wechat_messages(), data=st.data())
def test_signed_ciphertexts_that_are_not_this_apps_get_400(webhook, player, fields, data):
    xml = assemble(fields, msg_id=next(_msg_ids))
    what, encrypt, allowed = data.draw(foreign_ciphertexts(xml), label="ciphertext")
    query = player.query()
    query |= {
        "encrypt_type": "aes",
        "msg_signature": sha1_signature(TOKEN, query["timestamp"], query["nonce"], encrypt),
    }

    response = webhook(apigw_event("POST", PATH, query, envelope(encrypt)))

    assert response["statusCode"] in allowed, (what, response)
    if response["statusCode"] == 400:
        assert response["body"] == "bad request"


# --- 6. URL verification --------------------------------------------------------------------
@FUZZ
@given(
    echostr=st.one_of(
        ANY_TEXT.filter(bool), st.builds(operator.mul, ANY_TEXT.filter(bool), st.integers(100, 2000))
    ),
    extra=QUERY,
)
def test_url_verification_answers_any_echostr_unchanged(webhook, player, echostr, extra):
    query = {**extra, **player.verification(echostr)}

    response = webhook(apigw_event("GET", PATH, query))

    assert response["statusCode"] == 200, response
    assert response["body"] == echostr


# --- 7. Open Platform -------------------------------------------------------------------------
def component_signed(signature: str | None, *parts: str) -> bool:
    """Whether ``signature`` is the platform's signature of ``parts``."""
    try:
        return signature == sha1_signature(COMPONENT_TOKEN, *parts)
    except UnicodeEncodeError:
        return False


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    component=st.one_of(st.sampled_from([COMPONENT, APPID_A, "wx9999999999999999"]), WIDE_TEXT),
    last=st.one_of(st.sampled_from(["events", "wx4444444444444444", APPID_A]), WIDE_TEXT, LONG_TEXT),
    query=QUERY,
    body=BODY,
)
def test_any_request_to_open_gets_a_4xx_unless_the_platform_signed_it(
    webhook, method, component, last, query, body
):
    assume("/" not in component and "/" not in last and component and last)
    event = apigw_event(method, f"/open/{component}/{last}", query, body if isinstance(body, str) else None)
    assume(not component_signed(query.get("signature"), query.get("timestamp", ""), query.get("nonce", "")))

    response = webhook(event)

    routed = method == "POST" or (method == "GET" and last != "events")
    if routed and component == COMPONENT:
        expected = 400 if last != "events" and not is_appid(last) else 403
        assert response["statusCode"] == expected, response


# XML turns a CR into a LF, even in CDATA (XML 1.0 §2.11): WeChat's tickets have neither.
TICKET_TEXT = NONEMPTY_XML_TEXT.filter(lambda t: t.strip() == t and "\r" not in t)
PUSH_FIELDS = {"AppId", "CreateTime", "InfoType", "ComponentVerifyTicket", "AuthorizerAppid"}
EXTRA_PUSH_FIELDS = EXTRA_FIELDS.filter(lambda fields: not any(tag in PUSH_FIELDS for tag, _ in fields))
_create_times = itertools.count(0)


@FUZZ
@given(ticket=TICKET_TEXT, fields=EXTRA_PUSH_FIELDS, as_cdata=st.booleans())
@pytest.mark.parametrize("webhook", ["redis"], indirect=True)
def test_a_signed_ticket_push_stores_any_ticket_as_sent(webhook, ticket, fields, as_cdata):
    from wxtoken.config import Settings
    from wxtoken.store import open_store
    from wxtoken.store.base import RecordName

    created = int(time.time()) + next(_create_times)  # each example newer than the last
    extra = "".join(render(tag, content) for tag, content in fields)
    xml = (
        f"<xml><AppId>{cdata(COMPONENT)}</AppId><CreateTime>{created}</CreateTime>"
        f"<InfoType>{cdata('component_verify_ticket')}</InfoType>"
        f"<ComponentVerifyTicket>{leaf(ticket, as_cdata)}</ComponentVerifyTicket>{extra}</xml>"
    )
    query, body = WeChatPlayer(COMPONENT, COMPONENT_TOKEN, AES_KEY).component_push(xml)

    response = webhook(apigw_event("POST", f"/open/{COMPONENT}/events", query, body))

    assert (response["statusCode"], response["body"]) == (200, "success"), response
    stored = open_store(Settings.from_env()).read(COMPONENT, RecordName.COMPONENT_VERIFY_TICKET)
    assert stored == {"ticket": ticket, "expires_at": created + 43200, "fetched_at": created}


@FUZZ
@given(info_type=TICKET_TEXT, fields=EXTRA_PUSH_FIELDS)
def test_a_signed_push_of_any_other_info_type_is_answered_success(webhook, info_type, fields):
    assume(
        info_type.strip() not in ("component_verify_ticket", "authorized", "updateauthorized", "unauthorized")
    )
    extra = "".join(render(tag, content) for tag, content in fields)
    xml = (
        f"<xml><AppId>{cdata(COMPONENT)}</AppId><CreateTime>{int(time.time())}</CreateTime>"
        f"<InfoType>{cdata(info_type)}</InfoType>{extra}</xml>"
    )
    query, body = WeChatPlayer(COMPONENT, COMPONENT_TOKEN, AES_KEY).component_push(xml)

    response = webhook(apigw_event("POST", f"/open/{COMPONENT}/events", query, body))

    assert (response["statusCode"], response["body"]) == (200, "success"), response
