"""wxtoken.frozen.Frozen behaves as the frozen dataclass it stands in for."""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError

import pytest

from wxtoken.frozen import Frozen, SlotsRecord


class Point(Frozen):
    x: int
    y: int = 0


class Tagged(Frozen):
    _unhashed = frozenset({"notes"})
    _uncompared = frozenset({"callback"})
    _hidden = frozenset({"secret"})

    name: str
    notes: list[str]
    callback: object = None
    secret: str = ""


class Checked(Frozen):
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


def test_fields_positionally_by_name_and_by_default() -> None:
    assert Point(1, 2) == Point(x=1, y=2) == Point(1, y=2)
    assert Point(1).y == 0
    assert Point.__match_args__ == ("x", "y")
    with pytest.raises(TypeError, match="missing required argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Point(1, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)  # type: ignore[misc]


def test_immutable_hashable_and_picklable() -> None:
    point = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        point.x = 3  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del point.x  # type: ignore[misc]
    assert hash(point) == hash(Point(1, 2))
    assert pickle.loads(pickle.dumps(point)) == point  # noqa: S301  # our own bytes
    assert copy.copy(point) == point
    assert point != (1, 2)


def test_unhashed_uncompared_and_hidden_fields() -> None:
    first = Tagged("a", ["x"], callback=print, secret="s1")
    second = Tagged("a", ["x"], callback=len, secret="s1")
    assert first == second  # the callback is not compared ...
    assert hash(first) == hash(second)  # ... nor hashed; the unhashable list is compared only
    assert first != Tagged("a", ["y"], callback=print, secret="s1")
    assert first != Tagged("a", ["x"], callback=print, secret="s2")
    assert "s1" not in repr(first)
    assert "notes=['x']" in repr(first)


def test_post_init_runs() -> None:
    assert Checked(1).value == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_a_field_without_a_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default follows one with a default"):

        class Bad(Frozen):
            a: int = 0
            b: int


class Tally(SlotsRecord):
    __slots__ = ("count", "names")

    def __init__(self, count: int = 0) -> None:
        self.count = count
        self.names: list[str] = []


def test_a_slots_record_compares_by_value_and_is_unhashable() -> None:
    first, second = Tally(), Tally()
    assert first == second
    second.names.append("wx1")
    assert first != second
    assert Tally(1) != Tally(2)
    assert first != object()
    with pytest.raises(TypeError):
        hash(first)
