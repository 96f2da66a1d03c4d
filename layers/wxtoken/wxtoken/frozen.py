"""Frozen value classes that cost next to nothing to define: :class:`Frozen`.

Why not ``@dataclass(frozen=True, slots=True)``: the dataclass decorator writes each class's
methods as source text and compiles it, about 1 ms a class on Python 3.13 (measured on 2
shared cores: 28 message and reply types took 23 ms of the webhook's cold start, 10% of
``import boto3`` plus one secret read; bench/cold_import.py). A subclass of :class:`Frozen`
is defined in microseconds, and type checkers see a frozen dataclass (PEP 681,
``dataclass_transform``): the same constructor, fields and immutability.

What a subclass gets, as from a frozen dataclass: an ``__init__`` taking the fields in
order, positionally or by name, with their class-level defaults (and ``__post_init__``
called when defined); ``==`` between instances of the same class, field by field; a hash
of the fields; a ``repr`` of the fields; ``dataclasses.FrozenInstanceError`` on any
assignment or deletion; ``__match_args__``; pickling and ``copy``. Fields named in
``_unhashed`` are compared but not hashed, those in ``_uncompared`` neither compared nor
hashed, those in ``_hidden`` left out of ``repr`` (``field(hash=False)``,
``field(compare=False)`` and ``field(repr=False)``). Not provided: ``dataclasses.fields`` and
``dataclasses.replace``, which work on real dataclasses only.
"""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError
from typing import Any, ClassVar, dataclass_transform

_CLASS_VAR_PREFIXES = ("ClassVar", "typing.ClassVar")
_MISSING: Any = object()


@dataclass_transform(frozen_default=True)
class Frozen:
    """Base of a frozen value class: annotate its fields as in a dataclass."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    _unhashed: ClassVar[frozenset[str]] = frozenset()
    _uncompared: ClassVar[frozenset[str]] = frozenset()
    _compared: ClassVar[tuple[str, ...]] = ()
    _hidden: ClassVar[frozenset[str]] = frozenset()
    _positions: ClassVar[dict[str, int]] = {}
    _post_init: ClassVar[bool] = False
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, None] = {}
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            # Strings here: every module has ``from __future__ import annotations``.
            for name, annotation in inspect.get_annotations(klass).items():
                if str(annotation).startswith(_CLASS_VAR_PREFIXES):
                    continue
                fields[name] = None
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
                else:
                    defaults.pop(name, None)
        names = tuple(fields)
        required = [name for name in names if name not in defaults]
        if required and names.index(required[-1]) > len(required) - 1:
            raise TypeError(f"{cls.__qualname__}: a field without a default follows one with a default")
        cls._fields = names
        cls.__match_args__ = names  # type: ignore[misc]  # what a dataclass sets: match positionally
        cls._defaults = defaults
        cls._positions = {name: position for position, name in enumerate(names)}
        cls._compared = tuple(name for name in names if name not in cls._uncompared)
        cls._post_init = hasattr(cls, "__post_init__")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields
        if kwargs or len(args) != len(names):
            args = self._bind(args, kwargs)
        self.__dict__.update(zip(names, args, strict=True))
        if self._post_init:
            self.__post_init__()  # type: ignore[attr-defined]

    @classmethod
    def _bind(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The fields' values from a call's arguments, or the TypeError a dataclass raises."""
        names, positions = cls._fields, cls._positions
        if len(args) > len(names):
            raise TypeError(f"{cls.__qualname__}() takes {len(names)} arguments but {len(args)} were given")
        values = [*args, *(_MISSING for _ in range(len(names) - len(args)))]
        for name, value in kwargs.items():
            position = positions.get(name)
            if position is None:
                raise TypeError(f"{cls.__qualname__}() got an unexpected keyword argument {name!r}")
            if position < len(args):
                raise TypeError(f"{cls.__qualname__}() got multiple values for argument {name!r}")
            values[position] = value
        for position, value in enumerate(values):
            if value is _MISSING:
                name = names[position]
                if name not in cls._defaults:
                    raise TypeError(f"{cls.__qualname__}() missing required argument {name!r}")
                values[position] = cls._defaults[name]
        return tuple(values)

    def _values(self) -> tuple[Any, ...]:
        return tuple(self.__dict__[name] for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        if self._uncompared:
            mine, theirs = self.__dict__, other.__dict__
            return all(mine[name] == theirs[name] for name in self._compared)
        return self._values() == other._values()

    def __hash__(self) -> int:
        unhashed = self._unhashed | self._uncompared
        return hash(tuple(self.__dict__[name] for name in self._fields if name not in unhashed))

    def __repr__(self) -> str:
        hidden = self._hidden
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields if name not in hidden)
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())


class SlotsRecord:
    """Base of a mutable record with ``__slots__``, filled in as a run goes (its reports): equal
    to another of its class with equal slots, and unhashable, as a non-frozen dataclass is.
    Written by hand for the same reason as :class:`Frozen`: defined in microseconds."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        slots: tuple[str, ...] = self.__slots__  # the subclass's own
        return all(getattr(self, name) == getattr(other, name) for name in slots)
