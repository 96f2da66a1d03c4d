"""The egress proxy from a secret (issue 9, finding 8): credentials out of the environment.

``HTTPS_PROXY`` shows a proxy's user:password to anyone who may read the function's
configuration; ``HTTPS_PROXY_SECRET_ID`` names a secret holding the URL instead. Here WeChat's
base URL is a port where nothing listens, and the proxy is the stand-in itself (it answers a
proxied request's absolute URI like a direct one): a token arrives only through the proxy.
"""

from __future__ import annotations

import pytest

from tests.fixtures.wechat import APPID_A, APPID_B
from tests.integration.scenarios import capture_logs
from wxtoken.deadline import Deadline
from wxtoken.errors import ConfigError
from wxtoken.refresh import RefreshRequest, Trigger

NOWHERE = "http://127.0.0.1:9"  # the discard port: refused, nothing listens
PROXY_PASSWORD = "pr0xyPassw0rdZ"


def proxied(system, monkeypatch, value: str):
    system.aws.client("secretsmanager").create_secret(Name="wxtoken/proxy", SecretString=value)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    return system.refresher(
        WECHAT_API_BASE=NOWHERE, HTTPS_PROXY_SECRET_ID="wxtoken/proxy", WECHAT_MAX_ATTEMPTS="1"
    )


def run(refresher, system):
    return refresher.run(RefreshRequest(Trigger.SCHEDULED, system.clock()), Deadline.after(30))


def test_wechat_is_called_through_the_proxy_in_the_secret(system, monkeypatch):
    port = system.wechat.base_url.rsplit(":", 1)[1]
    refresher = proxied(system, monkeypatch, f"http://wxtoken:{PROXY_PASSWORD}@127.0.0.1:{port}")

    with capture_logs() as logs:
        report = run(refresher, system)

    assert sorted(report.refreshed) == [APPID_A, APPID_B], report
    assert system.wechat.is_valid(APPID_A, system.stored(APPID_A).value)
    assert PROXY_PASSWORD not in logs.text


def test_without_the_proxy_the_same_setup_cannot_reach_wechat(system, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "")
    refresher = system.refresher(WECHAT_API_BASE=NOWHERE, WECHAT_MAX_ATTEMPTS="1")

    report = run(refresher, system)

    assert report.refreshed == []
    assert {f["appid"] for f in report.failed} == {APPID_A, APPID_B}


@pytest.mark.parametrize("value", ["not a url", "ftp://proxy:21", f"{PROXY_PASSWORD}"])
def test_a_proxy_secret_that_is_not_a_proxy_url_is_a_clear_error_that_never_echoes_it(
    system, monkeypatch, value
):
    with pytest.raises(ConfigError, match="egress proxy secret") as raised:
        proxied(system, monkeypatch, value)
    assert value not in str(raised.value)


def test_a_missing_proxy_secret_names_it_without_a_value(system, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(ConfigError, match=r"egress proxy secret \(ResourceNotFoundException\)"):
        system.refresher(HTTPS_PROXY_SECRET_ID="wxtoken/no-such-proxy")


def test_the_proxy_in_the_secret_wins_over_https_proxy(system, monkeypatch):
    port = system.wechat.base_url.rsplit(":", 1)[1]
    system.aws.client("secretsmanager").create_secret(
        Name="wxtoken/proxy", SecretString=f"http://127.0.0.1:{port}"
    )
    # The environment's proxy leads nowhere; AWS (moto, on 127.0.0.1) bypasses it, as the
    # template's NO_PROXY makes AWS's endpoints do; WeChat is on another loopback address.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.3:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.3:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    refresher = system.refresher(
        WECHAT_API_BASE="http://127.0.0.2:9", HTTPS_PROXY_SECRET_ID="wxtoken/proxy", WECHAT_MAX_ATTEMPTS="1"
    )

    report = run(refresher, system)

    assert sorted(report.refreshed) == [APPID_A, APPID_B], report
