"""The reader is a package you install (issue 10): ``pip install ./layers/wxtoken[aws]`` into a
fresh virtualenv, then a script there reads the token the refresh function stored, with the
store's settings only (no WECHAT_APPS_SECRET_ID), on SSM (moto server) and on Redis.

The virtualenv is made once per session (about 10 s: venv, then pip with its cache and the
local indexes) from a copy of the package, so the install leaves nothing in the worktree.
Versions are held to the layer's and the dev lock's pins, copied without their hashes: a
hashed constraints file turns on pip's hash checking, which refuses the package's folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.aws import REGION
from tests.fixtures.lambda_context import FakeLambdaContext, load_handler
from tests.fixtures.wechat import APPID_A

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "wxtoken"
LOCKS = (PACKAGE / "requirements.txt", ROOT / "requirements-dev.txt")
EVENTS = ROOT / "events"

pytestmark = pytest.mark.slow

READ_TOKEN = """
import json, sys, wxtoken
from wxtoken.client import get_client
token = get_client().access_token(sys.argv[1])
print(json.dumps({"file": wxtoken.__file__, "path": sys.path, "token": token}))
"""


def hash_free_constraints(destination: Path) -> Path:
    """The locks' pins (``name==version ; marker``) without their ``--hash`` lines."""
    pins = [
        line.removesuffix("\\").strip()
        for lock in LOCKS
        for line in lock.read_text().splitlines()
        if line[:1].isalnum()
    ]
    destination.write_text("\n".join(pins) + "\n")
    return destination


@pytest.fixture(scope="session")
def installed_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a new virtualenv holding only ``wxtoken[aws]`` and its dependencies."""
    work = tmp_path_factory.mktemp("installed-reader")
    source = work / "wxtoken-src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = work / "venv"
    # The interpreter running the tests, not its virtualenv: the new one must not see .venv.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    constraints = hash_free_constraints(work / "constraints.txt")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            "-c",
            str(constraints),
            f"{source}[aws]",
        ],
        check=True,
        timeout=600,
        cwd=work,
    )
    return python


def read_in_fresh_venv(python: Path, env: dict[str, str], cwd: Path) -> dict[str, object]:
    answer = subprocess.run(
        [str(python), "-c", READ_TOKEN, APPID_A],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    result: dict[str, object] = json.loads(answer.stdout.strip().splitlines()[-1])
    return result


def test_a_fresh_venv_with_the_package_reads_what_the_refresh_function_stored(
    system, installed_reader, tmp_path
):
    # Given the refresh function, run as Lambda runs it, stored a token
    handler = load_handler("refresh_token")
    event = json.loads((EVENTS / "force_all.json").read_text())
    assert APPID_A in handler.lambda_handler(event, FakeLambdaContext())["refreshed"]

    # When a script in the fresh virtualenv reads it, given only the reader's settings
    env = {
        "TOKEN_STORE": system.kind,
        "AWS_ENDPOINT_URL": system.aws.endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if system.kind == "ssm":
        env["TOKEN_PARAMETER_PREFIX"] = "/wxtoken"
    elif system.kind == "dynamodb":
        env["TOKEN_TABLE"] = system.env["TOKEN_TABLE"]
    else:
        env["REDIS_URL"] = system.env["REDIS_URL"]
    result = read_in_fresh_venv(installed_reader, env, tmp_path)

    # Then it holds the token WeChat (the stand-in) considers current and valid
    assert result["token"] == system.wechat.current_token(APPID_A)
    assert system.wechat.is_valid(APPID_A, str(result["token"]))
    # ... read from the installed package, not from this repository's source
    site_packages = installed_reader.parent.parent / "lib"
    assert Path(str(result["file"])).resolve().is_relative_to(site_packages.resolve())
    path = result["path"]
    assert isinstance(path, list)
    assert not [entry for entry in path if str(entry).startswith(str(ROOT))]
