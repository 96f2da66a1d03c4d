"""functions/webhook/handlers.py is the user's: replacing it breaks none of wxtoken's tests.

The proof (issue 10, part 3, "done when"): a copy of the repository whose handlers.py
registers nothing runs the tests that load the webhook function, and they pass. Which tests:
in-process ones load app.py through ``load_handler`` (tests/fixtures/lambda_context.py),
which never imports handlers.py, so one file of them proves the seam
(tests/integration/test_webhook.py, the one that registers handlers of its own); the e2e
loop runs app.py in a subprocess, where the seam is the template's CodeUri, and one of its
tests (SIGTERM) runs the real template, so the real handlers.py: tests/e2e/test_local_loop.py.
No other test imports handlers.py, which the guard below keeps true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TESTS = Path("tests/integration/test_example_handlers.py")
PROOF_FILES = ("tests/integration/test_webhook.py", "tests/e2e/test_local_loop.py")
# What the proof's tests read: code, fixtures, the template and events, pytest's settings.
COPIED = (
    "functions",
    "layers/wxtoken/wxtoken",
    "tests",
    "devtools",
    "events",
    "template.yaml",
    "pyproject.toml",
)
NOTHING_REGISTERED = """\
\"\"\"Replaced by the user: registers nothing.\"\"\"

from wxtoken.webhook import MessageRouter

router = MessageRouter()
"""
# An import of the module, or a path to the file (a docstring naming it is no import).
IMPORTS_HANDLERS = re.compile(
    r'^\s*(from handlers import|import handlers\b)|/ "webhook" / "handlers\.py"', re.M
)


def test_no_test_but_the_examples_imports_handlers_py():
    # The proof below runs a few files; this keeps every other one off handlers.py.
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if path.relative_to(ROOT) != EXAMPLE_TESTS
        and path != Path(__file__)
        and IMPORTS_HANDLERS.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.slow
@pytest.mark.redis
def test_wxtokens_tests_pass_with_a_handlers_py_that_registers_nothing(tmp_path):
    # Given a copy of the repository whose handlers.py registers nothing
    for name in COPIED:
        source, target = ROOT / name, tmp_path / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (tmp_path / "functions" / "webhook" / "handlers.py").write_text(NOTHING_REGISTERED, encoding="utf-8")
    (tmp_path / EXAMPLE_TESTS).unlink()  # the example's tests are the example's

    # When the tests that load the webhook function run there
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-q",
            "-x",
            *PROOF_FILES,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # Then they pass
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
