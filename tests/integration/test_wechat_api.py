"""The WeChat client over a real socket: retries bounded by the deadline, no secret leaks."""

from __future__ import annotations

import traceback

import pytest

from devtools.wechat.standin import Delay, ErrCode, HTTPStatus
from tests.fixtures.redis_server import free_port
from tests.fixtures.wechat import APPID_A, SECRET_A
from wxtoken.deadline import Deadline
from wxtoken.errors import IPNotAllowlistedError, TokenRejectedError, WeChatTransportError
from wxtoken.wechat.api import WeChatAPI


def api(base_url: str, **kwargs) -> WeChatAPI:
    options = {"connect_timeout": 0.5, "read_timeout": 0.3, "max_attempts": 10, "sleep": lambda _: None}
    return WeChatAPI(base_url, **{**options, **kwargs})


def test_token_grant_is_parsed_and_its_repr_hides_the_token(wechat):
    grant = api(wechat.base_url).access_token(APPID_A, SECRET_A, deadline=Deadline.after(5))
    assert grant.value == wechat.current_token(APPID_A)
    assert grant.expires_in == 7200
    assert grant.value not in repr(grant)


def test_retries_stop_at_the_deadline_not_at_max_attempts(wechat):
    wechat.fail_always("stable_token", Delay(1.0))

    with pytest.raises(WeChatTransportError):
        api(wechat.base_url).access_token(APPID_A, SECRET_A, stable=True, deadline=Deadline.after(1.0))

    assert 1 <= len(wechat.calls("stable_token")) <= 2  # far fewer than max_attempts=10


def test_transport_errors_never_carry_the_secret_or_chain_the_url(wechat):
    wechat.fail_always("token", HTTPStatus(502))

    with pytest.raises(WeChatTransportError) as raised:
        api(wechat.base_url).access_token(APPID_A, SECRET_A, deadline=Deadline.after(5))

    text = "".join(traceback.format_exception(raised.value))
    assert SECRET_A not in text
    assert "secret=" not in text
    assert raised.value.__cause__ is None


def test_refused_connections_are_retried_even_for_the_classic_token_call():
    # Nothing listens: WeChat certainly never saw the request, so replaying is safe.
    attempts: list[float] = []
    client = api(f"http://127.0.0.1:{free_port()}", max_attempts=3, sleep=attempts.append)

    with pytest.raises(WeChatTransportError, match="could not connect") as raised:
        client.access_token(APPID_A, SECRET_A, deadline=Deadline.after(5))

    assert len(attempts) == 2  # slept between three attempts
    assert raised.value.maybe_processed is False


def test_40164_names_the_ip_to_allow_list(wechat):
    wechat.fail_always("token", ErrCode(40164))

    with pytest.raises(IPNotAllowlistedError, match=r"egress IP 203\.0\.113\.7"):
        api(wechat.base_url).access_token(APPID_A, SECRET_A, deadline=Deadline.after(5))


def test_api_call_with_a_retired_token_raises_token_rejected(wechat, clock):
    client = api(wechat.base_url)
    old = client.access_token(APPID_A, SECRET_A, deadline=Deadline.after(5)).value
    client.access_token(APPID_A, SECRET_A, deadline=Deadline.after(5))
    clock.advance(301)

    with pytest.raises(TokenRejectedError) as raised:
        client.call("GET", "/cgi-bin/get_api_domain_ip", access_token=old, deadline=Deadline.after(5))

    assert raised.value.errcode == 40001
    assert old not in str(raised.value)
