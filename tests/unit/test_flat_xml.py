"""The pyexpat reader reads every document as the defusedxml tree walk it replaced did:
the same dict, or a refusal for both (differential, on generated documents, hostile ones
included)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError
from xml.parsers.expat import ExpatError

import pytest
from defusedxml.ElementTree import fromstring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wxtoken.errors import MalformedMessage
from wxtoken.wechat.flat_xml import _read_plain_shape, parse_flat, read_with_expat
from wxtoken.wechat.messages import parse_xml

MAX_DEPTH = 8


def reference(body: bytes | str) -> dict[str, str]:
    """The reading before pyexpat: defusedxml's tree, walked (wxtoken 0.1's parse_xml)."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, ValueError, LookupError):
        raise MalformedMessage from None
    if root.tag != "xml":
        raise MalformedMessage
    out: dict[str, str] = {}
    seen: set[str] = set()
    for child in root:
        if child.tag in seen:
            raise MalformedMessage
        seen.add(child.tag)
        if len(child):
            _flatten(child, child.tag, out)
        else:
            out[child.tag] = child.text or ""
    return out


def _flatten(parent: Element, prefix: str, out: dict[str, str]) -> None:
    stack = [(parent, prefix, 1)]
    while stack:
        element, key, depth = stack.pop()
        if not len(element):
            out.setdefault(key, element.text or "")
            continue
        if depth >= MAX_DEPTH:
            raise MalformedMessage
        stack.extend((sub, f"{key}.{sub.tag}", depth + 1) for sub in reversed(element))


def outcome(parse, body: bytes | str) -> dict[str, str] | str:
    try:
        return parse(body)
    except MalformedMessage:
        return "refused"


TAGS = st.sampled_from(
    ["A", "B", "C", "D", "E", "F", "Content", "MsgType", "ToUserName", "A.B", "item", "x:A", "xml", "_1"]
)
VALID_TEXTS = st.one_of(
    st.sampled_from(["", " ", "hello", "你好", "a&amp;b", "&lt;x&gt;", "&#13;", "&#x4F60;", "\r\n"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), max_size=12).map(
        lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace("]]>", "]]&gt;")
    ),
)
# What no well-formed document holds: ']]>' in content, an undefined entity, a control character.
HOSTILE_TEXTS = st.sampled_from(["]]>", "&undefined;", "\x00", "&#0;", "<", "&"])
TEXTS = st.one_of(*[VALID_TEXTS] * 9, HOSTILE_TEXTS)
PIECES = st.one_of(
    TEXTS,
    TEXTS.map(lambda t: f"<![CDATA[{t.replace(']]>', '')}]]>"),
    st.sampled_from(["<!-- note -->", "<?pi data?>", "\n  "]),
)


@st.composite
def element(draw: st.DrawFn, depth: int) -> str:
    tag = draw(TAGS)
    namespace = ' xmlns:x="urn:x"' if tag.startswith("x:") or (draw(st.booleans()) and depth < 2) else ""
    if depth >= 11 or draw(st.integers(0, 3)) == 0:
        inner = "".join(draw(st.lists(PIECES, max_size=3)))
    else:
        parts = draw(st.lists(st.one_of(PIECES, element(depth + 1)), max_size=4))
        inner = "".join(parts)
    return f"<{tag}{namespace}>{inner}</{tag}>"


PROLOGUES = st.sampled_from(
    [
        *[""] * 12,
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0"?>',
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        '<?xml version="1.0" encoding="windows-1252"?>',
        '<?xml version="1.0" encoding="GBK"?>',
        '<?xml version="1.0" encoding="no-such-codec"?>',
        '<?xml version="1.0" encoding="cp037"?>',
        '<?xml version="1.0" encoding="koi8-r"?>',
        '<!DOCTYPE xml [<!ENTITY a "aaaa">]>',
        '<!DOCTYPE xml SYSTEM "http://example.com/x.dtd">',
    ]
)


@st.composite
def documents(draw: st.DrawFn) -> bytes | str:
    root = draw(st.sampled_from(["xml"] * 8 + ["XML", "x:xml"]))
    children = "".join(draw(st.lists(st.one_of(element(1), PIECES), max_size=6)))
    namespace = ' xmlns:x="urn:x"' if root.startswith("x:") or draw(st.booleans()) else ""
    after = draw(st.sampled_from(["", "", "", "", " ", "<a/>", "junk"]))
    text = f"{draw(PROLOGUES)}<{root}{namespace}>{children}</{root}>{after}"
    form = draw(st.sampled_from(["str", "utf-8", "latin-1", "utf-16"]))
    if form == "str":
        return text
    return text.encode(form, errors="replace")


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=documents())
def test_the_reader_agrees_with_the_tree_walk_on_any_document(body):
    assert outcome(parse_xml, body) == outcome(reference, body)


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><ToUserName><![CDATA[gh]]></ToUserName><Content><![CDATA[a]]>b<!--c-->d</Content></xml>",
        b"<xml><A><B>1</B><B>2</B></A><A.B>3</A.B></xml>",
        b"<xml><A.B>3</A.B><A><B>1</B></A></xml>",
        b'<xml xmlns="urn:d"><A>1</A></xml>',
        b'<xml><y:A xmlns:y="urn:y">1</y:A></xml>',
        b'<?xml version="1.0" encoding="windows-1252"?><xml><A>\x80</A></xml>',
        b"<xml>" + b"<a>" * 9 + b"x" + b"</a>" * 9 + b"</xml>",
        b"<xml>" + b"<a>" * 8 + b"x" + b"</a>" * 8 + b"</xml>",
        "<xml><A>\ud800</A></xml>",
    ],
    ids=[
        "cdata-comment",
        "nested-then-dotted",
        "dotted-then-nested",
        "default-ns",
        "prefixed-ns",
        "cp1252",
        "too-deep",
        "deep-enough",
        "surrogate",
    ],
)
def test_known_shapes_read_alike(body):
    assert outcome(parse_xml, body) == outcome(reference, body)


def test_a_dtd_is_refused_before_anything_is_read():
    with pytest.raises(ValueError, match="DTD"):
        parse_flat(b'<!DOCTYPE xml [<!ENTITY a "x">]><xml><A>&a;</A></xml>', MAX_DEPTH)


def test_broken_xml_is_expats_error():
    with pytest.raises(ExpatError):
        parse_flat(b"<xml><A></xml>", MAX_DEPTH)


# --- the plain-shape shortcut reads what expat reads, whenever it reads anything -----------
SHAPE_TAGS = st.sampled_from(["ToUserName", "MsgType", "Content", "A", "_x", "A1", "xml", "Encrypt"])
# Characters at the edges of what the shape admits: markup, line ends, controls, non-characters.
EDGY = st.sampled_from(
    [
        "&",
        "<",
        ">",
        "]",
        "]]",
        "]]>",
        "\r",
        "\r\n",
        "\n",
        "\t",
        " ",
        "\x00",
        "\x0b",
        "\x1f",
        "\x7f",
        "\ufffe",
        "\uffff",
        "\ufffd",
        "\ud800",
        "你好",
        "😀",
        "&amp;",
        "&#13;",
        "<![CDATA[",
        "</A>",
        "=",
    ]
)
SHAPE_TEXTS = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="&<]"), max_size=8),
    st.text(st.characters(codec="utf-8", exclude_characters="\r]"), max_size=8),
    st.lists(st.one_of(EDGY, st.text(max_size=6)), max_size=4).map("".join),
)


@st.composite
def plain_shapes(draw: st.DrawFn) -> bytes | str:
    """WeChat's flat shape, mostly, with every kind of character in its leaves."""
    space = st.sampled_from(["", "", "", "", "", "", " ", "\n", "\r\n", "\t", "\x0c"])
    leaves = []
    # Repeated tags now and then (expat refuses those), distinct ones mostly.
    for tag in draw(st.lists(SHAPE_TAGS, max_size=7, unique=draw(st.integers(0, 9)) > 0)):
        content = draw(SHAPE_TEXTS)
        inner = f"<![CDATA[{content}]]>" if draw(st.booleans()) else content
        close = tag if draw(st.integers(0, 30)) else draw(SHAPE_TAGS)
        leaves.append(f"{draw(space)}<{tag}>{inner}</{close}>")
    text = f"<xml>{''.join(leaves)}{draw(space)}</xml>{draw(space)}"
    form = draw(st.sampled_from(["str", "utf-8", "utf-8", "latin-1"]))
    if form == "str":
        return text
    return text.encode(form, errors="surrogatepass" if form == "utf-8" else "replace")


def expat_outcome(body: bytes | str) -> dict[str, str] | str:
    try:
        return read_with_expat(body, MAX_DEPTH)
    except (ExpatError, ValueError, LookupError):
        return "refused"


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=plain_shapes())
def test_the_plain_shape_reads_what_expat_reads(body):
    shortcut = _read_plain_shape(body)
    if shortcut is not None:
        assert shortcut == expat_outcome(body)


def test_wechats_own_bodies_take_the_shortcut():
    # Given the bodies WeChat sends (a text message, a safe-mode envelope, an event)
    bodies = [
        b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"
        b"<CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        b"<Content><![CDATA[a < b & c]]></Content><MsgId>1234567890123456</MsgId></xml>",
        b"<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n"
        b"  <Encrypt><![CDATA[AbC+/==]]></Encrypt>\n</xml>",
        "<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"
        "<EventKey><![CDATA[qrscene_你好]]></EventKey></xml>".encode(),
    ]
    for body in bodies:
        # Then the shortcut reads each, as expat does
        assert _read_plain_shape(body) is not None
        assert _read_plain_shape(body) == read_with_expat(body, MAX_DEPTH)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><xml><A>1</A></xml>',
        b"<xml><A><B>1</B></A></xml>",
        b"<xml><A>1</A><A>2</A></xml>",
        b"<xml><A>a&amp;b</A></xml>",
        b"<xml><A>a\r\nb</A></xml>",
        b"<xml><A>\xff</A></xml>",
        b"<xml><A><![CDATA[x]]>y</A></xml>",
        b"<xml><A/></xml>",
        b'<xml><A x="1">1</A></xml>',
        b"<xml><A>1</A></xml><!-- c -->",
        b" <xml><A>1</A></xml>",
    ],
    ids=[
        "declaration",
        "nested",
        "repeated",
        "entity",
        "carriage-return",
        "not-utf8",
        "mixed",
        "empty-element",
        "attribute",
        "comment-after",
        "space-before",
    ],
)
def test_anything_else_goes_to_expat(body):
    assert _read_plain_shape(body) is None
