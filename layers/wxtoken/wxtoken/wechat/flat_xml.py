"""WeChat's callback XML as a flat dict, read by pyexpat with defusedxml's refusals.

defusedxml (what this replaced) builds an ElementTree and :func:`wxtoken.wechat.messages.parse_xml` then walks
it: 18 µs for a text message, twice per safe-mode request (the envelope, then the
message), where expat alone takes 8 (bench/webhook_roundtrip.py --breakdown). This reads
the same document in one pass of pyexpat's callbacks, with the same refusals defusedxml
makes (``forbid_dtd``, ``forbid_entities``, ``forbid_external``: no DOCTYPE, no entity
declaration, no external reference) and the same result: tests/unit/test_flat_xml.py
compares the two on generated documents, hostile ones included.

Most bodies are read without expat at all. What WeChat sends is one flat shape — ``<xml>``,
then leaves holding a CDATA section or plain text, nothing else — and :func:`_read_plain_shape`
reads exactly that shape with one regular expression: 4.8 µs for a text message where expat's
callbacks take 13.5 (expat with no callbacks at all: 3.2), twice per safe-mode request. The
shape admits nothing that could carry a DTD, an entity, a reference, a namespace, a comment
or a character expat would refuse or rewrite (outside CDATA no ``&`` and no ``<`` but tags;
nowhere a carriage return, which XML turns into a line feed, a control character or a
non-character). Anything else — a declaration, nesting, a repeated tag, a byte that is not
UTF-8 — goes to expat as before; the shape never says no on its own. tests/unit/test_flat_xml.py
checks on generated documents that the shape reads exactly what expat reads, whenever it
reads anything.

Encodings are decoded alike too: pyexpat and ElementTree's parser are the same expat with
the same handler for encodings expat does not know (Python's 8-bit codecs; a multi-byte or
unknown one is refused by both).
"""

from __future__ import annotations

import re
from typing import Any, Final
from xml.parsers import expat


class Refused(ValueError):
    """The document carries a DTD, an entity declaration or an external reference, is not
    rooted at ``<xml>``, repeats a top-level element or nests deeper than allowed."""


def parse_flat(body: bytes | str, max_depth: int) -> dict[str, str]:
    """The children of the ``<xml>`` root as ``{tag: text}``; nested leaves as dotted keys,
    the first one winning. Raises :class:`Refused`, ``expat.ExpatError`` or ``ValueError``
    (``LookupError`` for an unknown encoding) for anything else."""
    plain = _read_plain_shape(body)
    return plain if plain is not None else read_with_expat(body, max_depth)


def read_with_expat(body: bytes | str, max_depth: int) -> dict[str, str]:
    """:func:`parse_flat` without the plain-shape shortcut: any document, through expat."""
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


# XML 1.0's Char (§2.2) without what expat would rewrite or refuse in a CDATA section: "\r"
# (end-of-line handling, §2.11, makes it "\n"), "]" (the section ends at the first "]]>"),
# C0 controls but tab and line feed, surrogates, U+FFFE and U+FFFF.
_CDATA_CHAR: Final = "[^\x00-\x08\x0b-\x1f\\]\ud800-\udfff\ufffe\uffff]"
# In text, also no markup: "&" (a reference) and "<".
_TEXT_CHAR: Final = "[^\x00-\x08\x0b-\x1f&<\\]\ud800-\udfff\ufffe\uffff]"
# One leaf: whitespace (skipped, as the reader skips the root's text), an ASCII name without
# ":" (no namespace), then a CDATA section or plain text, then the matching end tag.
_LEAF: Final = re.compile(
    f"[ \t\r\n]*<([A-Za-z_][A-Za-z0-9_]*)>(?:<!\\[CDATA\\[({_CDATA_CHAR}*)\\]\\]>|({_TEXT_CHAR}*))</\\1>"
)
_END: Final = re.compile("[ \t\r\n]*</xml>[ \t\r\n]*")
_ROOT: Final = "<xml>"


def _read_plain_shape(body: bytes | str) -> dict[str, str] | None:
    """The flat dict of a body in WeChat's plain shape, or ``None`` for expat to read.

    ``None`` too for a body that is not UTF-8 (expat's default without a declaration, which
    the shape has none of) or that repeats a tag: expat then says what is wrong with it.
    """
    if isinstance(body, bytes):
        if not body.startswith(b"<xml>"):
            return None
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return None
    else:
        text = body
        if not text.startswith(_ROOT):
            return None
    out: dict[str, str] = {}
    position = len(_ROOT)
    leaves = 0
    match = _LEAF.match(text, position)
    while match is not None:
        name, section, plain = match.groups()
        out[name] = section if section is not None else plain
        leaves += 1
        position = match.end()
        match = _LEAF.match(text, position)
    if len(out) != leaves or _END.fullmatch(text, position) is None:
        return None
    return out


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
