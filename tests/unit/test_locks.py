"""The lock files stay what `make lock` makes them: complete, hashed, and in step.

Each *.in holds the ranges we accept; the *.txt beside it pins every package with hashes
(`make lock`). These tests read the files only: no network, no resolver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LAYER_IN = ROOT / "layers" / "wxtoken" / "requirements.in"
LAYER_LOCK = ROOT / "layers" / "wxtoken" / "requirements.txt"
DEV_IN = ROOT / "requirements-dev.in"
DEV_LOCK = ROOT / "requirements-dev.txt"
SAM_IN = ROOT / "requirements-sam.in"
SAM_LOCK = ROOT / "requirements-sam.txt"

LOCKS = {LAYER_IN: LAYER_LOCK, DEV_IN: DEV_LOCK, SAM_IN: SAM_LOCK}


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return [spec.operator for spec in self.requirement.specifier] == ["=="]

    @property
    def version(self) -> str | None:
        return next(iter(self.requirement.specifier)).version if self.exact else None


def logical_lines(path: Path) -> list[str]:
    """The file's lines with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    return lines


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    pins: dict[NormalizedName, Pin] = {}
    for line in logical_lines(path):
        requirement, *options = line.split(" --")
        hashes = tuple(o.removeprefix("hash=") for o in options if o.startswith("hash="))
        parsed = Requirement(requirement)
        pins[canonicalize_name(parsed.name)] = Pin(parsed, hashes)
    return pins


def top_level_names(path: Path) -> set[NormalizedName]:
    """The names an .in asks for, following its `-r` includes (not its `-c` constraints)."""
    names: set[NormalizedName] = set()
    for line in logical_lines(path):
        if line.startswith("-r "):
            names |= top_level_names(ROOT / line.removeprefix("-r ").strip())
        elif not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


@pytest.mark.parametrize("lock", LOCKS.values(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_package_in_a_lock_is_pinned_to_one_version_with_a_hash(lock):
    pins = read_lock(lock)
    assert pins, f"{lock} pins nothing"
    loose = [str(p.requirement) for p in pins.values() if not p.exact]
    unhashed = [str(p.requirement) for p in pins.values() if not p.hashes]
    assert not loose, f"not pinned with ==: {loose}; run make lock"
    # One unhashed line makes pip refuse the whole file under --require-hashes.
    assert not unhashed, f"no --hash: {unhashed}; run make lock"


@pytest.mark.parametrize(("source", "lock"), LOCKS.items(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_name_in_an_in_file_is_pinned_in_its_lock(source, lock):
    missing = top_level_names(source) - read_lock(lock).keys()
    assert not missing, f"{source.name} asks for {sorted(missing)}, not in {lock.name}; run make lock"


def test_the_dev_lock_pins_the_layers_packages_at_the_layers_versions():
    # What the tests import is what the layer ships (requirements-dev.in: -c the layer lock).
    layer, dev = read_lock(LAYER_LOCK), read_lock(DEV_LOCK)
    drift = {
        name: (pin.version, dev[name].version if name in dev else "missing")
        for name, pin in layer.items()
        if name not in dev or dev[name].version != pin.version
    }
    assert not drift, f"(layer, dev) versions differ: {drift}; run make lock"


def test_the_parser_sees_a_multiline_pin_its_hashes_and_its_marker():
    # Given the shape uv writes; when it is read; then nothing of it is lost.
    pins = read_lock(LAYER_LOCK)
    assert "redis" in pins
    assert all(h.startswith("sha256:") for pin in pins.values() for h in pin.hashes)
    assert any(pin.requirement.marker for pin in pins.values())  # e.g. cffi ; not PyPy
