"""wechatpy is an optional dependency: wxtoken works without it, and the drop-in says how
to get it. Each check runs in a fresh interpreter, so what this process imported is moot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAYER = Path(__file__).parents[2] / "layers" / "wxtoken"


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=LAYER, capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_wxtoken_never_imports_wechatpy():
    result = run(
        "import sys, wxtoken, wxtoken.client, wxtoken.integrations\n"
        "assert 'wechatpy' not in sys.modules, 'wechatpy was imported'\n"
    )
    assert result.returncode == 0, result.stderr


def test_the_drop_in_without_wechatpy_names_the_extra_to_install():
    # A None entry in sys.modules makes "import wechatpy" fail as if it were not installed.
    result = run("import sys\nsys.modules['wechatpy'] = None\nimport wxtoken.integrations.wechatpy\n")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert 'pip install "wxtoken[wechatpy]"' in result.stderr
