"""The WeChat stand-in behaves as WeChat's documentation says, over a real socket.

Other tests trust the stand-in to tell them what WeChat would do, so its rules are pinned
here: token rotation and the 5-minute overlap, stable_token's normal and forced modes,
tickets, the generic API, quotas, every fault, the call records and concurrency.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.wechat.standin import (
    REDACTED,
    Callback,
    Delay,
    Drop,
    ErrCode,
    Hang,
    HTTPStatus,
    Lost,
    NonJSON,
    WeChatStandIn,
)
from tests.fixtures.wechat import APPID_A, APPID_B, SECRET_A, SECRET_B, FakeClock

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 5
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{100,200}")
RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


# --- helpers: plain HTTP, as any client would speak it


def token_response(wechat: WeChatStandIn, appid: str = APPID_A, secret: str = SECRET_A) -> requests.Response:
    params = {"grant_type": "client_credential", "appid": appid, "secret": secret}
    return requests.get(f"{wechat.base_url}/cgi-bin/token", params=params, timeout=TIMEOUT)


def get_token(wechat: WeChatStandIn, appid: str = APPID_A, secret: str = SECRET_A) -> dict[str, Any]:
    response = token_response(wechat, appid, secret)
    assert response.status_code == 200
    return response.json()


def get_stable(
    wechat: WeChatStandIn, appid: str = APPID_A, secret: str = SECRET_A, force: bool | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"grant_type": "client_credential", "appid": appid, "secret": secret}
    if force is not None:
        body["force_refresh"] = force
    response = requests.post(f"{wechat.base_url}/cgi-bin/stable_token", json=body, timeout=TIMEOUT)
    assert response.status_code == 200
    return response.json()


def get_ticket(wechat: WeChatStandIn, access_token: str | None, kind: str = "jsapi") -> dict[str, Any]:
    params = {"type": kind} if access_token is None else {"access_token": access_token, "type": kind}
    response = requests.get(f"{wechat.base_url}/cgi-bin/ticket/getticket", params=params, timeout=TIMEOUT)
    return response.json()


def call_api(
    wechat: WeChatStandIn, access_token: str | None, path: str = "/cgi-bin/get_api_domain_ip"
) -> dict[str, Any]:
    params = {} if access_token is None else {"access_token": access_token}
    return requests.get(f"{wechat.base_url}{path}", params=params, timeout=TIMEOUT).json()


def errcode(answer: dict[str, Any]) -> int:
    return int(answer.get("errcode", 0))


def seconds_to_beijing_midnight(now: float) -> float:
    beijing = dt.datetime.fromtimestamp(now, dt.timezone(dt.timedelta(hours=8)))
    midnight = (beijing + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp() - now


# --- /cgi-bin/token


def test_token_is_a_long_random_string_valid_for_7200_seconds(wechat):
    answer = get_token(wechat)

    assert set(answer) == {"access_token", "expires_in"}
    assert answer["expires_in"] == 7200
    assert TOKEN_SHAPE.fullmatch(answer["access_token"])
    assert wechat.is_valid(APPID_A, answer["access_token"])
    assert wechat.current_token(APPID_A) == answer["access_token"]


def test_every_token_call_issues_a_new_token_and_the_previous_one_works_five_more_minutes(wechat, clock):
    first = get_token(wechat)["access_token"]
    clock.advance(1000)

    second = get_token(wechat)["access_token"]

    assert second != first
    assert wechat.current_token(APPID_A) == second
    clock.advance(299)
    assert errcode(get_ticket(wechat, first)) == 0
    clock.advance(1)
    assert errcode(get_ticket(wechat, first)) == 40001
    assert errcode(get_ticket(wechat, second)) == 0


def test_a_third_token_call_invalidates_the_one_before_the_previous_at_once(wechat):
    first = get_token(wechat)["access_token"]
    second = get_token(wechat)["access_token"]

    third = get_token(wechat)["access_token"]

    assert not wechat.is_valid(APPID_A, first)
    assert wechat.is_valid(APPID_A, second)
    assert wechat.is_valid(APPID_A, third)


@pytest.mark.parametrize("answer", [HTTPStatus(502), NonJSON(), Drop()], ids=["5xx", "non-json", "drop"])
def test_a_lost_answer_still_mints_and_retires_the_previous_token(wechat, clock, answer):
    first = get_token(wechat)["access_token"]
    wechat.fail_next("token", Lost(answer))

    def fetch() -> Any:
        response = requests.get(
            f"{wechat.base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A},
            timeout=TIMEOUT,
        )
        response.raise_for_status()
        return response.json()

    # the client never gets a token: an error status, a body that is not JSON, or no answer
    with pytest.raises((requests.ConnectionError, requests.HTTPError, ValueError)):
        fetch()

    # WeChat processed it: a token the client never saw is now the current one
    lost = wechat.current_token(APPID_A)
    assert lost not in (None, first)
    assert wechat.is_valid(APPID_A, first)  # the previous one: 5 more minutes
    clock.advance(300)
    assert not wechat.is_valid(APPID_A, first)
    # the stand-in marks the call done just after the client saw the answer (or its loss)
    deadline = time.monotonic() + TIMEOUT
    while not wechat.calls("token")[-1].done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wechat.calls("token")[-1].done


def test_an_outside_fetch_retires_the_stored_token_five_minutes_later(wechat, clock):
    stored = get_token(wechat)["access_token"]

    outsider = wechat.outside_fetch(APPID_A)

    assert wechat.current_token(APPID_A) == outsider
    assert wechat.token_calls(APPID_A) == 1  # not a call through the socket
    clock.advance(299)
    assert wechat.is_valid(APPID_A, stored)
    clock.advance(1)
    assert wechat.token_state(APPID_A, stored) == "invalid"


def test_token_expires_after_7200_seconds_with_42001(wechat, clock):
    token = get_token(wechat)["access_token"]
    clock.advance(7199)
    assert wechat.token_state(APPID_A, token) == "valid"

    clock.advance(1)

    assert wechat.token_state(APPID_A, token) == "expired"
    assert errcode(call_api(wechat, token)) == 42001
    assert wechat.current_token(APPID_A) is None


def test_tokens_are_unique_and_belong_to_their_app(wechat):
    token_a = get_token(wechat, APPID_A, SECRET_A)["access_token"]
    token_b = get_token(wechat, APPID_B, SECRET_B)["access_token"]

    assert token_a != token_b
    assert wechat.is_valid(APPID_B, token_b)
    assert not wechat.is_valid(APPID_B, token_a)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"appid": "wx9999999999999999"}, 40013),
        ({"secret": "not-the-secret"}, 40125),
        ({"grant_type": ""}, 40002),
        ({"appid": ""}, 41002),
        ({"secret": ""}, 41004),
    ],
    ids=["unknown-appid", "wrong-secret", "no-grant-type", "no-appid", "no-secret"],
)
def test_bad_token_requests_get_wechat_errcodes_and_no_token(wechat, params, expected):
    query = {"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A, **params}
    answer = requests.get(f"{wechat.base_url}/cgi-bin/token", params=query, timeout=TIMEOUT).json()

    assert answer["errcode"] == expected
    assert RID.search(answer["errmsg"])
    assert "access_token" not in answer
    assert wechat.current_token(APPID_A) is None


def test_token_daily_quota_answers_45009_until_cleared_or_the_next_beijing_day(wechat, clock):
    wechat.set_daily_quota(3)
    for _ in range(3):
        assert "access_token" in get_token(wechat)

    refused = get_token(wechat)
    assert refused["errcode"] == 45009
    assert refused["errmsg"].startswith("reach max api daily quota limit")
    assert wechat.quota_used(APPID_A) == 3
    assert "access_token" in get_token(wechat, APPID_B, SECRET_B)

    wechat.reset_quota(APPID_A)
    assert "access_token" in get_token(wechat)

    for _ in range(2):
        get_token(wechat)
    assert get_token(wechat)["errcode"] == 45009
    clock.advance(seconds_to_beijing_midnight(clock()) + 1)
    assert "access_token" in get_token(wechat)


def test_clear_quota_api_resets_the_token_quota(wechat):
    wechat.set_daily_quota(1)
    token = get_token(wechat)["access_token"]
    assert get_token(wechat)["errcode"] == 45009

    answer = requests.post(
        f"{wechat.base_url}/cgi-bin/clear_quota",
        params={"access_token": token},
        json={"appid": APPID_A},
        timeout=5,
    ).json()

    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert "access_token" in get_token(wechat)


# --- /cgi-bin/stable_token


def test_stable_token_normal_mode_returns_the_same_token_with_its_remaining_lifetime(wechat, clock):
    first = get_stable(wechat)
    assert first["expires_in"] == 7200
    clock.advance(1000.4)

    again = get_stable(wechat, force=False)

    assert again == {"access_token": first["access_token"], "expires_in": 6199}
    assert wechat.token_calls(APPID_A) == 2


def test_stable_token_normal_mode_renews_in_the_last_five_minutes_and_the_old_token_lives_out_its_life(
    wechat, clock
):
    old = get_stable(wechat)["access_token"]
    clock.advance(7200 - 301)
    assert get_stable(wechat)["access_token"] == old

    clock.advance(1)  # 300 s left: inside the renewal window
    renewed = get_stable(wechat)

    assert renewed["access_token"] != old
    assert renewed["expires_in"] == 7200
    clock.advance(299)
    assert errcode(get_ticket(wechat, old)) == 0
    clock.advance(1)
    assert errcode(get_ticket(wechat, old)) == 42001
    assert errcode(get_ticket(wechat, renewed["access_token"])) == 0


def test_stable_and_classic_tokens_do_not_affect_each_other(wechat):
    stable = get_stable(wechat)["access_token"]
    for _ in range(3):
        classic = get_token(wechat)["access_token"]

    assert get_stable(wechat)["access_token"] == stable  # classic rotations left it alone
    forced = get_stable(wechat, force=True)["access_token"]
    assert wechat.is_valid(APPID_A, classic)  # and a forced stable refresh leaves classic alone
    assert wechat.current_token(APPID_A, "token") == classic
    assert wechat.current_token(APPID_A, "stable_token") == forced
    assert wechat.current_token(APPID_A) == forced  # the newest of either API
    assert wechat.quota_used(APPID_A, "token") == 3


def test_stable_force_refresh_issues_a_new_token_and_the_previous_dies_at_once(wechat, clock):
    before = get_stable(wechat)["access_token"]
    clock.advance(60)

    forced = get_stable(wechat, force=True)

    assert forced["access_token"] != before
    assert forced["expires_in"] == 7200
    assert errcode(get_ticket(wechat, before)) == 40001
    assert errcode(get_ticket(wechat, forced["access_token"])) == 0


def test_stable_force_refresh_within_30_seconds_of_the_last_returns_the_current_token(wechat, clock):
    clock.advance(seconds_to_beijing_midnight(clock()) + 60)  # both calls on one WeChat day
    forced = get_stable(wechat, force=True)["access_token"]
    clock.advance(29)

    too_soon = get_stable(wechat, force=True)

    assert too_soon == {"access_token": forced, "expires_in": 7171}
    assert wechat.force_refreshes_today(APPID_A) == 1
    clock.advance(1)
    assert get_stable(wechat, force=True)["access_token"] != forced


def test_stable_force_refresh_is_limited_to_20_a_day_then_45009(wechat, clock):
    clock.advance(seconds_to_beijing_midnight(clock()) + 60)  # room for 21 calls today
    tokens = set()
    for _ in range(20):
        tokens.add(get_stable(wechat, force=True)["access_token"])
        clock.advance(30)
    assert len(tokens) == 20

    refused = get_stable(wechat, force=True)

    assert refused["errcode"] == 45009
    assert get_stable(wechat)["access_token"] in tokens  # normal mode still works
    assert "access_token" in get_stable(wechat, APPID_B, SECRET_B, force=True)
    clock.advance(seconds_to_beijing_midnight(clock()) + 1)
    assert get_stable(wechat, force=True)["access_token"] not in tokens


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda url: requests.get(url, timeout=TIMEOUT), 43002),
        (lambda url: requests.post(url, data=b"{not json", timeout=TIMEOUT), 47001),
        (lambda url: requests.post(url, json=["a", "list"], timeout=TIMEOUT), 47001),
        (lambda url: requests.post(url, timeout=TIMEOUT), 44002),
        (
            lambda url: requests.post(
                url,
                json={
                    "grant_type": "client_credential",
                    "appid": APPID_A,
                    "secret": SECRET_A,
                    "force_refresh": "1",
                },
                timeout=TIMEOUT,
            ),
            47001,
        ),
        (
            lambda url: requests.post(
                url,
                json={"grant_type": "client_credential", "appid": APPID_A, "secret": "wrong"},
                timeout=TIMEOUT,
            ),
            40125,
        ),
    ],
    ids=["get", "bad-json", "not-an-object", "empty-body", "force-not-bool", "wrong-secret"],
)
def test_stable_token_wants_a_post_json_object_and_answers_errcodes_otherwise(wechat, send, expected):
    response = send(f"{wechat.base_url}/cgi-bin/stable_token")

    assert response.status_code == 200
    assert response.json()["errcode"] == expected
    assert wechat.current_token(APPID_A) is None


# --- /cgi-bin/ticket/getticket and the generic API


def test_getticket_accepts_a_valid_token_from_either_api(wechat):
    from_token = get_ticket(wechat, get_token(wechat)["access_token"])
    from_stable = get_ticket(wechat, get_stable(wechat)["access_token"])

    assert from_token["errcode"] == 0
    assert from_token["errmsg"] == "ok"
    assert from_token["expires_in"] == 7200
    assert len(from_token["ticket"]) > 40
    assert from_stable["ticket"] == from_token["ticket"]  # one jsapi ticket per app


def test_getticket_rejects_unknown_superseded_and_expired_tokens(wechat, clock):
    first = get_token(wechat)["access_token"]
    get_token(wechat)
    newest = get_token(wechat)["access_token"]

    assert get_ticket(wechat, first)["errmsg"].startswith(
        "invalid credential, access_token is invalid or not latest"
    )
    assert errcode(get_ticket(wechat, "not-a-token")) == 40001
    assert errcode(get_ticket(wechat, None)) == 41001
    clock.advance(7200)
    expired = get_ticket(wechat, newest)
    assert expired["errcode"] == 42001
    assert expired["errmsg"].startswith("access_token expired")


def test_getticket_wants_a_known_ticket_type(wechat):
    token = get_token(wechat)["access_token"]
    assert errcode(get_ticket(wechat, token, kind="wx_card")) == 0
    assert errcode(get_ticket(wechat, token, kind="nonsense")) == 40097


def test_other_apis_answer_ok_for_a_valid_token_and_token_errors_otherwise(wechat, clock):
    token = get_token(wechat)["access_token"]

    ok = call_api(wechat, token)
    assert ok["errcode"] == 0
    assert ok["ip_list"]
    sent = requests.post(
        f"{wechat.base_url}/cgi-bin/message/custom/send",
        params={"access_token": token},
        json={"touser": "OPENID", "msgtype": "text", "text": {"content": "hi"}},
        timeout=TIMEOUT,
    ).json()
    assert sent == {"errcode": 0, "errmsg": "ok"}
    assert errcode(call_api(wechat, None)) == 41001
    assert errcode(call_api(wechat, "forged")) == 40001
    clock.advance(7200)
    assert errcode(call_api(wechat, token)) == 42001
    assert [c.appid for c in wechat.calls("api")] == [APPID_A, APPID_A, None, None, APPID_A]


def test_unknown_paths_and_bad_bodies_get_errcodes_never_a_traceback(wechat):
    token = get_token(wechat)["access_token"]

    assert errcode(requests.get(f"{wechat.base_url}/", timeout=TIMEOUT).json()) == 40066
    assert errcode(requests.get(f"{wechat.base_url}/favicon.ico", timeout=TIMEOUT).json()) == 40066
    bad = requests.post(
        f"{wechat.base_url}/cgi-bin/menu/create",
        params={"access_token": token},
        data=b"\xff{",
        timeout=TIMEOUT,
    )
    assert bad.status_code == 200
    assert bad.json()["errcode"] == 47001
    assert "Traceback" not in bad.text
    assert wechat.server_errors == []


# --- faults


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (-1, "system error"),
        (40001, "invalid credential, access_token is invalid or not latest"),
        (40013, "invalid appid"),
        (40125, "invalid appsecret"),
        (40164, "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist"),
        (45009, "reach max api daily quota limit"),
        (89503, "此次调用需要管理员确认"),
    ],
)
def test_errcode_fault_answers_wechats_message_and_issues_no_token(wechat, code, text):
    wechat.fail_next("token", ErrCode(code))

    answer = get_token(wechat)

    assert answer["errcode"] == code
    assert answer["errmsg"].startswith(text)
    assert RID.search(answer["errmsg"])
    assert wechat.current_token(APPID_A) is None
    assert wechat.calls("token")[0].errcode == code
    assert "access_token" in get_token(wechat)  # once only


def test_errcode_fault_with_a_given_message_answers_it_verbatim(wechat):
    wechat.fail_next("stable_token", ErrCode(45011, "slow down"))
    assert get_stable(wechat) == {"errcode": 45011, "errmsg": "slow down"}


def test_delay_fault_times_out_a_shorter_read_timeout_yet_wechat_issues_the_token(wechat):
    wechat.fail_next("token", Delay(0.15))
    params = {"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A}

    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{wechat.base_url}/cgi-bin/token", params=params, timeout=(TIMEOUT, 0.05))

    # The answer was lost, not the work: as at WeChat, the token was minted anyway.
    deadline = time.monotonic() + 2
    while wechat.current_token(APPID_A) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert wechat.current_token(APPID_A) is not None


def test_hang_fault_times_out_the_client_and_nothing_is_issued(wechat):
    wechat.fail_next("stable_token", Hang(0.1))
    body = {"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A}

    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{wechat.base_url}/cgi-bin/stable_token", json=body, timeout=(TIMEOUT, 0.05))

    time.sleep(0.15)
    assert wechat.current_token(APPID_A) is None
    assert wechat.token_calls(APPID_A) == 1


def test_delay_fault_shorter_than_the_timeout_answers_normally(wechat):
    wechat.fail_next("token", Delay(0.05))
    started = time.monotonic()
    assert "access_token" in get_token(wechat)
    assert time.monotonic() - started >= 0.05


def test_http_status_fault_answers_that_status_with_an_html_page(wechat):
    wechat.fail_next("token", HTTPStatus(503))
    wechat.fail_next("token", HTTPStatus(502, body="upstream went away"))

    first, second = token_response(wechat), token_response(wechat)

    assert (first.status_code, second.status_code) == (503, 502)
    assert "503 Service Unavailable" in first.text
    assert first.headers["Content-Type"].startswith("text/html")
    assert second.text == "upstream went away"
    assert wechat.current_token(APPID_A) is None


def test_non_json_fault_answers_an_html_body_with_status_200(wechat):
    wechat.fail_next("getticket", NonJSON())
    token = get_token(wechat)["access_token"]

    response = requests.get(
        f"{wechat.base_url}/cgi-bin/ticket/getticket",
        params={"access_token": token, "type": "jsapi"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.text == "<html>502 Bad Gateway</html>"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_drop_fault_closes_the_connection_without_an_answer(wechat):
    wechat.fail_next("stable_token", Drop())

    with pytest.raises(requests.exceptions.ConnectionError):
        get_stable(wechat)

    assert wechat.current_token(APPID_A) is None
    assert wechat.calls("stable_token")[0].errcode is None
    assert "access_token" in get_stable(wechat)


def test_callback_fault_runs_the_function_then_answers_normally(wechat):
    ran = threading.Event()
    wechat.fail_next("token", Callback(ran.set))

    answer = get_token(wechat)

    assert ran.is_set()
    assert wechat.is_valid(APPID_A, answer["access_token"])


def test_fail_next_applies_the_given_number_of_times_in_order(wechat):
    wechat.fail_next("token", ErrCode(-1), times=2)
    wechat.fail_next("token", ErrCode(45009))

    codes = [errcode(get_token(wechat)) for _ in range(4)]

    assert codes == [-1, -1, 45009, 0]


def test_fail_always_applies_until_cleared_with_none(wechat):
    wechat.fail_always("api", ErrCode(40001))
    token = get_token(wechat)["access_token"]
    assert [errcode(call_api(wechat, token)) for _ in range(3)] == [40001] * 3

    wechat.fail_always("api", None)

    assert errcode(call_api(wechat, token)) == 0


def test_a_fault_for_one_app_leaves_the_other_alone(wechat):
    wechat.fail_always("token", ErrCode(40164), appid=APPID_A)
    wechat.fail_next("token", HTTPStatus(500), appid=APPID_B)

    assert get_token(wechat, APPID_A, SECRET_A)["errcode"] == 40164
    assert token_response(wechat, APPID_B, SECRET_B).status_code == 500
    assert "access_token" in get_token(wechat, APPID_B, SECRET_B)
    assert get_token(wechat, APPID_A, SECRET_A)["errcode"] == 40164


def test_faults_name_a_known_endpoint(wechat):
    with pytest.raises(ValueError, match="unknown endpoint"):
        wechat.fail_next("tokens", ErrCode(-1))
    with pytest.raises(TypeError):
        wechat.fail_always("token", "503")


# --- records, counters, logs


def test_calls_are_recorded_with_the_secret_redacted(wechat, clock):
    get_token(wechat)
    clock.advance(5)
    get_stable(wechat, APPID_B, SECRET_B, force=True)

    token_call, stable_call = wechat.calls()

    assert (token_call.endpoint, token_call.method, token_call.appid) == ("token", "GET", APPID_A)
    assert token_call.params == {"grant_type": "client_credential", "appid": APPID_A, "secret": REDACTED}
    assert stable_call.params["force_refresh"] is True
    assert stable_call.params["secret"] == REDACTED
    assert stable_call.at == pytest.approx(token_call.at + 5)
    assert SECRET_A not in repr(wechat.calls())
    assert SECRET_B not in repr(wechat.calls())
    # (not == [stable_call]: `done` flips when the handler returns, which may be after the
    # client has read its answer, between the two copies)
    (only_b,) = wechat.calls(appid=APPID_B)
    assert only_b.endpoint == stable_call.endpoint
    assert (only_b.at, only_b.params) == (stable_call.at, stable_call.params)


def test_token_calls_counts_every_token_request_however_it_was_answered(wechat):
    wechat.fail_next("token", Drop())
    wechat.fail_next("stable_token", HTTPStatus(502))
    with pytest.raises(requests.exceptions.ConnectionError):
        get_token(wechat)
    stable_url = f"{wechat.base_url}/cgi-bin/stable_token"
    body = {"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A}
    assert requests.post(stable_url, json=body, timeout=TIMEOUT).status_code == 502
    get_token(wechat, secret="wrong")
    get_token(wechat)
    get_stable(wechat)
    get_token(wechat, APPID_B, SECRET_B)
    get_ticket(wechat, wechat.current_token(APPID_A))

    assert wechat.token_calls(APPID_A) == 5
    assert wechat.token_calls(APPID_B) == 1
    assert wechat.token_calls() == 6

    wechat.reset_calls()
    assert wechat.token_calls() == 0


def test_the_secret_never_reaches_the_log(clock):
    lines: list[str] = []
    with WeChatStandIn(clock=clock, log=lines.append) as standin:
        standin.add_app(APPID_A, SECRET_A)
        get_token(standin)
        get_token(standin, secret=SECRET_A + "x")
        requests.get(f"{standin.base_url}/cgi-bin/token?appsecret={SECRET_A}&bad=%", timeout=TIMEOUT)

    assert len(lines) == 3
    assert all(f"secret={REDACTED}" in line for line in lines), lines
    assert not any(SECRET_A in line for line in lines)


def test_the_server_is_quiet_by_default(wechat, capfd):
    get_token(wechat)
    get_token(wechat, secret="wrong")
    assert capfd.readouterr() == ("", "")


def test_200_concurrent_token_requests_are_all_answered_and_counted(wechat):
    start = threading.Barrier(200)

    def one(_: int) -> str:
        start.wait()
        return get_token(wechat)["access_token"]

    with ThreadPoolExecutor(max_workers=200) as pool:
        tokens = list(pool.map(one, range(200)))

    assert len(set(tokens)) == 200
    assert wechat.token_calls(APPID_A) == 200
    # Issued one after another: only the newest and the one before it are still valid.
    assert sum(wechat.is_valid(APPID_A, t) for t in tokens) == 2


def test_stop_closes_kept_alive_connections(clock):
    standin = WeChatStandIn(clock=clock).start()
    standin.add_app(APPID_A, SECRET_A)
    session = requests.Session()
    url = f"{standin.base_url}/cgi-bin/token"
    params = {"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A}
    assert session.get(url, params=params, timeout=TIMEOUT).status_code == 200

    standin.stop()

    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url, params=params, timeout=TIMEOUT)
    standin.stop()  # idempotent


def test_fake_clock_only_moves_when_told():
    clock = FakeClock(start=1000.0)
    assert clock() == clock.now() == 1000.0
    assert clock.advance(2.5) == 1002.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_command_line_prints_a_sandbox_banner_and_serves(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.wechat.standin", "--port", "0", "--app", f"{APPID_A}:{SECRET_A}"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        listening = process.stdout.readline()
        base_url = listening.split()[-1]
        params = {"grant_type": "client_credential", "appid": APPID_A, "secret": SECRET_A}
        answer = requests.get(f"{base_url}/cgi-bin/token", params=params, timeout=TIMEOUT).json()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=5)

    assert banner.startswith("SANDBOX — this is not WeChat")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
    assert answer["expires_in"] == 7200
    assert "GET /cgi-bin/token" in stderr
    assert SECRET_A not in stderr
