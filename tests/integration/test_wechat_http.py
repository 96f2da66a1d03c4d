"""WeChat's HTTP transport (wxtoken.wechat.http) over real sockets: what requests did for us
before (TLS checked against a CA bundle, the environment's proxies and NO_PROXY, a proxy's
credentials, the query and JSON body) still happens."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from urllib3 import exceptions as http_errors

from wxtoken.wechat.http import WeChatHttp

TIMEOUT = (2.0, 2.0)


class Recorder(http.server.ThreadingHTTPServer):
    """Answers every request ``{"errcode": 0}`` and keeps its request line, headers and body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open, as WeChat's servers do

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        assert isinstance(self.server, Recorder)
        self.server.seen.append(
            {
                "target": self.path,
                "headers": {name.title(): value for name, value in self.headers.items()},
                "body": body,
                "peer": self.client_address[1],
            }
        )
        answer = b'{"errcode": 0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = _answer

    def log_message(self, *_: Any) -> None:
        pass


def _serve(server: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def plain() -> Iterator[Recorder]:
    yield from _serve(Recorder())


@pytest.fixture
def proxy() -> Iterator[Recorder]:
    yield from _serve(Recorder())


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Recorder, Path]]:
    """An HTTPS server whose self-signed certificate no public bundle trusts; the cert's file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = Recorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for running in _serve(server):
        yield running, cert_file


def test_the_query_and_the_json_body_are_sent_as_requests_sent_them(no_proxy_env, plain) -> None:
    status, body = WeChatHttp().request(
        "POST",
        f"{plain.url}/cgi-bin/stable_token",
        params={"access_token": "t", "n": "中"},
        json_body={"appid": "wx1", "force_refresh": False, "name": "中"},
        timeout=TIMEOUT,
    )
    assert (status, json.loads(body)) == (200, {"errcode": 0})
    (seen,) = plain.seen
    assert seen["target"] == "/cgi-bin/stable_token?access_token=t&n=%E4%B8%AD"
    assert seen["body"] == b'{"appid": "wx1", "force_refresh": false, "name": "\\u4e2d"}'
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["User-Agent"] == "wxtoken"


def test_a_certificate_outside_the_bundle_is_refused(no_proxy_env, tls) -> None:
    server, _ = tls
    with pytest.raises(http_errors.SSLError):
        WeChatHttp().request(
            "GET", f"{server.url}/cgi-bin/token", params=None, json_body=None, timeout=TIMEOUT
        )
    assert server.seen == []


def test_requests_ca_bundle_is_honoured_as_requests_did(no_proxy_env, tls) -> None:
    server, cert_file = tls
    no_proxy_env.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    status, _ = WeChatHttp().request("GET", f"{server.url}/x", params=None, json_body=None, timeout=TIMEOUT)
    assert status == 200
    assert len(server.seen) == 1


def test_the_environments_proxy_carries_the_call_with_its_credentials(no_proxy_env, plain, proxy) -> None:
    no_proxy_env.setenv("HTTP_PROXY", f"http://user%40corp:p%3Ass@127.0.0.1:{proxy.server_address[1]}")
    WeChatHttp().request(
        "GET", f"{plain.url}/cgi-bin/token", params={"a": "1"}, json_body=None, timeout=TIMEOUT
    )
    assert plain.seen == []
    (seen,) = proxy.seen
    assert seen["target"] == f"{plain.url}/cgi-bin/token?a=1"  # a proxied request's absolute URI
    credentials = base64.b64decode(seen["headers"]["Proxy-Authorization"].removeprefix("Basic "))
    assert credentials == b"user@corp:p:ss"


def test_no_proxy_exempts_a_host_from_the_environments_proxy(no_proxy_env, plain, proxy) -> None:
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    no_proxy_env.setenv("NO_PROXY", "example.com, 127.0.0.1")
    WeChatHttp().request("GET", f"{plain.url}/x", params=None, json_body=None, timeout=TIMEOUT)
    assert (len(plain.seen), proxy.seen) == (1, [])


def test_the_proxy_given_wins_over_the_environment_and_no_proxy(no_proxy_env, plain, proxy) -> None:
    no_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    WeChatHttp(proxy=proxy.url).request("GET", f"{plain.url}/x", params=None, json_body=None, timeout=TIMEOUT)
    assert plain.seen == []
    assert len(proxy.seen) == 1
    assert "Proxy-Authorization" not in proxy.seen[0]["headers"]


def test_connections_are_kept_alive_between_calls(no_proxy_env, plain) -> None:
    client = WeChatHttp()
    for _ in range(3):
        client.request("GET", f"{plain.url}/x", params=None, json_body=None, timeout=TIMEOUT)
    assert len(plain.seen) == 3
    assert len({seen["peer"] for seen in plain.seen}) == 1  # one connection, one client port
