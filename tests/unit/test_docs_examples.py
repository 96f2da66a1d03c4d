"""The Python in docs/webhook-handlers.md runs as written: each block is executed (imports,
definitions, a boto3 client built, nothing called over the network)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from wxtoken.deadline import Deadline
from wxtoken.webhook import HandlerContext
from wxtoken.wechat.messages import parse_message
from wxtoken.wechat.replies import TextReply

DOC = Path(__file__).parents[2] / "docs" / "webhook-handlers.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.M | re.S)
VOICE = (
    b"<xml><ToUserName>gh_account</ToUserName><FromUserName>oUSER</FromUserName>"
    b"<CreateTime>1700000000</CreateTime><MsgType>voice</MsgType><MediaId>m</MediaId>"
    b"<Format>amr</Format><MsgId>1</MsgId></xml>"
)


def test_the_doc_has_its_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_each_python_block_runs(number, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # boto3.client() needs one, and no call
    namespace: dict[str, Any] = {"__name__": f"doc_block_{number}"}
    exec(compile(BLOCKS[number], f"{DOC.name}[{number}]", "exec"), namespace)  # noqa: S102


def test_the_first_example_answers_as_it_says():
    namespace: dict[str, Any] = {"__name__": "doc_block_0"}
    exec(compile(BLOCKS[0], DOC.name, "exec"), namespace)  # noqa: S102
    message = parse_message(VOICE)
    context = HandlerContext("wx1111111111111111", "oUSER", message, Deadline.after(4), lambda: None)  # type: ignore[arg-type,return-value]
    assert namespace["router"].dispatch(message, context) == TextReply("oUSER, I only read text for now.")
