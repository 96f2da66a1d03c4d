"""The reader's package (layers/wxtoken/pyproject.toml) says what the layer says.

One truth for the runtime dependencies: requirements.in holds the ranges (`make lock` pins
them into the layer's requirements.txt); pyproject.toml repeats them for `pip install`, and
these tests fail the moment the two part. Files only: no build, no network.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LAYER = Path(__file__).resolve().parents[2] / "layers" / "wxtoken"

type Key = tuple[str, str, str, frozenset[str]]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((LAYER / "pyproject.toml").read_text())


def key(requirement: Requirement) -> Key:
    """What a requirement means, however it is spelled (name case, order of specifiers)."""
    specifier = ",".join(sorted(str(spec) for spec in requirement.specifier))
    return (
        canonicalize_name(requirement.name),
        specifier,
        str(requirement.marker or ""),
        frozenset(requirement.extras),
    )


def requirements_in() -> set[Key]:
    lines = (LAYER / "requirements.in").read_text().splitlines()
    return {key(Requirement(line.split("#", 1)[0])) for line in lines if line.split("#", 1)[0].strip()}


def test_the_package_depends_on_exactly_the_ranges_in_requirements_in():
    declared = {key(Requirement(text)) for text in pyproject()["project"]["dependencies"]}
    assert requirements_in(), "requirements.in lists no requirement: the comparison would be empty"
    assert declared == requirements_in(), (
        f"only in pyproject.toml: {sorted(declared - requirements_in())}; "
        f"only in requirements.in: {sorted(requirements_in() - declared)}"
    )


def test_boto3_comes_with_the_aws_extra_not_with_the_package():
    # Lambda's runtime provides boto3 (the layer leaves it out); a reader elsewhere asks for it.
    project = pyproject()["project"]
    names = {canonicalize_name(Requirement(text).name) for text in project["dependencies"]}
    extra = {canonicalize_name(Requirement(text).name) for text in project["optional-dependencies"]["aws"]}
    assert "boto3" not in names
    assert "boto3" in extra


def test_the_package_holds_wxtoken_alone_and_says_it_is_typed():
    config = pyproject()
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["wxtoken", "wxtoken.*"]
    assert (LAYER / "wxtoken" / "py.typed").is_file()
    data = config["tool"]["setuptools"]["package-data"]["wxtoken"]
    assert data == ["py.typed", "botocore_models/*/*/*.json"]
    # The cut service models (wxtoken.aws) go with the package: readers' Sessions need them.
    package = LAYER / "wxtoken"
    models = [p.relative_to(package) for p in (package / "botocore_models").rglob("*") if p.is_file()]
    assert models
    assert all(p.match(data[1]) for p in models), models


def test_python_3_12_is_the_floor():
    # The code uses PEP 695 generics (def f[T]), new in 3.12.
    assert pyproject()["project"]["requires-python"] == ">=3.12"


def test_the_wechatpy_extra_holds_the_version_the_drop_in_was_tested_with():
    (requirement,) = (
        Requirement(text) for text in pyproject()["project"]["optional-dependencies"]["wechatpy"]
    )
    assert canonicalize_name(requirement.name) == "wechatpy"
    assert "1.8.18" in requirement.specifier
    assert "2.0" not in requirement.specifier
