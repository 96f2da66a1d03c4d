"""The package's layout is its architecture: readers never load the writer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAYER = Path(__file__).parents[2] / "layers" / "wxtoken"


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(m for m in sys.modules if m.startswith('wxtoken')))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=LAYER, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(out.split())


def test_a_reader_never_imports_the_writer():
    loaded = modules_after("from wxtoken.client import TokenClient, get_client")
    assert "wxtoken.client.token_client" in loaded  # the check has teeth
    assert not {m for m in loaded if m.startswith("wxtoken.refresh")}, loaded


def test_the_webhook_message_path_never_imports_the_writer_or_the_reader():
    loaded = modules_after("from wxtoken.webhook.wiring import build_webhook_runtime")
    assert "wxtoken.webhook.pipeline" in loaded
    assert not {m for m in loaded if m.startswith(("wxtoken.refresh", "wxtoken.client"))}, loaded


def test_handlers_written_against_wxtoken_dispatch_still_import():
    loaded = modules_after("from wxtoken.dispatch import MessageRouter")
    assert "wxtoken.webhook.router" in loaded


DEVTOOLS = Path(__file__).parents[2] / "devtools"


def test_devtools_entry_points_import_only_the_sam_and_wechat_packages():
    """devtools' entry points sit on top of devtools.sam and devtools.wechat; none imports
    another (shared code lives in the packages)."""
    import ast

    entry_points = {p.stem for p in DEVTOOLS.glob("*.py") if p.stem != "__init__"}
    assert {"local", "invoke", "play", "make_webhook_events"} <= entry_points
    for path in DEVTOOLS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("devtools."):
                imported = node.module.split(".")[1]
                assert imported not in entry_points, f"{path.relative_to(DEVTOOLS)} imports {node.module}"
