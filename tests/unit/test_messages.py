"""Callback XML: WeChat's documented messages and events, typed; hostile XML refused.

The bodies are the examples of WeChat's 接收普通消息 and 接收事件推送 pages.
"""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wxtoken.errors import MalformedMessage
from wxtoken.wechat.messages import (
    ClickEvent,
    Event,
    ImageMessage,
    LinkMessage,
    LocationEvent,
    LocationMessage,
    MassSendJobFinishEvent,
    Message,
    ScanEvent,
    ShortVideoMessage,
    SubscribeEvent,
    TemplateSendJobFinishEvent,
    TextMessage,
    UnknownEvent,
    UnknownMessage,
    UnsubscribeEvent,
    VideoMessage,
    ViewEvent,
    VoiceMessage,
    parse_encrypted_envelope,
    parse_message,
    parse_xml,
)
from wxtoken.wechat.replies import cdata

HEAD = (
    "<ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName>"
    "<CreateTime>1348831860</CreateTime>"
)


def xml(inner: str) -> str:
    return f"<xml>{HEAD}{inner}</xml>"


def event_xml(inner: str) -> str:
    return xml(f"<MsgType><![CDATA[event]]></MsgType>{inner}")


# --- ordinary messages ----------------------------------------------------------------------
def test_text_message():
    message = parse_message(
        b"<xml>\n  <ToUserName><![CDATA[toUser]]></ToUserName>\n"
        b"  <FromUserName><![CDATA[fromUser]]></FromUserName>\n"
        b"  <CreateTime>1348831860</CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n"
        b"  <Content><![CDATA[this is a test]]></Content>\n  <MsgId>1234567890123456</MsgId>\n"
        b"  <MsgDataId>xxxx</MsgDataId>\n  <Idx>xxxx</Idx>\n</xml>"
    )
    assert message == TextMessage(
        to_user="toUser",
        from_user="fromUser",
        create_time=1348831860,
        msg_type="text",
        msg_id=1234567890123456,
        fields=message.fields,
        content="this is a test",
    )
    assert message.fields["MsgDataId"] == "xxxx"  # undocumented-here fields stay reachable
    assert message.dedup_key == "msg:1234567890123456"


def test_text_content_keeps_its_surrounding_whitespace_and_markup():
    message = parse_message(xml("<MsgType>text</MsgType><Content><![CDATA[  <b>hi</b> & ]]></Content>"))
    assert isinstance(message, TextMessage)
    assert message.content == "  <b>hi</b> & "


def test_image_message():
    message = parse_message(
        xml(
            "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[this is a url]]></PicUrl>"
            "<MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId>"
        )
    )
    assert isinstance(message, ImageMessage)
    assert (message.pic_url, message.media_id, message.msg_id) == (
        "this is a url",
        "media_id",
        1234567890123456,
    )


def test_voice_message_with_recognition():
    message = parse_message(
        xml(
            "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[media_id]]></MediaId>"
            "<Format><![CDATA[Format]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition>"
            "<MsgId>1234567890123456</MsgId>"
        )
    )
    assert isinstance(message, VoiceMessage)
    assert (message.media_id, message.format, message.recognition) == ("media_id", "Format", "腾讯微信团队")


def test_voice_message_without_recognition():
    message = parse_message(
        xml("<MsgType>voice</MsgType><MediaId>m</MediaId><Format>amr</Format><MsgId>1</MsgId>")
    )
    assert isinstance(message, VoiceMessage)
    assert message.recognition is None


def test_video_message():
    message = parse_message(
        xml(
            "<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[media_id]]></MediaId>"
            "<ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId><MsgId>1234567890123456</MsgId>"
        )
    )
    assert type(message) is VideoMessage
    assert (message.media_id, message.thumb_media_id) == ("media_id", "thumb_media_id")


def test_shortvideo_message():
    message = parse_message(
        xml(
            "<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[media_id]]></MediaId>"
            "<ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId><MsgId>1234567890123456</MsgId>"
        )
    )
    assert type(message) is ShortVideoMessage
    assert (message.media_id, message.thumb_media_id) == ("media_id", "thumb_media_id")


def test_location_message():
    message = parse_message(
        xml(
            "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>"
            "<Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label>"
            "<MsgId>1234567890123456</MsgId>"
        )
    )
    assert isinstance(message, LocationMessage)
    assert (message.latitude, message.longitude, message.scale, message.label) == (
        23.134521,
        113.358803,
        20,
        "位置信息",
    )


def test_link_message():
    message = parse_message(
        xml(
            "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title>"
            "<Description><![CDATA[公众平台官网链接]]></Description><Url><![CDATA[url]]></Url>"
            "<MsgId>1234567890123456</MsgId>"
        )
    )
    assert isinstance(message, LinkMessage)
    assert (message.title, message.description, message.url) == (
        "公众平台官网链接",
        "公众平台官网链接",
        "url",
    )


def test_an_unknown_message_type_is_kept_with_all_its_fields():
    message = parse_message(
        xml("<MsgType><![CDATA[miniprogrampage]]></MsgType><AppId><![CDATA[wx1]]></AppId><MsgId>42</MsgId>")
    )
    assert type(message) is UnknownMessage
    assert message.msg_type == "miniprogrampage"
    assert message.fields["AppId"] == "wx1"
    assert message.dedup_key == "msg:42"


# --- events ---------------------------------------------------------------------------------
def test_subscribe_event():
    event = parse_message(event_xml("<Event><![CDATA[subscribe]]></Event>"))
    assert type(event) is SubscribeEvent
    assert (event.event, event.event_key, event.scene, event.ticket, event.msg_id) == (
        "subscribe",
        None,
        None,
        None,
        None,
    )


def test_subscribe_event_with_empty_event_key_is_an_ordinary_follow():
    event = parse_message(event_xml("<Event>subscribe</Event><EventKey><![CDATA[]]></EventKey>"))
    assert isinstance(event, SubscribeEvent)
    assert (event.event_key, event.scene) == (None, None)


def test_subscribe_event_through_a_qr_code_exposes_the_scene():
    event = parse_message(
        event_xml(
            "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey>"
            "<Ticket><![CDATA[TICKET]]></Ticket>"
        )
    )
    assert isinstance(event, SubscribeEvent)
    assert (event.event_key, event.scene, event.ticket) == ("qrscene_123123", "123123", "TICKET")


def test_unsubscribe_event():
    event = parse_message(event_xml("<Event><![CDATA[unsubscribe]]></Event>"))
    assert type(event) is UnsubscribeEvent
    assert event.event == "unsubscribe"


def test_scan_event_is_lower_cased_and_keeps_the_original():
    event = parse_message(
        event_xml(
            "<Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[SCENE_VALUE]]></EventKey>"
            "<Ticket><![CDATA[TICKET]]></Ticket>"
        )
    )
    assert isinstance(event, ScanEvent)
    assert (event.event, event.fields["Event"]) == ("scan", "SCAN")
    assert (event.event_key, event.ticket) == ("SCENE_VALUE", "TICKET")


def test_location_event():
    event = parse_message(
        event_xml(
            "<Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude>"
            "<Longitude>113.352425</Longitude><Precision>119.385040</Precision>"
        )
    )
    assert isinstance(event, LocationEvent)
    assert (event.event, event.latitude, event.longitude, event.precision) == (
        "location",
        23.137466,
        113.352425,
        119.38504,
    )


def test_click_event():
    event = parse_message(
        event_xml("<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[EVENTKEY]]></EventKey>")
    )
    assert type(event) is ClickEvent
    assert (event.event, event.event_key) == ("click", "EVENTKEY")


def test_view_event():
    event = parse_message(
        event_xml(
            "<Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[www.qq.com]]></EventKey>"
            "<MenuId>MENUID</MenuId>"
        )
    )
    assert isinstance(event, ViewEvent)
    assert (event.event, event.event_key, event.menu_id) == ("view", "www.qq.com", "MENUID")


def test_template_send_job_finish_event():
    event = parse_message(
        "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>"
        "<FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>"
        "<CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>"
        "<Status><![CDATA[success]]></Status></xml>"
    )
    assert isinstance(event, TemplateSendJobFinishEvent)
    assert (event.event, event.status, event.fields["MsgID"]) == (
        "templatesendjobfinish",
        "success",
        "200163836",
    )
    assert event.dedup_key == "evt:oia2TjuEGTNoeX76QEjQNrcURxG8:1395658920:templatesendjobfinish"


def test_mass_send_job_finish_event_with_nested_copyright_result():
    event = parse_message(
        "<xml><ToUserName><![CDATA[gh_4d00ed8d6399]]></ToUserName>"
        "<FromUserName><![CDATA[oV5CrjpxgaGXNHIQigzNlgLTnwic]]></FromUserName>"
        "<CreateTime>1481013459</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[MASSSENDJOBFINISH]]></Event><MsgID>1000001625</MsgID>"
        "<Status><![CDATA[err(30003)]]></Status><TotalCount>0</TotalCount><FilterCount>0</FilterCount>"
        "<SentCount>0</SentCount><ErrorCount>0</ErrorCount>"
        "<CopyrightCheckResult><Count>2</Count><ResultList>"
        "<item><ArticleIdx>1</ArticleIdx><UserDeclareState>0</UserDeclareState><AuditState>2</AuditState>"
        "<OriginalArticleUrl><![CDATA[Url_1]]></OriginalArticleUrl></item>"
        "<item><ArticleIdx>2</ArticleIdx><UserDeclareState>0</UserDeclareState><AuditState>2</AuditState>"
        "<OriginalArticleUrl><![CDATA[Url_2]]></OriginalArticleUrl></item>"
        "</ResultList><CheckState>2</CheckState></CopyrightCheckResult>"
        "<ArticleUrlResult><Count>1</Count><ResultList><item><ArticleIdx>1</ArticleIdx>"
        "<ArticleUrl><![CDATA[]]></ArticleUrl></item></ResultList></ArticleUrlResult></xml>"
    )
    assert isinstance(event, MassSendJobFinishEvent)
    assert event.event == "masssendjobfinish"
    assert (event.status, event.total_count, event.filter_count, event.sent_count, event.error_count) == (
        "err(30003)",
        0,
        0,
        0,
        0,
    )
    assert event.fields["CopyrightCheckResult.Count"] == "2"
    assert event.fields["CopyrightCheckResult.CheckState"] == "2"
    # Repeated list items: the first one is kept.
    assert event.fields["CopyrightCheckResult.ResultList.item.OriginalArticleUrl"] == "Url_1"


def test_mass_send_counts_are_none_when_absent():
    event = parse_message(event_xml("<Event>MASSSENDJOBFINISH</Event><Status>send success</Status>"))
    assert isinstance(event, MassSendJobFinishEvent)
    assert (event.total_count, event.filter_count, event.sent_count, event.error_count) == (None,) * 4


def test_an_unknown_event_is_kept_with_nested_fields_flattened():
    event = parse_message(
        event_xml(
            "<Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey>"
            "<ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>"
            "<ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>"
        )
    )
    assert type(event) is UnknownEvent
    assert (event.event, event.event_key) == ("scancode_push", "6")
    assert event.fields["ScanCodeInfo.ScanType"] == "qrcode"
    assert event.fields["ScanCodeInfo.ScanResult"] == "1"


def test_pic_sysphoto_event_flattens_the_picture_list():
    event = parse_message(
        event_xml(
            "<Event><![CDATA[pic_sysphoto]]></Event><EventKey><![CDATA[6]]></EventKey>"
            "<SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]>"
            "</PicMd5Sum></item></PicList></SendPicsInfo>"
        )
    )
    assert isinstance(event, UnknownEvent)
    assert event.fields["SendPicsInfo.Count"] == "1"
    assert event.fields["SendPicsInfo.PicList.item.PicMd5Sum"] == "1b5f7c23b5bf75682a53e7b6d163e185"


def test_an_event_without_event_name_is_an_unknown_event():
    event = parse_message(event_xml(""))
    assert isinstance(event, UnknownEvent)
    assert event.event == ""
    assert event.dedup_key == "evt:fromUser:1348831860:"


# --- dedup keys -----------------------------------------------------------------------------
def test_dedup_key_of_a_message_is_its_msg_id():
    message = parse_message(xml("<MsgType>text</MsgType><Content>a</Content><MsgId>99</MsgId>"))
    assert message.dedup_key == "msg:99"


def test_dedup_key_of_an_event_is_sender_time_and_event():
    # WeChat: "排重推荐使用FromUserName + CreateTime"; the event tells apart two in one second.
    subscribe = parse_message(event_xml("<Event>subscribe</Event>"))
    scan = parse_message(event_xml("<Event>SCAN</Event><EventKey>1</EventKey>"))
    assert subscribe.dedup_key == "evt:fromUser:1348831860:subscribe"
    assert scan.dedup_key == "evt:fromUser:1348831860:scan"


# --- hostile and broken XML -----------------------------------------------------------------
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
    + xml("<MsgType>text</MsgType><Content>&lol4;</Content><MsgId>1</MsgId>")
)
EXTERNAL_ENTITY = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + xml(
    "<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId>"
)


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        '<!DOCTYPE xml SYSTEM "http://example.com/evil.dtd">' + xml("<MsgType>text</MsgType>"),
        '<!DOCTYPE xml PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://x/y.dtd">' + xml("<MsgType>text</MsgType>"),
        "<!DOCTYPE xml>" + xml("<MsgType>text</MsgType>"),
        '<!DOCTYPE xml [<!ENTITY a "b">]>' + xml("<MsgType>text</MsgType>"),
    ],
    ids=[
        "billion laughs",
        "external entity",
        "external dtd",
        "public dtd",
        "bare doctype",
        "internal entity",
    ],
)
def test_any_doctype_or_entity_is_malformed(body):
    with pytest.raises(MalformedMessage, match=r"^malformed message$"):
        parse_message(body)
    with pytest.raises(MalformedMessage):
        parse_encrypted_envelope(body.replace("</xml>", "<Encrypt>abc</Encrypt></xml>"))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<xml>",
        b"<xml><ToUserName>a</ToUserName>",
        "<root>" + HEAD + "<MsgType>text</MsgType></root>",
        '<?xml version="1.0" encoding="no-such-codec"?><xml/>',
        b"<xml>\xff\xfe</xml>",
        "<xml>" + HEAD + HEAD + "<MsgType>text</MsgType></xml>",  # a top-level element twice
        xml("<MsgType>text</MsgType><A>" + "<B>" * 20 + "x" + "</B>" * 20 + "</A>"),  # deeper than WeChat
    ],
    ids=[
        "empty",
        "text",
        "unclosed",
        "truncated",
        "other root",
        "unknown encoding",
        "bad utf-8",
        "duplicate",
        "deep",
    ],
)
def test_broken_xml_is_malformed(body):
    with pytest.raises(MalformedMessage, match=r"^malformed message$"):
        parse_message(body)


@pytest.mark.parametrize("missing", ["ToUserName", "FromUserName", "CreateTime", "MsgType"])
def test_a_missing_or_empty_required_field_is_malformed(missing):
    fields = {"ToUserName": "toUser", "FromUserName": "fromUser", "CreateTime": "1", "MsgType": "text"}
    without = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if k != missing)
    empty = "".join(f"<{k}>{'' if k == missing else v}</{k}>" for k, v in fields.items())
    for body in (f"<xml>{without}</xml>", f"<xml>{empty}</xml>"):
        with pytest.raises(MalformedMessage):
            parse_message(body)


@pytest.mark.parametrize(
    "create_time", ["abc", "12.5", "-1", "+1", " 1", "1_000", "１２３", "9" * 30, "0x10"]
)
def test_a_create_time_that_is_not_a_plain_integer_is_malformed(create_time):
    body = (
        "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType>text</MsgType></xml>"
    )
    with pytest.raises(MalformedMessage):
        parse_message(body)


@pytest.mark.parametrize(
    "inner",
    [
        "<MsgType>text</MsgType><MsgId>abc</MsgId>",
        "<MsgType>location</MsgType><Location_X>north</Location_X><Location_Y>1</Location_Y><Scale>1</Scale>",
        "<MsgType>location</MsgType><Location_X>nan</Location_X><Location_Y>1</Location_Y><Scale>1</Scale>",
        "<MsgType>location</MsgType><Location_X>1</Location_X><Location_Y>1</Location_Y>",
        "<MsgType>event</MsgType><Event>LOCATION</Event><Latitude>inf</Latitude>",
        "<MsgType>event</MsgType><Event>MASSSENDJOBFINISH</Event><TotalCount>many</TotalCount>",
    ],
)
def test_a_number_that_is_not_one_is_malformed(inner):
    with pytest.raises(MalformedMessage):
        parse_message(xml(inner))


# --- parse_xml and the envelope -------------------------------------------------------------
def test_parse_xml_flattens_children_and_unwraps_cdata():
    assert parse_xml(b"<xml><A><![CDATA[x]]></A><B>y</B><C/><D><E>z</E></D></xml>") == {
        "A": "x",
        "B": "y",
        "C": "",
        "D.E": "z",
    }


def test_encrypted_envelope_gives_recipient_and_ciphertext():
    body = "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>"
    assert parse_encrypted_envelope(body) == ("gh_account", "abc+/=")
    assert parse_encrypted_envelope(b"<xml><Encrypt>abc</Encrypt></xml>") == ("", "abc")


@pytest.mark.parametrize(
    "body",
    ["<xml><ToUserName>a</ToUserName></xml>", "<xml><Encrypt></Encrypt></xml>", "<Encrypt>a</Encrypt>"],
)
def test_an_envelope_without_ciphertext_is_malformed(body):
    with pytest.raises(MalformedMessage):
        parse_encrypted_envelope(body)


_ENVELOPE_PARTS = st.tuples(
    st.sampled_from(["", " ", "\n    ", "\r\n\t", "x"]),  # around and between the elements
    st.one_of(st.from_regex(r"[A-Za-z0-9_@.\-]{0,24}", fullmatch=True), st.text(max_size=8)),
    st.one_of(st.from_regex(r"[A-Za-z0-9+/=]{0,64}", fullmatch=True), st.text(max_size=8)),
    st.sampled_from(["ToUserName", "AppId", "toUserName"]),
    st.booleans(),  # CDATA or plain text
)


@settings(max_examples=500, deadline=None)
@given(parts=_ENVELOPE_PARTS)
@example(
    parts=(
        "\n",
        "gh_7f083739789a",
        "AAAABBBB+/CCCC==",
        "ToUserName",
        True,
    )
)
@example(parts=("", "", "a/b+", "ToUserName", True))
@example(parts=(" ", "gh_1", "abc=", "ToUserName", False))
def test_the_safe_mode_envelope_read_by_its_pattern_is_what_parse_xml_reads(parts):
    # Given envelopes near WeChat's safe-mode shape, well-formed or not
    space, to_user, encrypt, tag, in_cdata = parts

    def value(text: str) -> str:
        return f"<![CDATA[{text}]]>" if in_cdata else text

    body = (
        f"<xml>{space}<{tag}>{value(to_user)}</{tag}>{space}<Encrypt>{value(encrypt)}</Encrypt>{space}</xml>"
    ).encode("utf-8", "surrogatepass")

    # Then the envelope reader gives what the general reader gives, or refuses what it refuses
    def general() -> tuple[str, str] | str:
        try:
            fields = parse_xml(body)
        except MalformedMessage:
            return "malformed"
        return (fields.get("ToUserName", ""), fields["Encrypt"]) if fields.get("Encrypt") else "malformed"

    try:
        read: tuple[str, str] | str = parse_encrypted_envelope(body)
    except MalformedMessage:
        read = "malformed"
    assert read == general()


def test_fields_stay_out_of_repr():
    message = parse_message(xml("<MsgType>text</MsgType><Content>secret-ish</Content><MsgId>1</MsgId>"))
    assert "fields" not in repr(message)


# --- properties -----------------------------------------------------------------------------
_TAGS = st.sampled_from(
    [
        "ToUserName",
        "FromUserName",
        "CreateTime",
        "MsgType",
        "MsgId",
        "Event",
        "EventKey",
        "Content",
        "Location_X",
        "Location_Y",
        "Scale",
        "Latitude",
        "Longitude",
        "Precision",
        "TotalCount",
        "Ticket",
        "xml",
        "A",
    ]
)
_VALUES = st.one_of(
    st.sampled_from(
        ["text", "event", "location", "subscribe", "LOCATION", "MASSSENDJOBFINISH", "1", "-1", "1.5"]
    ),
    st.text(max_size=20),
)
_FRAGMENTS = st.lists(
    st.one_of(
        st.tuples(_TAGS, _VALUES).map(lambda tv: f"<{tv[0]}>{cdata(tv[1])}</{tv[0]}>"),
        st.sampled_from(["<!DOCTYPE x>", "&lol;", "<![CDATA[", "]]>", "<", "&#0;", "<A><B>1</B></A>"]),
    ),
    max_size=12,
).map(lambda parts: "<xml>" + "".join(parts) + "</xml>")


@settings(max_examples=100, deadline=None)
@given(body=st.one_of(st.binary(max_size=300), _FRAGMENTS, _FRAGMENTS.map(str.encode)))
def test_any_body_parses_to_a_message_or_raises_malformed(body):
    try:
        outcome: Message | MalformedMessage = parse_message(body)
    except MalformedMessage as exc:
        outcome = exc
    if isinstance(outcome, MalformedMessage):
        assert str(outcome) == "malformed message"
        return
    assert outcome.to_user
    assert outcome.from_user
    assert outcome.msg_type
    assert isinstance(outcome.dedup_key, str)
    if isinstance(outcome, Event):
        assert outcome.event == outcome.event.lower()
