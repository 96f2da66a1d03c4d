"""Passive replies: WeChat's documented XML (被动回复用户消息), CDATA that survives any text."""

import pytest
from defusedxml import ElementTree
from hypothesis import given, settings
from hypothesis import strategies as st

from wxtoken.wechat.messages import parse_message, parse_xml
from wxtoken.wechat.replies import (
    SUCCESS,
    Article,
    ImageReply,
    MusicReply,
    NewsReply,
    Reply,
    TextReply,
    TransferCustomerServiceReply,
    VideoReply,
    VoiceReply,
    cdata,
    encrypted_reply,
    reply_to,
)

HEAD = {"ToUserName": "toUser", "FromUserName": "fromUser", "CreateTime": "12345678"}


def render(reply: Reply) -> str:
    return reply.render(to_user="toUser", from_user="fromUser", create_time=12345678)


def test_text_reply_is_the_documented_xml():
    assert render(TextReply("你好")) == (
        "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName>"
        "<CreateTime>12345678</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[你好]]></Content></xml>"
    )


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (TextReply("你好"), {"MsgType": "text", "Content": "你好"}),
        (ImageReply("media_id"), {"MsgType": "image", "Image.MediaId": "media_id"}),
        (VoiceReply("media_id"), {"MsgType": "voice", "Voice.MediaId": "media_id"}),
        (
            VideoReply("media_id", title="title", description="description"),
            {
                "MsgType": "video",
                "Video.MediaId": "media_id",
                "Video.Title": "title",
                "Video.Description": "description",
            },
        ),
        (
            VideoReply("media_id"),
            {"MsgType": "video", "Video.MediaId": "media_id", "Video.Title": "", "Video.Description": ""},
        ),
        (
            MusicReply("TITLE", "DESCRIPTION", "MUSIC_Url", "HQ_MUSIC_Url", "media_id"),
            {
                "MsgType": "music",
                "Music.Title": "TITLE",
                "Music.Description": "DESCRIPTION",
                "Music.MusicUrl": "MUSIC_Url",
                "Music.HQMusicUrl": "HQ_MUSIC_Url",
                "Music.ThumbMediaId": "media_id",
            },
        ),
        (
            NewsReply((Article("title1", "description1", "picurl", "url"),)),
            {
                "MsgType": "news",
                "ArticleCount": "1",
                "Articles.item.Title": "title1",
                "Articles.item.Description": "description1",
                "Articles.item.PicUrl": "picurl",
                "Articles.item.Url": "url",
            },
        ),
        (TransferCustomerServiceReply(), {"MsgType": "transfer_customer_service"}),
        (
            TransferCustomerServiceReply("test1@test"),
            {"MsgType": "transfer_customer_service", "TransInfo.KfAccount": "test1@test"},
        ),
    ],
    ids=["text", "image", "voice", "video", "video-defaults", "music", "news", "transfer", "transfer-to-kf"],
)
def test_each_reply_renders_wechats_fields(reply, expected):
    assert parse_xml(render(reply)) == {**HEAD, **expected}


def test_news_reply_lists_every_article_in_order():
    articles = tuple(Article(f"t{i}", f"d{i}", f"p{i}", f"u{i}") for i in range(1, 9))
    root = ElementTree.fromstring(render(NewsReply(articles)))
    assert root.findtext("ArticleCount") == "8"
    items = root.findall("Articles/item")
    assert [
        (i.findtext("Title"), i.findtext("Description"), i.findtext("PicUrl"), i.findtext("Url"))
        for i in items
    ] == [(a.title, a.description, a.pic_url, a.url) for a in articles]


@pytest.mark.parametrize("count", [0, 9])
def test_news_reply_needs_1_to_8_articles(count):
    with pytest.raises(ValueError, match="1 to 8"):
        NewsReply(tuple(Article("t") for _ in range(count)))


def test_news_reply_takes_a_list_and_stays_hashable():
    reply = NewsReply([Article("t")])  # type: ignore[arg-type]
    assert reply.articles == (Article("t"),)
    assert hash(reply) == hash(NewsReply((Article("t"),)))


def test_reply_to_swaps_sender_and_recipient():
    # Given a message from a follower to the account
    message = parse_message(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[oFollower]]></FromUserName>"
        "<CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>"
    )
    # When answered, then the reply goes back to the follower from the account
    fields = parse_xml(reply_to(message, TextReply("hello"), create_time=1348831861))
    assert (fields["ToUserName"], fields["FromUserName"], fields["CreateTime"]) == (
        "oFollower",
        "gh_account",
        "1348831861",
    )
    assert fields["Content"] == "hello"


def test_success_is_the_plain_no_reply():
    assert SUCCESS == "success"


def test_encrypted_reply_is_tencents_envelope():
    body = encrypted_reply(encrypt="abc+/=", signature="f" * 40, timestamp="1409304348", nonce="xxxxxx")
    assert body == (
        "<xml><Encrypt><![CDATA[abc+/=]]></Encrypt><MsgSignature><![CDATA[" + "f" * 40 + "]]></MsgSignature>"
        "<TimeStamp>1409304348</TimeStamp><Nonce><![CDATA[xxxxxx]]></Nonce></xml>"
    )
    assert parse_xml(body) == {
        "Encrypt": "abc+/=",
        "MsgSignature": "f" * 40,
        "TimeStamp": "1409304348",
        "Nonce": "xxxxxx",
    }


def test_encrypted_reply_refuses_a_timestamp_that_is_not_digits():
    with pytest.raises(ValueError, match="timestamp"):
        encrypted_reply(encrypt="a", signature="b", timestamp="1<2", nonce="c")


# --- CDATA ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "<![CDATA[plain]]>"),
        ("a]]>b", "<![CDATA[a]]]]><![CDATA[>b]]>"),
        ("a\x00b\x1b\ufffec\ud800", "<![CDATA[abc]]>"),
        ("a\rb", "<![CDATA[a]]>&#13;<![CDATA[b]]>"),
    ],
)
def test_cdata_splits_terminators_and_drops_illegal_characters(text, expected):
    assert cdata(text) == expected


def _legal_xml_char(c: str) -> bool:
    # XML 1.0 §2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
    n = ord(c)
    return n in (0x9, 0xA, 0xD) or 0x20 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or n >= 0x10000


_ANY_CHAR = st.characters(codec=None, categories=None)  # surrogates and controls included
_TRICKY = st.sampled_from(
    ["]]>", "]]", "]", ">", "<![CDATA[", "\r\n", "\r", "&amp;", "&#0;", "😀", "\x00", "\ufffe"]
)
_TEXT = st.lists(st.one_of(st.text(alphabet=_ANY_CHAR, max_size=10), _TRICKY), max_size=15).map("".join)


@settings(max_examples=100, deadline=None)
@given(content=_TEXT, user=_TEXT)
def test_any_text_round_trips_through_render_and_parse(content, user):
    fields = parse_xml(TextReply(content).render(to_user=user, from_user="gh", create_time=1))
    assert fields["Content"] == "".join(c for c in content if _legal_xml_char(c))
    assert fields["ToUserName"] == "".join(c for c in user if _legal_xml_char(c))
    assert fields["MsgType"] == "text"


def test_a_reply_type_whose_msg_type_is_not_a_wechat_word_is_refused_at_its_definition():
    from typing import ClassVar

    from wxtoken.wechat.replies import Reply

    with pytest.raises(TypeError, match="msg_type"):

        class Sneaky(Reply):
            msg_type: ClassVar[str] = "text]]><Injected>"

            def _body(self) -> str:
                return ""


@pytest.mark.parametrize(
    ("field", "value"), [("encrypt", "a]]>b"), ("signature", "f\r0"), ("nonce", "1<2")], ids=str
)
def test_an_envelope_value_outside_its_alphabet_is_refused(field, value):
    values = {"encrypt": "abc+/=", "signature": "f" * 40, "timestamp": "1409304348", "nonce": "123"}
    with pytest.raises(ValueError, match="base64"):
        encrypted_reply(**{**values, field: value})
