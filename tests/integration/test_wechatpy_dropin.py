"""The wechatpy drop-in against the WeChat stand-in over HTTP, on both stores.

The refresh side is wired as in ``test_token_client.py``: a real :class:`TokenClient` on
the store, its compare-and-refresh run in-process by the real refresher against the
stand-in. :class:`AttributingRequester` counts the ``/cgi-bin/token`` calls made while a
compare-and-refresh runs, so a test can tell the refresh path's token calls from any the
drop-in would make.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from wechatpy import WeChatClient as PlainWeChatClient
from wechatpy.exceptions import WeChatClientException

from devtools.wechat.standin import ErrCode
from tests.fixtures.wechat import APPID_A, SECRET_A
from tests.integration.test_token_client import in_threads, refresh
from wxtoken.client import TokenClient
from wxtoken.client import token_client as client_module
from wxtoken.errors import RefreshRequestError
from wxtoken.integrations.wechatpy import WeChatClient
from wxtoken.refresh.in_process import InProcessRefreshRequester
from wxtoken.wechat.wiring import build_wechat_api

OPENID = "oABCD1234567890abcdefghijklm"


class AttributingRequester:
    """The in-process refresher, recording each request and the token calls made inside it."""

    def __init__(self, system: Any) -> None:
        self._inner = InProcessRefreshRequester(system.refresher(), clock=system.clock)
        self._wechat = system.wechat
        self.calls: list[tuple[str, str]] = []
        self.token_calls_inside = 0
        self._lock = threading.Lock()

    def compare_and_refresh(self, appid: str, invalid_token: str) -> None:
        with self._lock:
            self.calls.append((appid, invalid_token))
            before = self._wechat.token_calls()
            try:
                self._inner.compare_and_refresh(appid, invalid_token)
            finally:
                self.token_calls_inside += self._wechat.token_calls() - before


def dropin(system: Any, **kwargs: Any) -> tuple[WeChatClient, AttributingRequester]:
    requester = AttributingRequester(system)
    wechat = build_wechat_api(system.settings)
    tokens = TokenClient(store=system.store(), wechat=wechat, refresher=requester, clock=system.clock)
    return WeChatClient(APPID_A, token_client=tokens, **kwargs), requester


def api_calls(system: Any) -> list[tuple[str, int | None, str]]:
    return [(c.path, c.errcode, c.params.get("access_token")) for c in system.wechat.calls("api")]


def test_api_objects_call_wechat_with_the_stored_token(system):
    # Given a token stored by the refresh function
    refresh(system)
    stored = system.stored(APPID_A).value
    token_calls = system.wechat.token_calls()
    client, requester = dropin(system, timeout=5)

    # When business code uses wechatpy's API objects as before (default base, an object
    # with its own base, an absolute URL, a plain client.get)
    sent = client.message.send_text(OPENID, "hello")
    user = client.user.get(OPENID)
    client.wxa.bind_tester("a-tester")
    client.customservice.add_account("kf1@gh_test", "Kefu", "pw")
    ips = client.get("get_api_domain_ip")

    # Then every call reached the stand-in (WECHAT_API_BASE) with the stored token
    assert sent["errcode"] == 0
    assert user["errcode"] == 0
    assert ips["ip_list"]
    assert api_calls(system) == [
        ("/cgi-bin/message/custom/send", 0, stored),
        ("/cgi-bin/user/info", 0, stored),
        ("/wxa/bind_tester", 0, stored),
        ("/customservice/kfaccount/add", 0, stored),
        ("/cgi-bin/get_api_domain_ip", 0, stored),
    ]
    assert system.wechat.calls("api")[1].params["openid"] == OPENID
    # and nobody asked WeChat for a token
    assert system.wechat.token_calls() == token_calls
    assert requester.calls == []


def test_fetch_access_token_reads_wxtoken_and_never_calls_the_token_api(system):
    refresh(system)
    stored = system.stored(APPID_A)
    token_calls = system.wechat.token_calls()
    client, requester = dropin(system, secret=SECRET_A)

    answer = client.fetch_access_token()

    assert answer["access_token"] == stored.value == client.access_token
    assert 0 < answer["expires_in"] <= 7200
    assert client.expires_at == stored.expires_at
    assert system.wechat.token_calls() == token_calls
    assert requester.calls == []


def test_a_token_retired_by_an_outside_fetch_costs_one_token_call_all_from_the_refresh(system):
    # Given a client that has used the stored token
    refresh(system)
    client, requester = dropin(system)
    client.message.send_text(OPENID, "before")
    retired = system.stored(APPID_A).value
    # and another program that fetched a token with the same AppSecret, 5 minutes ago
    system.wechat.outside_fetch(APPID_A)  # not counted: it does not come through the socket
    system.clock.advance(301)
    token_calls = system.wechat.token_calls()

    # When the client calls again
    answer = client.message.send_text(OPENID, "after")

    # Then one compare-and-refresh replaced the token and the call was retried with it
    assert answer["errcode"] == 0
    assert requester.calls == [(APPID_A, retired)]
    replacement = system.stored(APPID_A).value
    assert replacement != retired
    path = "/cgi-bin/message/custom/send"
    assert api_calls(system) == [(path, 0, retired), (path, 40001, retired), (path, 0, replacement)]
    # with exactly one WeChat token call, made by the refresh path, none by the drop-in
    assert system.wechat.token_calls() == token_calls + 1
    assert requester.token_calls_inside == 1


@pytest.mark.parametrize("system", ["redis"], indirect=True)  # nothing here depends on the store
def test_threads_seeing_the_same_rejected_token_share_one_compare_and_refresh(system):
    refresh(system)
    client, requester = dropin(system)
    rejected = client.access_token
    system.wechat.revoke_tokens(APPID_A)
    token_calls = system.wechat.token_calls()

    answers = in_threads(20, lambda: client.user.get(OPENID))

    assert all(answer["errcode"] == 0 for answer in answers)
    assert requester.calls == [(APPID_A, rejected)]
    assert system.wechat.token_calls() == token_calls + 1 == token_calls + requester.token_calls_inside
    assert sorted(errcode for _, errcode, _ in api_calls(system)) == [0] * 20 + [40001] * 20


def test_a_second_rejection_raises_wechatpys_error_after_one_compare_and_refresh(system):
    # Given a WeChat that rejects every token (something keeps fetching tokens elsewhere)
    refresh(system)
    client, requester = dropin(system)
    token_calls = system.wechat.token_calls()
    system.wechat.fail_always("api", ErrCode(40001))

    # When the client calls: wechatpy's own client would fetch and retry without end here
    with pytest.raises(WeChatClientException) as caught:
        client.user.get(OPENID)

    # Then it asked for one compare-and-refresh, retried once, and raised as wechatpy does
    assert caught.value.errcode == 40001
    assert "rejected again right after a refresh" in caught.value.errmsg
    assert len(requester.calls) == 1
    assert [errcode for _, errcode, _ in api_calls(system)] == [40001, 40001]
    assert system.wechat.token_calls() == token_calls + 1 == token_calls + requester.token_calls_inside
    assert not any(token in str(caught.value) for token in system.wechat.issued())


def test_auto_retry_false_raises_the_first_rejection_as_wechatpy_does(system):
    refresh(system)
    client, requester = dropin(system, auto_retry=False)
    system.wechat.fail_always("api", ErrCode(42001))

    with pytest.raises(WeChatClientException) as caught:
        client.menu.get()

    assert caught.value.errcode == 42001
    assert requester.calls == []
    assert len(system.wechat.calls("api")) == 1


@pytest.mark.parametrize("system", ["redis"], indirect=True)  # nothing here depends on the store
def test_a_failed_refresh_raises_wxtokens_error_without_calling_again(system):
    refresh(system)
    client, requester = dropin(system)
    system.wechat.revoke_tokens(APPID_A)
    system.wechat.fail_always("token", ErrCode(45009))

    with pytest.raises(RefreshRequestError):
        client.message.send_text(OPENID, "hello")

    assert len(requester.calls) == 1
    assert [errcode for _, errcode, _ in api_calls(system)] == [40001]


@pytest.mark.parametrize("system", ["redis"], indirect=True)
def test_default_token_client_and_api_base_come_from_wxtokens_environment(system, monkeypatch):
    # The system fixture set WECHAT_API_BASE (the stand-in) and the store in the environment.
    monkeypatch.setattr(client_module, "_default_client", None)
    refresh(system)

    client = WeChatClient(APPID_A)
    answer = client.user.get(OPENID)

    assert answer["errcode"] == 0
    assert api_calls(system) == [("/cgi-bin/user/info", 0, system.stored(APPID_A).value)]


def test_passing_an_access_token_is_refused(system):
    tokens = TokenClient.from_settings(system.settings, store=system.store())
    with pytest.raises(ValueError, match="drop access_token"):
        WeChatClient(APPID_A, SECRET_A, "a-token", token_client=tokens)


def test_same_api_objects_as_wechatpys_client(system):
    tokens = TokenClient.from_settings(system.settings, store=system.store())
    client = WeChatClient(APPID_A, token_client=tokens)
    assert isinstance(client, PlainWeChatClient)
    for name in ("message", "menu", "user", "media", "jsapi", "wxa", "customservice"):
        assert type(getattr(client, name)) is type(getattr(PlainWeChatClient, name))
        assert getattr(client, name)._client is client


class StubTokens:
    """A token source without a store: hands out tokens the test fetched from the stand-in,
    and counts the replacements asked for (the drop-in needs only these three members)."""

    def __init__(self, wechat: Any, replacement: str | None) -> None:
        self.wechat_api_base = wechat.base_url
        self.token = "first-token"
        self.replacement = replacement
        self.replaced: list[str] = []

    def access_token(self, appid: str) -> str:
        return self.token

    def replace_rejected(self, appid: str, rejected: str) -> str | None:
        self.replaced.append(rejected)
        return self.replacement


@pytest.mark.parametrize("replacement", ["second-token", None], ids=["replaced", "kept"])
def test_consecutive_rejections_ask_for_one_replacement_then_raise(wechat, replacement):
    # Given WeChat rejecting every token (neither stub token is known to the stand-in)
    tokens = StubTokens(wechat, replacement)
    client = WeChatClient(APPID_A, token_client=tokens)  # type: ignore[arg-type]

    with pytest.raises(WeChatClientException) as caught:
        client.menu.get()

    # Then one replacement was asked for, and the call was made at most twice
    assert caught.value.errcode == 40001
    assert tokens.replaced == ["first-token"]
    sent = [c.params["access_token"] for c in wechat.calls("api")]
    assert sent == (["first-token", "second-token"] if replacement else ["first-token"])
    assert wechat.token_calls() == 0


def test_a_rejection_nested_in_base_resp_gets_one_replacement_too(wechat):
    """wechatpy's device APIs answer ``{"base_resp": {"errcode": …}}``, which its own
    ``_handle_result`` lifts to the top before retrying without bound."""
    tokens = StubTokens(wechat, None)
    client = WeChatClient(APPID_A, token_client=tokens)  # type: ignore[arg-type]
    answer = {"base_resp": {"errcode": 40001, "errmsg": "invalid credential"}}

    with pytest.raises(WeChatClientException) as caught:
        client._handle_result(
            answer, "get", f"{wechat.base_url}/device/getstat", params={"access_token": "first-token"}
        )

    assert caught.value.errcode == 40001
    assert "invalid credential" in caught.value.errmsg
    assert tokens.replaced == ["first-token"]
    assert wechat.token_calls() == 0
