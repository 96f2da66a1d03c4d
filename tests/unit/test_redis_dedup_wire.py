"""The dedup records write RESP themselves (``store/redis_dedup.py``, a measured reason): the
bytes must be the ones redis-py would send for the same commands."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import Connection

from wxtoken.store.redis_dedup import _packed

_ARGUMENTS = st.one_of(st.text(st.characters(exclude_categories=("Cs",))), st.integers(-(2**63), 2**63 - 1))


@pytest.mark.parametrize(
    "commands",
    [
        [("SET", "wxtoken-dedup#0f", '{"status": "INPROGRESS"}', "NX", "PX", 15000, "GET")],
        [("SET", "k", "v", "NX", "EX", 3600), ("GET", "k"), ("DEL", "k")],
        [("SET", "wxtoken-dedup#é", "回复 <xml>\r\n</xml>", "EX", 1)],
    ],
)
def test_the_claims_bytes_are_redis_pys(commands: list[tuple[Any, ...]]) -> None:
    assert _packed(commands) == b"".join(Connection().pack_commands(commands))


# A command's name first (redis-py splits a first argument at its spaces: "CLIENT REPLY").
_COMMANDS = st.tuples(st.sampled_from(["SET", "GET", "DEL"]), st.lists(_ARGUMENTS, max_size=7)).map(
    lambda command: (command[0], *command[1])
)


@given(st.lists(_COMMANDS, min_size=1, max_size=4))
def test_any_commands_bytes_are_redis_pys(commands: list[tuple[Any, ...]]) -> None:
    assert _packed(commands) == b"".join(Connection().pack_commands(commands))
