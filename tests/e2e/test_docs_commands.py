"""The docs' local-loop commands, run as written: ``make local`` on its default ports, then
each command the README and docs/ give "while it runs", through bash, from the repository.

The token they print is judged at the WeChat stand-in (is it the one WeChat accepts now?),
not by our record. tests/unit/test_docs_commands.py lists which commands this file runs.
Skipped when a default port is taken (a developer's own ``make local``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.sam.local_system import DEFAULT_STATE_FILE
from tests.unit.test_docs_commands import NOT_RUN, shell_commands

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORTS = (3100, 3101, 4566, 8081)  # API, Lambda's Invoke API, local AWS, the sandbox
SANDBOX = "http://127.0.0.1:8081"
APPID = "wx1111111111111111"
START_TIMEOUT_SECONDS = 60.0
USER_SETTINGS = ("WECHAT_APPID", "WECHAT_APPSECRET", "WECHAT_TOKEN", "WECHAT_ENCODING_AES_KEY", "TOKEN_STORE")

pytestmark = pytest.mark.slow


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# make's own variables, inherited when the suite runs under make test: a user's shell has none.
MAKE_VARIABLES = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def _environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in USER_SETTINGS and k not in MAKE_VARIABLES and not k.startswith("AWS_")
    }


@pytest.fixture(scope="module")
def make_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    taken = [port for port in DEFAULT_PORTS if _taken(port)]
    if taken:
        pytest.skip(f"make local's default ports are taken: {taken}")
    log_path = tmp_path_factory.mktemp("make-local") / "make-local.log"
    started = time.time()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", "make local"],
            cwd=ROOT,
            env=_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and its python child get SIGTERM together
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not (DEFAULT_STATE_FILE.exists() and DEFAULT_STATE_FILE.stat().st_mtime >= started):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make local did not get ready:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` as a user types it in the repository's directory."""
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def accepted_by_wechat(token: str) -> bool:
    """Whether the sandbox (our WeChat) takes ``token`` now: a call that changes nothing."""
    answer = requests.get(f"{SANDBOX}/cgi-bin/get_api_domain_ip", params={"access_token": token}, timeout=10)
    return answer.json().get("errcode", 0) == 0


def documented(prefix: str) -> list[str]:
    """The commands of README.md and docs/ that start with ``prefix``, as written there."""
    found = [
        command.split("  #")[0].strip()
        for _, command in shell_commands()
        if command.startswith(prefix) and not any(command.startswith(other) for other in NOT_RUN)
    ]
    assert found, f"no documented command starts with {prefix!r}"
    return sorted(set(found))


def test_the_token_api_answers_a_token_wechat_accepts(make_local):
    for command in documented("curl http://127.0.0.1:3100/token/"):
        assert accepted_by_wechat(json.loads(run(command).stdout)["access_token"])


def test_make_play_gets_the_echo_back(make_local):
    for command in documented("make play"):
        # WeChat's encrypted message goes out; its reply comes back, decrypted: the echo
        msg = shlex.split(command)[-1].removeprefix("MSG=")
        assert f"reply text: {msg}" in run(command).stdout


def test_play_commands_succeed(make_local):
    commands = documented(".venv/bin/python -m devtools.play")
    assert len(commands) >= 2
    for command in commands:
        assert "← 200" in run(command).stdout


def test_make_invoke_prints_the_result_alone_for_jq(make_local):
    for command in documented("make invoke"):
        assert json.loads(run(f"{command} | jq -c .refreshed").stdout) == [APPID]


def test_invoke_with_env_json_as_sam_applies_it_reaches_the_loop(make_local):
    for command in documented(".venv/bin/python -m devtools.invoke"):
        assert json.loads(run(command).stdout)["refreshed"] == [APPID]


def test_your_own_code_reads_the_token_as_docs_local_shows(make_local):
    """The block of docs/local.md that points your own code at the loop, run whole."""
    text = (ROOT / "docs" / "local.md").read_text(encoding="utf-8")
    after = text.split("You can point your own code at it too:", 1)[1]
    block = after.split("```bash\n", 1)[1].split("```", 1)[0]
    token = run(block).stdout.strip()
    assert accepted_by_wechat(token)
