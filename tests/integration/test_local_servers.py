"""make local's servers and start-up, over real sockets: a client hanging up, taken ports,
a Redis it starts for a custom REDIS_URL."""

from __future__ import annotations

import io
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from devtools.sam.api_gateway import HttpApiServer
from devtools.sam.host import Console, Invocation
from devtools.sam.local_system import LocalError, LocalOptions, LocalSystem
from devtools.sam.template import Route
from tests.fixtures.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
FAKE_SECRET = "not-a-real-one"  # pragma: allowlist secret


def test_a_client_that_hangs_up_before_the_answer_is_one_line_not_a_traceback(capfd):
    # Given the local API, with a function slow enough for the client to leave first
    out = io.StringIO()
    started, answered = threading.Event(), threading.Event()

    def slow(function: str, event: dict[str, object]) -> Invocation:
        started.set()
        time.sleep(0.3)
        answered.set()
        return Invocation(function, "r", True, {"statusCode": 200, "body": "x" * 65536}, 300.0)

    api = HttpApiServer([Route("GET", "/token/{appid}", "F", None)], slow, Console(out), port=0).start()
    try:
        # When a client sends a request and resets the connection while it runs
        with socket.create_connection(api._server.server_address[:2]) as client:
            client.sendall(b"GET /token/wx1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert started.wait(5)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert answered.wait(5)
        deadline = time.monotonic() + 5
        while "hung up" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        api.stop()
    # Then the console says so in one line, and nothing prints a traceback
    lines = out.getvalue().splitlines()
    assert len([line for line in lines if line.startswith("[api]") and "hung up" in line]) == 1, lines
    assert "Traceback" not in capfd.readouterr().err


def test_make_local_names_every_port_in_use_and_starts_nothing():
    # Given two of make local's ports taken by someone else
    with socket.socket() as api, socket.socket() as aws:
        for taken in (api, aws):
            taken.bind(("127.0.0.1", 0))
            taken.listen()
        api_port, aws_port = api.getsockname()[1], aws.getsockname()[1]
        # When make local starts on them
        result = subprocess.run(
            [
                *(sys.executable, "-m", "devtools.local", "--port", str(api_port)),
                *("--lambda-port", "0", "--aws-port", str(aws_port), "--wechat-port", "0"),
                *("--state-file", "/nonexistent/state.json"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    # Then it fails at once, naming each port with the flag that moves it
    assert result.returncode == 1
    assert f"{api_port} (the HTTP API, --port)" in result.stdout
    assert f"{aws_port} (the local AWS (moto), --aws-port)" in result.stdout
    assert "ready in" not in result.stdout


@pytest.mark.redis
def test_a_real_app_is_never_served_beyond_this_machine():
    # When make local would serve a real app (real AppSecret, real tokens) on every interface
    result = subprocess.run(
        [
            *(sys.executable, "-m", "devtools.local", "--host", "0.0.0.0", "--port", "0"),
            *("--lambda-port", "0", "--aws-port", "0", "--wechat-port", "0"),
            *("--state-file", "/nonexistent/state.json"),
        ],
        cwd=ROOT,
        env={**os.environ, "WECHAT_APPID": "wx2222222222222222", "WECHAT_APPSECRET": FAKE_SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then it refuses before starting anything, saying what would leak
    assert result.returncode == 1
    assert "AppSecret" in result.stdout
    assert "ready in" not in result.stdout
    assert FAKE_SECRET not in result.stdout + result.stderr


def test_a_custom_redis_url_on_this_machine_gets_a_redis_server_started(tmp_path):
    # Given TOKEN_STORE=redis and a REDIS_URL on this machine where nothing answers
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/2"
    options = LocalOptions.from_environ({"TOKEN_STORE": "redis", "REDIS_URL": url})
    out = io.StringIO()
    system = LocalSystem(options, Console(out))
    try:
        # When make local brings up its Redis
        system._start_redis()
        # Then a redis-server answers at that URL, password included, and the log hides it
        with redis.Redis.from_url(url) as client:
            assert client.ping()
        assert "s3cret" not in out.getvalue()
        assert "started redis-server" in out.getvalue()
    finally:
        system.stop()
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url, socket_connect_timeout=1) as client:
        client.ping()


def test_a_redis_url_on_another_machine_is_never_started_here():
    options = LocalOptions.from_environ({"TOKEN_STORE": "redis", "REDIS_URL": "redis://192.0.2.1:6379/0"})
    system = LocalSystem(options, Console(io.StringIO()))

    with pytest.raises(LocalError, match=re.escape("nothing answers at REDIS_URL=redis://192.0.2.1:6379/0")):
        system._start_redis()
