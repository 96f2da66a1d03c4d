"""The local loop as a newcomer runs it: ``python -m devtools.local``, driven over HTTP.

The loop runs as a subprocess on free ports with the WeChat stand-in, exactly what
``make local`` starts; the tests talk to it only through its sockets (the webhook API, the
local AWS, the stand-in) and its state file, then stop it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import redis
import requests

from devtools.sam.local_system import DEFAULT_PORTS
from devtools.wechat.exchange import send
from devtools.wechat.player import WeChatPlayer, text_xml

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
# The user's settings that would change what the loop runs.
USER_SETTINGS = (
    "WECHAT_APPID",
    "WECHAT_APPSECRET",
    "WECHAT_TOKEN",
    "WECHAT_ENCODING_AES_KEY",
    "TOKEN_STORE",
    "REDIS_URL",
)

pytestmark = pytest.mark.slow


@dataclass
class LocalLoop:
    process: subprocess.Popen[bytes]
    state_file: Path
    log_path: Path
    state: dict[str, Any]

    @property
    def api(self) -> str:
        return str(self.state["api_url"])

    @property
    def appid(self) -> str:
        return str(self.state["wechat"]["appid"])

    def player(self) -> WeChatPlayer:
        wechat = self.state["wechat"]
        return WeChatPlayer(wechat["appid"], wechat["token"], wechat["encoding_aes_key"])

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.state["aws_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def template_with_test_router(directory: Path) -> Path:
    """template.yaml, its webhook's CodeUri moved to a copy of functions/webhook/app.py whose
    ``handlers.py`` is wxtoken's test router (tests/fixtures/routers.py), not the user's.

    The seam is the one SAM itself reads, the template's CodeUri: app.py and the loop run
    unchanged, and ``make local`` keeps running the user's handlers. Every other code path
    is made absolute, so the copy runs the repository's code from anywhere.
    """
    code = directory / "webhook"
    code.mkdir()
    shutil.copy2(ROOT / "functions" / "webhook" / "app.py", code / "app.py")
    shutil.copy2(ROOT / "tests" / "fixtures" / "routers.py", code / "wxtoken_test_routers.py")
    handlers = "from wxtoken_test_routers import echo_router\n\nrouter = echo_router()\n"
    (code / "handlers.py").write_text(handlers, encoding="utf-8")

    def absolute(match: re.Match[str]) -> str:
        target = code if match[2].rstrip("/") == "functions/webhook" else ROOT / match[2]
        return f"{match[1]}: {target}/"

    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    moved, count = re.subn(r"^(\s*(?:CodeUri|ContentUri)): (\S+)$", absolute, text, flags=re.M)
    assert count >= 3, "template.yaml's CodeUri/ContentUri lines moved"
    assert str(code) in moved, "template.yaml's webhook CodeUri moved"
    template = directory / "template.yaml"
    template.write_text(moved, encoding="utf-8")
    return template


def start_local_loop(directory: Path, *args: str, **env: str) -> LocalLoop:
    """``python -m devtools.local`` on free ports; returns once its state file says ready."""
    state_file = directory / "state.json"
    log_path = directory / "local.log"
    environment = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS} | env
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.local",
                *("--port", "0", "--aws-port", "0", "--lambda-port", "0", "--wechat-port", "0"),
                *("--state-file", str(state_file)),
                *args,
            ],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    loop = LocalLoop(process, state_file, log_path, {})
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not state_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(loop)
            pytest.fail(f"the local loop did not get ready:\n{loop.log()}")
        time.sleep(0.05)
    loop.state = json.loads(state_file.read_text(encoding="utf-8"))
    return loop


def stop(loop: LocalLoop) -> int:
    if loop.process.poll() is None:
        loop.process.send_signal(signal.SIGTERM)
        try:
            loop.process.wait(timeout=STOP_TIMEOUT_SECONDS * 3)
        except subprocess.TimeoutExpired:
            loop.process.kill()
            loop.process.wait()
    return loop.process.returncode


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@pytest.fixture(scope="module")
def local_loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLoop]:
    # The loop on wxtoken's test router: its replies are pinned, whatever handlers.py holds.
    directory = tmp_path_factory.mktemp("local-loop")
    loop = start_local_loop(directory, "--template", str(template_with_test_router(directory)))
    try:
        yield loop
    finally:
        stop(loop)


def test_the_loop_refreshes_at_start_into_the_local_store(local_loop):
    # Given a loop that just became ready (the schedules fire once at start)
    # When another program reads the store, as docs/readers.md's `aws ssm get-parameter` does
    name = f"/wxtoken/{local_loop.appid}/access_token"
    raw = local_loop.aws("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    # Then it finds the record, and WeChat (the stand-in) takes its token
    record = json.loads(raw)
    assert set(record) == {"access_token", "expires_at", "fetched_at"}
    answer = requests.get(
        f"{local_loop.state['wechat']['api_base']}/cgi-bin/get_api_domain_ip",
        params={"access_token": record["access_token"]},
        timeout=5,
    ).json()
    assert answer["errcode"] == 0
    assert "SANDBOX — not WeChat" in local_loop.log()


def test_the_token_api_answers_the_stored_token(local_loop):
    response = requests.get(f"{local_loop.api}/token/{local_loop.appid}", timeout=10)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["expires_at"] > time.time() + 3600
    stored = local_loop.aws("ssm").get_parameter(
        Name=f"/wxtoken/{local_loop.appid}/access_token", WithDecryption=True
    )["Parameter"]["Value"]
    assert body["access_token"] == json.loads(stored)["access_token"]
    # tokens are never logged, not even by the sandbox's request log
    assert body["access_token"] not in local_loop.log()


def test_the_webhook_echoes_an_encrypted_text_message_over_http(local_loop):
    # Given WeChat's server, in safe mode
    player = local_loop.player()
    # When it posts a signed, encrypted text message to the local API
    exchange = send(
        local_loop.api, player, text_xml("你好, local loop", msg_id=time.time_ns()), encrypted=True
    )
    # Then the reply is encrypted for the app, and decrypts to the echo
    assert exchange.status == 200
    assert "<Encrypt>" in exchange.body
    assert "你好" not in exchange.body
    assert exchange.reply_fields["MsgType"] == "text"
    assert exchange.reply_fields["Content"] == "你好, local loop"


def test_a_request_outside_the_templates_routes_gets_api_gateways_404(local_loop):
    response = requests.delete(f"{local_loop.api}/token/{local_loop.appid}", timeout=5)

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_invoke_runs_a_function_against_the_running_loop(local_loop, tmp_path):
    # Given env-vars that move the refresh function's store prefix (and name a variable
    # the template does not declare, which sam ignores)
    env_vars = tmp_path / "env.json"
    env_vars.write_text(
        json.dumps({"RefreshTokenFunction": {"TOKEN_PARAMETER_PREFIX": "/wxtoken-e2e", "NOT_DECLARED": "x"}})
    )
    # When the docker-free `sam local invoke` runs the forced refresh event
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.invoke",
            "RefreshTokenFunction",
            *("-e", "events/force_all.json", "--env-vars", str(env_vars)),
            *("--state-file", str(local_loop.state_file)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then it printed the function's result, and the token landed in the loop's local AWS
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"refreshed": [local_loop.appid], "skipped": [], "failed": []}
    assert "using the running make local" in result.stderr
    assert "NOT_DECLARED: the template declares no such variable" in result.stderr
    assert "REPORT RequestId:" in result.stderr
    record = local_loop.aws("ssm").get_parameter(
        Name=f"/wxtoken-e2e/{local_loop.appid}/access_token", WithDecryption=True
    )["Parameter"]["Value"]
    assert json.loads(record)["access_token"]


def env_json_on_the_loops_ports(loop: LocalLoop) -> str:
    """events/env.json as it reads for a make local on the loop's (free) ports: only the
    ports of the default make local differ."""
    text = (ROOT / "events" / "env.json").read_text(encoding="utf-8")
    for default, url in (
        (DEFAULT_PORTS["aws"], loop.state["aws_endpoint"]),
        (DEFAULT_PORTS["wechat"], loop.state["wechat"]["api_base"]),
    ):
        text = text.replace(f"host.docker.internal:{default}", f"host.docker.internal:{urlsplit(url).port}")
    return text


def test_env_json_alone_takes_each_function_to_the_local_aws_as_sam_applies_it(local_loop, tmp_path):
    # Given events/env.json, applied as sam applies it: only the variables the template
    # declares, from env-vars (and the shell: a clean one here), no endpoint added by make local
    env_vars = tmp_path / "env.json"
    env_vars.write_text(env_json_on_the_loops_ports(local_loop), encoding="utf-8")
    shell = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS and not k.startswith("AWS_")}

    def sam_local_invoke(function: str, event: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                *("-m", "devtools.invoke", function, "-e", event, "--sam-env"),
                *("--env-vars", str(env_vars), "--state-file", str(local_loop.state_file)),
            ],
            cwd=ROOT,
            env=shell,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # When the refresh function runs the sample scheduled event
    refresh = sam_local_invoke("RefreshTokenFunction", "events/scheduled.json")
    # Then it refreshed into the local AWS, under env.json's prefix
    assert refresh.returncode == 0, refresh.stderr
    assert json.loads(refresh.stdout)["refreshed"] == [local_loop.appid]
    assert f"AWS_ENDPOINT_URL={local_loop.state['aws_endpoint']} (template: (empty))" in refresh.stderr
    assert "warning" not in refresh.stderr
    stored = local_loop.aws("ssm").get_parameter(
        Name=f"/wxtoken/{local_loop.appid}/access_token", WithDecryption=True
    )["Parameter"]["Value"]
    # When the webhook answers the token API's sample event
    webhook = sam_local_invoke("WebhookFunction", "events/webhook_token_api.json")
    # Then it read its secret and that token from the local AWS
    assert webhook.returncode == 0, webhook.stderr
    response = json.loads(webhook.stdout)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["access_token"] == json.loads(stored)["access_token"]


def test_invoke_without_a_running_loop_brings_its_own_local_aws_and_wechat(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.invoke",
            "RefreshTokenFunction",
            *("-e", "events/force_all.json", "--state-file", str(tmp_path / "none.json")),
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in USER_SETTINGS},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["refreshed"] == ["wx1111111111111111"]
    assert "SANDBOX — not WeChat" in result.stderr


@pytest.mark.redis
def test_sigterm_stops_a_redis_backed_loop_and_everything_it_started(tmp_path, redis_url):
    # Given a loop on TOKEN_STORE=redis, which stored its first token in that Redis
    loop = start_local_loop(tmp_path, TOKEN_STORE="redis", REDIS_URL=redis_url)
    try:
        appid = loop.appid
        raw = redis.Redis.from_url(redis_url).get(f"wxtoken:{{{appid}}}:access_token")
        assert raw is not None
        answer = requests.get(f"{loop.api}/token/{appid}", timeout=10).json()
        assert answer["access_token"] == json.loads(raw)["access_token"]
        processes = loop.state["processes"]
        # one process per function, and the local AWS
        assert {"RefreshTokenFunction", "WebhookFunction", "local-aws"} <= set(processes)
        children = list(processes.values())
    finally:
        # When it gets SIGTERM
        started = time.monotonic()
        code = stop(loop)
    # Then it exits 0 within seconds, with no process, port or state file left behind
    assert code == 0, loop.log()
    assert time.monotonic() - started < STOP_TIMEOUT_SECONDS
    assert not [pid for pid in children if alive(pid)]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{loop.api}/token/{appid}", timeout=2)
    assert not (tmp_path / "state.json").exists()
    assert "stopped" in loop.log()
