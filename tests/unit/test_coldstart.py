"""wxtoken.coldstart: the functions' imports are frozen out of the garbage collector's sight
in Lambda only, once every import of the function's module is done."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import pytest

from wxtoken.coldstart import settle_imports

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@pytest.mark.parametrize("function", ["refresh_token", "webhook"])
def test_each_function_settles_its_imports_last(function: str) -> None:
    tree = ast.parse((FUNCTIONS / function / "app.py").read_text())
    last = tree.body[-1]
    assert isinstance(last, ast.Expr)
    assert isinstance(last.value, ast.Call)
    assert isinstance(last.value.func, ast.Name)
    assert last.value.func.id == "settle_imports"
    # Nothing is imported after it: every import's objects are in what it freezes.
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    assert all(node.lineno < last.lineno for node in imports)


def test_it_freezes_in_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    assert gc.get_freeze_count() == 0
    try:
        settle_imports()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_outside_lambda_it_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # A test suite or a tool importing app.py again and again must not freeze each copy.
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    settle_imports()
    assert gc.get_freeze_count() == 0
