"""WeChat's HTTP transport (wxtoken.wechat.http) over real sockets: what requests did for us
before (TLS checked against a CA bundle, the environment's proxies and NO_PROXY, a proxy's
credentials, the query and JSON body) still happens."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import logging
import select
import socket
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

from wxtoken.deadline import Deadline
from wxtoken.errors import WeChatTransportError
from wxtoken.wechat.api import WeChatAPI
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


def _serve[Server: http.server.HTTPServer](server: Server) -> Iterator[Server]:
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
    at = f"127.0.0.1:{proxy.server_address[1]}"
    no_proxy_env.setenv("HTTP_PROXY", f"http://user%40corp:p%3Ass@{at}")  # pragma: allowlist secret
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


class ConnectProxy(http.server.ThreadingHTTPServer):
    """An HTTPS proxy as corporate ones are: a ``CONNECT`` tunnel, its headers kept."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.connects: list[dict[str, str]] = []


class _Tunnel(http.server.BaseHTTPRequestHandler):
    def do_CONNECT(self) -> None:
        assert isinstance(self.server, ConnectProxy)
        self.server.connects.append({"target": self.path, **{k.title(): v for k, v in self.headers.items()}})
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=5)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 5)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def connect_proxy() -> Iterator[ConnectProxy]:
    yield from _serve(ConnectProxy())


def test_https_goes_through_the_proxys_tunnel_with_its_credentials(no_proxy_env, tls, connect_proxy) -> None:
    # The production path: WeChat over TLS, through an egress proxy that wants a password.
    server, cert_file = tls
    no_proxy_env.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    proxy_url = (
        f"http://wxtoken:pr0xy@127.0.0.1:{connect_proxy.server_address[1]}"  # pragma: allowlist secret
    )
    client = WeChatHttp(proxy=proxy_url)
    status, _ = client.request(
        "GET", f"{server.url}/cgi-bin/token", params={"a": "1"}, json_body=None, timeout=TIMEOUT
    )
    assert status == 200
    (connect,) = connect_proxy.connects
    assert connect["target"] == f"127.0.0.1:{server.server_address[1]}"
    assert base64.b64decode(connect["Proxy-Authorization"].removeprefix("Basic ")) == b"wxtoken:pr0xy"
    (seen,) = server.seen
    assert seen["target"] == "/cgi-bin/token?a=1"  # inside the tunnel: the origin's own form
    assert "Proxy-Authorization" not in seen["headers"]  # the password stays with the proxy


def test_a_parameter_whose_value_is_none_is_left_out(no_proxy_env, plain) -> None:
    WeChatHttp().request(
        "GET", f"{plain.url}/x", params={"a": "1", "b": None}, json_body=None, timeout=TIMEOUT
    )
    assert plain.seen[0]["target"] == "/x?a=1"


def test_urllib3s_debug_lines_never_show_a_query(no_proxy_env, plain, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3")
    secret = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"  # pragma: allowlist secret
    WeChatHttp().request(
        "GET", f"{plain.url}/cgi-bin/token", params={"secret": secret}, json_body=None, timeout=TIMEOUT
    )
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("urllib3")]
    assert any("/cgi-bin/token?<query not logged>" in line for line in lines), lines
    assert not any(secret in line for line in lines)


def test_a_dead_egress_proxy_is_known_to_have_sent_nothing(no_proxy_env) -> None:
    # So a token call through it is retried like a refused connection, not as a maybe-mint.
    api = WeChatAPI("http://127.0.0.1:1", proxy="http://127.0.0.1:9", max_attempts=1, read_timeout=1)
    with pytest.raises(WeChatTransportError, match="could not connect to the egress proxy") as caught:
        api.access_token("wx1111111111111111", "s" * 32, deadline=Deadline.after(5))
    assert caught.value.maybe_processed is False
    assert caught.value.processed_earlier is False


def test_a_body_that_is_not_json_is_a_transport_error_not_a_crash(no_proxy_env, plain) -> None:
    api = WeChatAPI(plain.url, max_attempts=1)
    with pytest.raises(WeChatTransportError, match=r"failed \(TypeError\)"):
        api.post("/x", {"when": object()}, deadline=Deadline.after(5))
    assert plain.seen == []
