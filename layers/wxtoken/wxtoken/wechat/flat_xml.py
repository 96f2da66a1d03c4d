"""WeChat's callback XML as a flat dict, read by pyexpat with defusedxml's refusals.

defusedxml (what this replaced) builds an ElementTree and :func:`wxtoken.wechat.messages.parse_xml` then walks
it: 18 µs for a text message, twice per safe-mode request (the envelope, then the
message), where expat alone takes 8 (bench/webhook_roundtrip.py --breakdown). This reads
the same document in one pass of pyexpat's callbacks, with the same refusals defusedxml
makes (``forbid_dtd``, ``forbid_entities``, ``forbid_external``: no DOCTYPE, no entity
declaration, no external reference) and the same result: tests/unit/test_flat_xml.py
compares the two on generated documents, hostile ones included.

Encodings are decoded alike too: pyexpat and ElementTree's parser are the same expat with
the same handler for encodings expat does not know (Python's 8-bit codecs; a multi-byte or
unknown one is refused by both).
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat


class Refused(ValueError):
    """The document carries a DTD, an entity declaration or an external reference, is not
    rooted at ``<xml>``, repeats a top-level element or nests deeper than allowed."""


def parse_flat(body: bytes | str, max_depth: int) -> dict[str, str]:
    """The children of the ``<xml>`` root as ``{tag: text}``; nested leaves as dotted keys,
    the first one winning. Raises :class:`Refused`, ``expat.ExpatError`` or ``ValueError``
    (``LookupError`` for an unknown encoding) for anything else."""
    reader = _Reader(max_depth)
    parser = expat.ParserCreate(None, "}")  # ElementTree's namespace separator: {uri}tag
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    parser.Parse(body, True)
    return reader.out


def _refuse(*args: Any) -> int:
    raise Refused("DTDs, entities and external references are refused")


def _tag(name: str) -> str:
    """ElementTree's spelling of an expat name: ``{uri}local`` for a namespaced one."""
    return "{" + name if "}" in name else name


class _Reader:
    """Builds the flat dict from pyexpat's callbacks.

    Per open element: its key (dotted below the top level), its text parts and whether it
    has children. A leaf's text is all its character data, as ElementTree's ``text`` of an
    element without children; an element with children contributes its leaves only.
    """

    def __init__(self, max_depth: int) -> None:
        self.out: dict[str, str] = {}
        self._max_depth = max_depth
        self._seen: set[str] = set()
        self._keys: list[str] = []
        self._parts: list[list[str]] = []
        self._parent: list[bool] = []

    def start(self, name: str, attributes: Any) -> None:
        depth = len(self._keys)  # 0: the root, 1: a top-level child, …
        tag = _tag(name)
        if depth == 0:
            if tag != "xml":
                raise Refused("the root is not <xml>")
            key = ""
        elif depth == 1:
            if tag in self._seen:
                raise Refused("a top-level element repeats")
            self._seen.add(tag)
            key = tag
        else:
            if depth > self._max_depth:  # its parent, at max_depth, may not have children
                raise Refused("nested deeper than WeChat does")
            key = f"{self._keys[-1]}.{tag}"
        if self._parent:
            self._parent[-1] = True
        self._keys.append(key)
        self._parts.append([])
        self._parent.append(False)

    def text(self, data: str) -> None:
        if self._parts:
            self._parts[-1].append(data)

    def end(self, name: str) -> None:
        key = self._keys.pop()
        parts = self._parts.pop()
        if self._parent.pop() or not key:
            return
        if len(self._keys) == 1:
            self.out[key] = "".join(parts)
        else:
            self.out.setdefault(key, "".join(parts))
