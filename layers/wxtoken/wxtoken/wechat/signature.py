"""WeChat's callback signatures: SHA-1 over the sorted, concatenated parts.

The URL check and every plain-mode POST carry ``signature = sha1(sort(token, timestamp,
nonce))``; safe and compatible mode add ``msg_signature = sha1(sort(token, timestamp, nonce,
Encrypt))``. SHA-1 is WeChat's choice, not ours (接入指南 / 消息加解密接入指引).
"""

from __future__ import annotations

import hashlib
import hmac

from wxtoken.errors import SignatureMismatch


def sha1_signature(*parts: str) -> str:
    """WeChat's signature of ``parts``: sort them, concatenate, SHA-1, lower-case hex."""
    # WeChat fixes SHA-1 for this protocol; it is not our choice of hash.
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324


def verify_signature(signature: str | None, *parts: str) -> None:
    """Return quietly when ``signature`` is WeChat's signature of ``parts``.

    Raises :class:`SignatureMismatch` when it is missing, empty or wrong, or when a part has
    no UTF-8 form (a lone surrogate: nothing WeChat signed). The comparison takes the same
    time wherever the first differing character is.
    """
    if not signature or not signature.isascii():
        # compare_digest accepts only ASCII str; nothing else can be a hex digest anyway.
        raise SignatureMismatch("forbidden")
    try:
        expected = sha1_signature(*parts)
    except UnicodeEncodeError:
        raise SignatureMismatch("forbidden") from None
    if not hmac.compare_digest(expected, signature):
        raise SignatureMismatch("forbidden")
