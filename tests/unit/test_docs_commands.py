"""Every shell command the README and docs/ give is run by a test as written, or says here
why no test can run it (an AWS account, a Docker engine, minutes of work).

A command added to the docs without a line below fails :func:`test_every_command_is_run_or_says_why`;
each ``make`` command is dry-run (``make -n``), so a renamed target fails too (make takes any
variable, so a renamed one shows only where the command is run: tests/e2e/test_docs_commands.py
runs the documented strings themselves, found by these prefixes).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

_BLOCK = re.compile(r"^ *```(?:bash|sh|shell)\n(.*?)^ *```", re.S | re.M)
# A command continued over lines with a trailing backslash, or piped on from the line before.
_CONTINUED = re.compile(r"\\\n\s*|\n\s*(?=\|)")

# Run as written, by the test named.
RUN_BY: dict[str, str] = {
    "make local": "tests/e2e/test_docs_commands.py: the loop the commands below run against",
    "curl http://127.0.0.1:3100/": "tests/e2e/test_docs_commands.py",
    "make play": "tests/e2e/test_docs_commands.py",
    ".venv/bin/python -m devtools.play": "tests/e2e/test_docs_commands.py",
    "make invoke": "tests/e2e/test_docs_commands.py",
    "export AWS_ENDPOINT_URL=http://127.0.0.1:4566": "tests/e2e/test_docs_commands.py",
    "PYTHONPATH=layers/wxtoken .venv/bin/python -c": "tests/e2e/test_docs_commands.py",
    ".venv/bin/python -m devtools.invoke": "tests/e2e/test_docs_commands.py",
    'pip install "./layers/wxtoken[aws]"': "tests/integration/test_installed_reader.py (a copy)",
    "grep -E '^[A-Za-z0-9]' layers/wxtoken/requirements.txt": "tests/integration/test_installed_reader.py",
    'pip install -c constraints.txt "./layers/wxtoken[aws]"': "tests/integration/test_installed_reader.py",
    "make test": "CI itself (.ci/run runs make ci, which runs make test)",
    "make build": "CI itself (make ci runs make build)",
}

# Not run by any test, and why.
NOT_RUN: dict[str, str] = {
    ".venv-sam/bin/sam deploy": "creates a stack: needs an AWS account (make validate checks the template)",
    ".venv-sam/bin/sam delete": "deletes a stack: needs an AWS account",
    ".venv-sam/bin/sam remote invoke": "invokes a deployed function: needs an AWS account",
    ".venv-sam/bin/sam logs": "reads a deployed stack's logs: needs an AWS account",
    "sam local": "needs a Docker engine (tests run the same events through devtools.invoke)",
    '.venv/bin/python -m devtools.play text "hello" --encrypted --url http://127.0.0.1:3000': (
        "plays WeChat to sam local start-api (Docker)"
    ),
    ".venv-sam/bin/sam local": "needs a Docker engine (devtools.invoke --sam-env runs the same env.json)",
    "aws ssm get-parameter --with-decryption --name ": (
        "reads a deployed stack's parameter (tests/e2e/test_local_loop.py reads the loop's with boto3)"
    ),
    "aws dynamodb get-item --table-name ": (
        "reads a deployed stack's table (tests/integration/conftest.py reads the same item with boto3)"
    ),
    "aws lambda invoke": "invokes a deployed function: needs an AWS account",
    "aws cloudformation": "reads a deployed stack: needs an AWS account",
    "aws secretsmanager": "reads or writes a deployed stack's secret: needs an AWS account",
    "aws sqs": "reads a deployed stack's queue: needs an AWS account",
    "aws logs": "reads a deployed stack's logs: needs an AWS account",
    "aws ssm get-parameters-by-path": "lists a deployed stack's parameters: needs an AWS account",
    "aws ssm delete-parameters": "deletes a deployed stack's parameters: needs an AWS account",
    "shred -u apps.json": "removes the file the runbook's previous command wrote",
    "ARN=$(aws cloudformation": "reads a deployed stack: needs an AWS account",
    "Q=$(aws cloudformation": "reads a deployed stack: needs an AWS account",
    'pip install "wxtoken[aws] @ git+https://github.com/<you>/': "<you>: your fork's address",
    "curl --aws-sigv4": "API Gateway checks the signature: needs a deployed stack (make local checks no IAM)",
    'redis-cli -u "$REDIS_URL"': "tests/e2e/test_docs_commands.py reads the same key with redis-py",
    "make bench": "minutes of measuring; make test type-checks bench/",
    ".venv/bin/python -m bench.": "minutes of measuring (see make bench)",
    "make fuzz": "about 25 minutes; make test runs the same properties with fewer examples",
}


def shell_commands() -> list[tuple[str, str]]:
    """``(file, command)`` for every command in a bash/sh block, comments and blank lines
    dropped; a quoted argument over several lines (a jq program) stays in its command."""
    found = []
    for path in DOCS:
        for block in _BLOCK.finditer(path.read_text(encoding="utf-8")):
            pending = ""
            for line in _CONTINUED.sub(" ", block.group(1)).splitlines():
                pending = f"{pending}\n{line}" if pending else line.strip()
                if not pending or pending.startswith("#") or not _complete(pending):
                    pending = "" if not pending or pending.startswith("#") else pending
                    continue
                found.append((str(path.relative_to(ROOT)), pending))
                pending = ""
            assert not pending, f"{path.name}: unterminated quote in {pending!r}"
    return found


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation": the command goes on, on the next line
        return False
    return True


def test_the_docs_have_commands():
    commands = shell_commands()
    assert len(commands) > 20, commands  # the extraction has teeth
    assert any(c.startswith("make local") for _, c in commands)


def test_every_command_is_run_or_says_why():
    unclassified = [
        f"{where}: {command}"
        for where, command in shell_commands()
        if not any(command.startswith(prefix) for prefix in (*RUN_BY, *NOT_RUN))
    ]
    assert not unclassified, "add each to RUN_BY (and run it) or NOT_RUN (with why):\n" + "\n".join(
        unclassified
    )


def _make_commands() -> list[str]:
    return sorted({c.split("#")[0].strip() for _, c in shell_commands() if c.startswith("make ")})


@pytest.mark.parametrize("command", _make_commands())
def test_make_commands_name_real_targets_and_variables(command):
    """``make -n`` prints what would run without running it; an unknown target fails."""
    words = shlex.split(command)
    result = subprocess.run(
        ["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
