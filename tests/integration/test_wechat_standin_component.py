"""The WeChat stand-in's Open Platform (第三方平台) behaves as WeChat's documentation says,
over a real socket: verify tickets, component tokens, authorization, authorizer tokens and
their refresh tokens, the authorizer list, quotas and clear_quota/v2, and faults.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devtools.wechat import samples
from devtools.wechat.component import OpenPlatform
from devtools.wechat.standin import REDACTED, Drop, ErrCode, HTTPStatus, Lost, WeChatStandIn
from tests.fixtures.wechat import APPID_A, SECRET_A
from wxtoken.wechat.crypto import MessageCrypto
from wxtoken.wechat.messages import parse_xml
from wxtoken.wechat.signature import sha1_signature

COMPONENT = "wx3333333333333333"
COMPONENT_SECRET = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"  # pragma: allowlist secret
PUSH_TOKEN = "componentpushtoken"
AUTHORIZER = "wx4444444444444444"
TIMEOUT = 5
HOUR = 3600


@pytest.fixture
def platform(wechat: WeChatStandIn) -> OpenPlatform:
    wechat.open_platform.add_component(COMPONENT, COMPONENT_SECRET, PUSH_TOKEN, samples.AES_KEY)
    return wechat.open_platform


# --- helpers: plain HTTP, as any client would speak it


def post(
    wechat: WeChatStandIn, name: str, body: dict[str, Any] | None, token: str | None = None
) -> dict[str, Any]:
    params = {} if token is None else {"component_access_token": token}
    response = requests.post(
        f"{wechat.base_url}/cgi-bin/component/{name}", params=params, json=body, timeout=TIMEOUT
    )
    assert response.status_code == 200
    return response.json()


def component_token_answer(
    wechat: WeChatStandIn, ticket: str | None, secret: str = COMPONENT_SECRET, appid: str = COMPONENT
) -> dict[str, Any]:
    body = {"component_appid": appid, "component_appsecret": secret, "component_verify_ticket": ticket}
    return post(wechat, "api_component_token", body)


def component_token(wechat: WeChatStandIn, platform: OpenPlatform) -> str:
    ticket = platform.current_ticket(COMPONENT) or platform.push_ticket(COMPONENT).ticket
    return str(component_token_answer(wechat, ticket)["component_access_token"])


def query_auth(wechat: WeChatStandIn, token: str, code: str | None) -> dict[str, Any]:
    return post(wechat, "api_query_auth", {"component_appid": COMPONENT, "authorization_code": code}, token)


def refresh(wechat: WeChatStandIn, token: str, refresh_token: str, appid: str = AUTHORIZER) -> dict[str, Any]:
    body = {
        "component_appid": COMPONENT,
        "authorizer_appid": appid,
        "authorizer_refresh_token": refresh_token,
    }
    return post(wechat, "api_authorizer_token", body, token)


def authorizer_list(wechat: WeChatStandIn, token: str, offset: Any, count: Any) -> dict[str, Any]:
    return post(
        wechat,
        "api_get_authorizer_list",
        {"component_appid": COMPONENT, "offset": offset, "count": count},
        token,
    )


def clear_quota(
    wechat: WeChatStandIn, appid: str | None = None, secret: str = COMPONENT_SECRET
) -> dict[str, Any]:
    body = {"component_appid": COMPONENT, "appsecret": secret}
    if appid is not None:
        body["appid"] = appid
    return post(wechat, "clear_quota/v2", body)


def call_api(
    wechat: WeChatStandIn, access_token: str, path: str = "/cgi-bin/get_api_domain_ip"
) -> dict[str, Any]:
    return requests.get(
        f"{wechat.base_url}{path}", params={"access_token": access_token}, timeout=TIMEOUT
    ).json()


def authorized(wechat: WeChatStandIn, platform: OpenPlatform, token: str) -> dict[str, Any]:
    """Authorize AUTHORIZER and exchange its code: the authorization_info."""
    push = platform.authorize(COMPONENT, AUTHORIZER)
    return query_auth(wechat, token, push.authorization_code)["authorization_info"]


def errcode(answer: dict[str, Any]) -> int:
    return int(answer.get("errcode", 0))


def decrypt(query: dict[str, str], body: str) -> dict[str, str]:
    """What the platform's receiver does: check msg_signature, decrypt, parse."""
    encrypt = parse_xml(body)["Encrypt"]
    assert query["msg_signature"] == sha1_signature(PUSH_TOKEN, query["timestamp"], query["nonce"], encrypt)
    return parse_xml(MessageCrypto(samples.AES_KEY, COMPONENT).decrypt(encrypt))


# --- component_verify_ticket and api_component_token


def test_a_ticket_push_is_signed_and_encrypted_for_the_platform(platform, clock):
    push = platform.push_ticket(COMPONENT)

    fields = decrypt(push.query, push.body)
    assert push.query["encrypt_type"] == "aes"
    assert push.query["timestamp"] == str(int(clock()))
    assert parse_xml(push.body)["AppId"] == COMPONENT
    assert fields == {
        "AppId": COMPONENT,
        "CreateTime": str(int(clock())),
        "InfoType": "component_verify_ticket",
        "ComponentVerifyTicket": push.ticket,
    }
    assert platform.player(COMPONENT).decrypt_push(push.body) == push.xml


def test_a_pushed_ticket_buys_a_component_token_valid_7200_seconds(wechat, platform):
    push = platform.push_ticket(COMPONENT)

    answer = component_token_answer(wechat, push.ticket)

    assert set(answer) == {"component_access_token", "expires_in"}
    assert answer["expires_in"] == 7200
    assert platform.component_token_state(COMPONENT, answer["component_access_token"]) == "valid"
    assert platform.current_component_token(COMPONENT) == answer["component_access_token"]
    assert answer["component_access_token"] in wechat.issued()


@pytest.mark.parametrize(
    "ticket", [None, "", "ticket@@@not-a-pushed-one"], ids=["missing", "empty", "unknown"]
)
def test_a_wrong_ticket_gets_61006_and_no_token(wechat, platform, ticket):
    platform.push_ticket(COMPONENT)

    answer = component_token_answer(wechat, ticket)

    assert errcode(answer) == 61006
    assert answer["errmsg"].startswith("component ticket is invalid rid: ")
    assert platform.current_component_token(COMPONENT) is None


def test_a_ticket_works_for_12_hours_then_gets_61005(wechat, platform, clock):
    ticket = platform.push_ticket(COMPONENT).ticket
    clock.advance(12 * HOUR - 1)
    assert "component_access_token" in component_token_answer(wechat, ticket)

    clock.advance(1)

    assert errcode(component_token_answer(wechat, ticket)) == 61005


def test_an_older_ticket_stays_valid_after_newer_pushes_until_its_own_12_hours(wechat, platform, clock):
    older = platform.push_ticket(COMPONENT).ticket
    clock.advance(600)
    newer = platform.push_ticket(COMPONENT).ticket

    assert "component_access_token" in component_token_answer(wechat, older)
    assert platform.current_ticket(COMPONENT) == newer
    clock.advance(12 * HOUR - 600)
    assert errcode(component_token_answer(wechat, older)) == 61005
    assert "component_access_token" in component_token_answer(wechat, newer)


@pytest.mark.parametrize(
    ("appid", "secret", "expected"),
    [
        (COMPONENT, "wrong-secret", 40125),
        (COMPONENT, "", 41004),
        ("wx9999999999999999", COMPONENT_SECRET, 61011),
        ("", COMPONENT_SECRET, 41002),
    ],
    ids=["wrong-secret", "no-secret", "unknown-component", "no-appid"],
)
def test_bad_platform_credentials_get_wechat_errcodes(wechat, platform, appid, secret, expected):
    ticket = platform.push_ticket(COMPONENT).ticket

    assert errcode(component_token_answer(wechat, ticket, secret=secret, appid=appid)) == expected


def test_a_new_component_token_leaves_the_previous_one_five_minutes(wechat, platform, clock):
    first = component_token(wechat, platform)
    second = component_token(wechat, platform)
    third = component_token(wechat, platform)

    assert platform.component_token_state(COMPONENT, first) == "invalid"
    assert platform.component_token_state(COMPONENT, second) == "valid"
    clock.advance(300)
    assert errcode(authorizer_list(wechat, second, 0, 10)) == 40001
    assert errcode(authorizer_list(wechat, third, 0, 10)) == 0


def test_a_component_token_expires_after_7200_seconds_with_42001(wechat, platform, clock):
    token = component_token(wechat, platform)
    clock.advance(7199)
    assert errcode(authorizer_list(wechat, token, 0, 10)) == 0

    clock.advance(1)

    assert errcode(authorizer_list(wechat, token, 0, 10)) == 42001
    assert platform.component_token_state(COMPONENT, token) == "expired"


def test_component_apis_want_a_component_token_of_the_named_platform(wechat, platform):
    token = component_token(wechat, platform)
    classic = requests.get(
        f"{wechat.base_url}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A},
        timeout=TIMEOUT,
    ).json()["access_token"]
    body = {"component_appid": COMPONENT, "offset": 0, "count": 1}

    assert errcode(post(wechat, "api_get_authorizer_list", body)) == 41001
    assert errcode(post(wechat, "api_get_authorizer_list", body, classic)) == 40001
    assert (
        errcode(post(wechat, "api_get_authorizer_list", {**body, "component_appid": "wx9"}, token)) == 40013
    )
    # The openApi pages name the query parameter access_token: accepted too.
    response = requests.post(
        f"{wechat.base_url}/cgi-bin/component/api_get_authorizer_list",
        params={"access_token": token},
        json=body,
        timeout=TIMEOUT,
    )
    assert errcode(response.json()) == 0
    # ... and a component token is no account's access token.
    assert errcode(call_api(wechat, token)) == 40001


@pytest.mark.parametrize(
    ("method", "data", "expected"),
    [("GET", None, 43002), ("POST", b"", 44002), ("POST", b"{not json", 47001)],
    ids=["get", "empty", "not-json"],
)
def test_component_apis_want_a_post_json_object(wechat, platform, method, data, expected):
    response = requests.request(
        method, f"{wechat.base_url}/cgi-bin/component/api_component_token", data=data, timeout=TIMEOUT
    )

    assert errcode(response.json()) == expected


# --- api_start_push_ticket


def test_start_push_ticket_restarts_stopped_pushes_and_sends_a_ticket(wechat, platform):
    platform.stop_ticket_pushes(COMPONENT)
    with pytest.raises(RuntimeError):
        platform.push_ticket(COMPONENT)
    body = {"component_appid": COMPONENT, "component_secret": COMPONENT_SECRET}

    assert post(wechat, "api_start_push_ticket", body) == {"errcode": 0, "errmsg": "ok"}

    (push,) = platform.take_pushes(COMPONENT)
    assert decrypt(push.query, push.body)["ComponentVerifyTicket"] == push.ticket
    assert "component_access_token" in component_token_answer(wechat, push.ticket)
    assert post(wechat, "api_start_push_ticket", body)["errmsg"] == "in a normal state"
    assert platform.take_pushes(COMPONENT)[0].ticket != push.ticket
    assert platform.take_pushes(COMPONENT) == []


def test_start_push_ticket_checks_the_platform_secret(wechat, platform):
    bad = {"component_appid": COMPONENT, "component_secret": "nope"}  # pragma: allowlist secret
    unknown = {"component_appid": "wx9999999999999999", "component_secret": COMPONENT_SECRET}

    assert errcode(post(wechat, "api_start_push_ticket", bad)) == 40125
    assert errcode(post(wechat, "api_start_push_ticket", unknown)) == 40013
    assert platform.take_pushes(COMPONENT) == []


# --- authorization and api_query_auth


def test_the_authorized_push_carries_a_code_that_query_auth_exchanges_for_tokens(wechat, platform, clock):
    token = component_token(wechat, platform)
    pre_auth = post(wechat, "api_create_preauthcode", {"component_appid": COMPONENT}, token)
    assert pre_auth["expires_in"] == 1800

    push = platform.authorize(
        COMPONENT, AUTHORIZER, func_info=(1, 15), pre_auth_code=pre_auth["pre_auth_code"]
    )

    fields = decrypt(push.query, push.body)
    assert fields["InfoType"] == "authorized"
    assert fields["AuthorizerAppid"] == AUTHORIZER
    assert fields["AuthorizationCode"] == push.authorization_code
    assert fields["AuthorizationCodeExpiredTime"] == str(int(clock()) + 600)
    assert fields["PreAuthCode"] == pre_auth["pre_auth_code"]
    info = query_auth(wechat, token, push.authorization_code)["authorization_info"]
    assert info["authorizer_appid"] == AUTHORIZER
    assert info["expires_in"] == 7200
    assert info["authorizer_refresh_token"] == platform.refresh_token(COMPONENT, AUTHORIZER)
    assert info["func_info"] == [{"funcscope_category": {"id": 1}}, {"funcscope_category": {"id": 15}}]
    assert platform.is_authorizer_token_valid(AUTHORIZER, info["authorizer_access_token"])


def test_an_authorization_code_expires_after_10_minutes_with_61010(wechat, platform, clock):
    token = component_token(wechat, platform)
    code = platform.authorize(COMPONENT, AUTHORIZER).authorization_code
    clock.advance(599)
    assert "authorization_info" in query_auth(wechat, token, code)

    clock.advance(1)

    assert errcode(query_auth(wechat, token, code)) == 61010


@pytest.mark.parametrize("code", [None, "queryauthcode@@@unknown"], ids=["missing", "unknown"])
def test_an_unknown_authorization_code_gets_61009(wechat, platform, code):
    token = component_token(wechat, platform)

    assert errcode(query_auth(wechat, token, code)) == 61009


def test_an_expired_pre_auth_code_cannot_authorize(wechat, platform, clock):
    token = component_token(wechat, platform)
    code = post(wechat, "api_create_preauthcode", {"component_appid": COMPONENT}, token)["pre_auth_code"]
    clock.advance(1800)

    with pytest.raises(ValueError, match="pre_auth_code"):
        platform.authorize(COMPONENT, AUTHORIZER, pre_auth_code=code)


def test_unauthorize_pushes_and_kills_the_refresh_and_access_tokens(wechat, platform):
    token = component_token(wechat, platform)
    info = authorized(wechat, platform, token)

    push = platform.unauthorize(COMPONENT, AUTHORIZER)

    assert decrypt(push.query, push.body) | {"CreateTime": ""} == {
        "AppId": COMPONENT,
        "CreateTime": "",
        "InfoType": "unauthorized",
        "AuthorizerAppid": AUTHORIZER,
    }
    assert errcode(refresh(wechat, token, info["authorizer_refresh_token"])) == 61023
    assert errcode(call_api(wechat, info["authorizer_access_token"])) == 40001
    assert authorizer_list(wechat, token, 0, 10) == {"total_count": 0, "list": []}


def test_authorizing_again_retires_the_previous_refresh_token(wechat, platform):
    token = component_token(wechat, platform)
    first = authorized(wechat, platform, token)

    second = authorized(wechat, platform, token)

    assert second["authorizer_refresh_token"] != first["authorizer_refresh_token"]
    assert errcode(refresh(wechat, token, first["authorizer_refresh_token"])) == 61023
    assert "authorizer_access_token" in refresh(wechat, token, second["authorizer_refresh_token"])


def test_update_authorization_pushes_a_new_code_and_keeps_the_refresh_token(wechat, platform):
    token = component_token(wechat, platform)
    info = authorized(wechat, platform, token)

    push = platform.update_authorization(COMPONENT, AUTHORIZER, func_info=(1, 2))

    assert decrypt(push.query, push.body)["InfoType"] == "updateauthorized"
    updated = query_auth(wechat, token, push.authorization_code)["authorization_info"]
    assert updated["authorizer_refresh_token"] == info["authorizer_refresh_token"]
    assert [f["funcscope_category"]["id"] for f in updated["func_info"]] == [1, 2]


# --- api_authorizer_token


def test_refreshing_issues_a_new_authorizer_token_and_the_previous_one_works_five_more_minutes(
    wechat, platform, clock
):
    token = component_token(wechat, platform)
    info = authorized(wechat, platform, token)
    first = info["authorizer_access_token"]

    answer = refresh(wechat, token, info["authorizer_refresh_token"])

    assert set(answer) == {"authorizer_access_token", "expires_in", "authorizer_refresh_token"}
    assert answer["expires_in"] == 7200
    assert answer["authorizer_refresh_token"] == info["authorizer_refresh_token"]
    second = answer["authorizer_access_token"]
    assert second != first
    assert platform.current_authorizer_token(COMPONENT, AUTHORIZER) == second
    clock.advance(299)
    assert errcode(call_api(wechat, first)) == 0
    clock.advance(1)
    assert errcode(call_api(wechat, first)) == 40001
    assert errcode(call_api(wechat, second)) == 0


def test_an_authorizer_token_expires_after_7200_seconds_with_42001(wechat, platform, clock):
    token = component_token(wechat, platform)
    access = authorized(wechat, platform, token)["authorizer_access_token"]
    clock.advance(7200)

    assert errcode(call_api(wechat, access)) == 42001
    assert wechat.token_state(AUTHORIZER, access) == "expired"
    assert platform.authorizer_token_state(AUTHORIZER, access) == "expired"


def test_an_authorizer_token_is_an_access_token_of_the_account_on_every_api(wechat, platform):
    token = component_token(wechat, platform)
    access = authorized(wechat, platform, token)["authorizer_access_token"]

    assert errcode(call_api(wechat, access)) == 0
    ticket = requests.get(
        f"{wechat.base_url}/cgi-bin/ticket/getticket",
        params={"access_token": access, "type": "jsapi"},
        timeout=TIMEOUT,
    ).json()
    assert errcode(ticket) == 0
    assert wechat.is_valid(AUTHORIZER, access)
    assert not wechat.is_valid(APPID_A, access)
    assert wechat.calls("api")[-1].appid == AUTHORIZER


def test_a_revoked_refresh_token_gets_61023_and_the_list_shows_the_one_wechat_now_holds(wechat, platform):
    token = component_token(wechat, platform)
    info = authorized(wechat, platform, token)

    current = platform.revoke_refresh_token(AUTHORIZER)

    answer = refresh(wechat, token, info["authorizer_refresh_token"])
    assert errcode(answer) == 61023
    assert answer["errmsg"].startswith("refresh_token is invalid rid: ")
    listed = authorizer_list(wechat, token, 0, 10)["list"]
    assert [(a["authorizer_appid"], a["refresh_token"]) for a in listed] == [(AUTHORIZER, current)]
    assert "authorizer_access_token" in refresh(wechat, token, current)


@pytest.mark.parametrize(
    "presented", [None, "", "refreshtoken@@@someone-else"], ids=["missing", "empty", "wrong"]
)
def test_a_wrong_refresh_token_gets_61023(wechat, platform, presented):
    token = component_token(wechat, platform)
    authorized(wechat, platform, token)
    body = {
        "component_appid": COMPONENT,
        "authorizer_appid": AUTHORIZER,
        "authorizer_refresh_token": presented,
    }

    assert errcode(post(wechat, "api_authorizer_token", body, token)) == 61023


def test_rotating_refresh_tokens_retire_the_one_presented(wechat, platform):
    token = component_token(wechat, platform)
    info = authorized(wechat, platform, token)
    platform.rotate_refresh_tokens = True

    answer = refresh(wechat, token, info["authorizer_refresh_token"])

    assert answer["authorizer_refresh_token"] != info["authorizer_refresh_token"]
    assert errcode(refresh(wechat, token, info["authorizer_refresh_token"])) == 61023
    assert "authorizer_access_token" in refresh(wechat, token, answer["authorizer_refresh_token"])


# --- api_get_authorizer_list


def test_the_authorizer_list_pages_through_every_authorizer_in_order(wechat, platform):
    token = component_token(wechat, platform)
    appids = platform.add_authorizers(COMPONENT, 5000)

    pages = [authorizer_list(wechat, token, offset, 500) for offset in range(0, 5000, 500)]

    assert {page["total_count"] for page in pages} == {5000}
    listed = [a for page in pages for a in page["list"]]
    assert [a["authorizer_appid"] for a in listed] == appids
    assert all(a["refresh_token"] == platform.refresh_token(COMPONENT, a["authorizer_appid"]) for a in listed)
    assert authorizer_list(wechat, token, 5000, 500)["list"] == []


@pytest.mark.parametrize(
    ("offset", "count", "expected"),
    [(0, 501, 40170), (-1, 10, 40097), (0, "10", 47001), (None, 10, 47001), (0, True, 47001)],
    ids=["count-over-500", "negative", "string", "missing", "bool"],
)
def test_bad_list_arguments_get_wechat_errcodes(wechat, platform, offset, count, expected):
    token = component_token(wechat, platform)

    assert errcode(authorizer_list(wechat, token, offset, count)) == expected


# --- quotas and clear_quota/v2


def test_component_token_quota_answers_45009_until_clear_quota_v2(wechat, platform):
    platform.set_daily_quota(2, "component_token")
    component_token(wechat, platform)
    component_token(wechat, platform)
    ticket = platform.current_ticket(COMPONENT)

    assert errcode(component_token_answer(wechat, ticket)) == 45009
    assert platform.quota_used(COMPONENT, "component_token") == 2
    assert clear_quota(wechat) == {"errcode": 0, "errmsg": "ok"}
    assert "component_access_token" in component_token_answer(wechat, ticket)


def test_authorizer_token_quota_is_per_authorizer_and_cleared_on_its_behalf(wechat, platform):
    token = component_token(wechat, platform)
    rt = authorized(wechat, platform, token)["authorizer_refresh_token"]
    (other,) = platform.add_authorizers(COMPONENT, 1)
    platform.set_daily_quota(1, "authorizer_token")
    refresh(wechat, token, rt)

    assert errcode(refresh(wechat, token, rt)) == 45009
    assert "authorizer_access_token" in refresh(
        wechat, token, platform.refresh_token(COMPONENT, other), other
    )
    assert errcode(clear_quota(wechat, appid=AUTHORIZER)) == 0
    assert "authorizer_access_token" in refresh(wechat, token, rt)


def test_the_quota_resets_at_beijing_midnight(wechat, platform, clock):
    platform.set_daily_quota(1, "component_token")
    component_token(wechat, platform)
    assert errcode(component_token_answer(wechat, platform.current_ticket(COMPONENT))) == 45009

    clock.advance(24 * HOUR)
    ticket = platform.push_ticket(COMPONENT).ticket

    assert "component_access_token" in component_token_answer(wechat, ticket)


def test_clear_quota_v2_allows_10_clears_a_month_then_48006(wechat, platform):
    for _ in range(10):
        assert errcode(clear_quota(wechat)) == 0

    answer = clear_quota(wechat)

    assert errcode(answer) == 48006
    assert answer["errmsg"].startswith("forbid to clear quota because of reaching the limit")


def test_clear_quota_v2_wants_the_secret_and_an_authorized_account(wechat, platform):
    assert errcode(clear_quota(wechat, secret="wrong")) == 40125  # pragma: allowlist secret
    assert errcode(clear_quota(wechat, appid="wx5555555555555555")) == 61003


# --- faults and call records


def test_an_errcode_fault_on_component_token_issues_nothing(wechat, platform):
    ticket = platform.push_ticket(COMPONENT).ticket
    wechat.fail_next("component_token", ErrCode(-1))

    assert errcode(component_token_answer(wechat, ticket)) == -1
    assert platform.current_component_token(COMPONENT) is None
    assert "component_access_token" in component_token_answer(wechat, ticket)


def test_a_lost_authorizer_token_answer_still_retires_the_previous_token(wechat, platform, clock):
    token = component_token(wechat, platform)
    info = authorized(wechat, platform, token)
    wechat.fail_next("authorizer_token", Lost(HTTPStatus(502)))

    response = requests.post(
        f"{wechat.base_url}/cgi-bin/component/api_authorizer_token",
        params={"component_access_token": token},
        json={
            "component_appid": COMPONENT,
            "authorizer_appid": AUTHORIZER,
            "authorizer_refresh_token": info["authorizer_refresh_token"],
        },
        timeout=TIMEOUT,
    )

    assert response.status_code == 502
    minted = platform.current_authorizer_token(COMPONENT, AUTHORIZER)
    assert minted not in (None, info["authorizer_access_token"])
    clock.advance(300)
    assert not wechat.is_valid(AUTHORIZER, info["authorizer_access_token"])


def test_a_fault_for_one_authorizer_leaves_the_others_alone(wechat, platform):
    token = component_token(wechat, platform)
    first, second = platform.add_authorizers(COMPONENT, 2)
    wechat.fail_always("authorizer_token", ErrCode(45011), appid=first)

    assert errcode(refresh(wechat, token, platform.refresh_token(COMPONENT, first), first)) == 45011
    assert errcode(refresh(wechat, token, platform.refresh_token(COMPONENT, second), second)) == 0
    assert [c.appid for c in wechat.calls("authorizer_token")] == [first, second]


@pytest.mark.parametrize(
    "name", ["query_auth", "get_authorizer_list", "start_push_ticket", "preauthcode", "component_clear_quota"]
)
def test_every_component_endpoint_takes_faults(wechat, platform, name):
    wechat.fail_next(name, Drop())
    path = {
        "query_auth": "api_query_auth",
        "get_authorizer_list": "api_get_authorizer_list",
        "start_push_ticket": "api_start_push_ticket",
        "preauthcode": "api_create_preauthcode",
        "component_clear_quota": "clear_quota/v2",
    }[name]

    with pytest.raises(requests.ConnectionError):
        requests.post(f"{wechat.base_url}/cgi-bin/component/{path}", json={}, timeout=TIMEOUT)
    assert wechat.calls(name)[-1].fault == "Drop()"


def test_component_calls_are_recorded_with_secrets_redacted(wechat, platform):
    ticket = platform.push_ticket(COMPONENT).ticket
    component_token_answer(wechat, ticket)
    post(
        wechat, "api_start_push_ticket", {"component_appid": COMPONENT, "component_secret": COMPONENT_SECRET}
    )
    clear_quota(wechat)

    calls = wechat.calls()

    assert [c.endpoint for c in calls] == ["component_token", "start_push_ticket", "component_clear_quota"]
    assert {c.appid for c in calls} == {COMPONENT}
    assert calls[0].params["component_appsecret"] == REDACTED
    assert calls[1].params["component_secret"] == REDACTED
    assert calls[2].params["appsecret"] == REDACTED
    assert [c.errcode for c in calls] == [0, 0, 0]


def test_add_authorizers_mints_refresh_tokens_but_no_access_tokens(platform):
    appids = platform.add_authorizers(COMPONENT, 3, auth_time=1_700_000_000)

    assert len(set(appids)) == 3
    assert all(a.startswith("wx") and len(a) == 18 for a in appids)
    assert all(platform.current_authorizer_token(COMPONENT, a) is None for a in appids)
    assert platform.authorizer_appids(COMPONENT) == appids
