"""WeChat's message encryption for safe and compatible mode (消息加解密技术方案).

    AESKey     = Base64_Decode(EncodingAESKey + "=")            32 bytes, AES-256
    IV         = AESKey[:16]
    plaintext  = random(16 B) + msg_len(4 B, big-endian) + msg + appid
    Encrypt    = Base64_Encode(AES-CBC(PKCS#7-pad(plaintext, 32)))

The padding is PKCS#7 with a block size of **32** bytes (Tencent's samples: ``block_size =
32``), so a pad byte runs from 1 to 32 — a decoder that assumes AES's 16 rejects roughly
half of WeChat's messages. The appid at the end binds a ciphertext to one official account.

Decryption runs only after ``msg_signature`` (which covers the ciphertext) checked out, so
no one without the Token can probe it; every failure is still the same
:class:`MalformedMessage` so none can be told apart.
"""

from __future__ import annotations

import binascii
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wxtoken.errors import ConfigError, MalformedMessage

_BLOCK = 32  # WeChat's PKCS#7 block size, not AES's 16
_RANDOM = 16
_HEADER = _RANDOM + 4  # random bytes, then the 4-byte message length
_KEY_CHARS = 43


class MessageCrypto:
    """Encrypts replies and decrypts messages of one official account.

    Build one per (appid, EncodingAESKey) and keep it: the key is decoded and the AES cipher
    set up once, each call only starts a CBC context. Safe to share between threads.
    """

    __slots__ = ("_appid_bytes", "_cipher", "appid")

    def __init__(self, encoding_aes_key: str, appid: str) -> None:
        """Raises :class:`ConfigError` when the key is not WeChat's 43-character EncodingAESKey."""
        key = _decode_key(encoding_aes_key)
        self.appid = appid
        self._appid_bytes = appid.encode()
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def encrypt(self, plaintext: str, *, random16: bytes | None = None) -> str:
        """The ``Encrypt`` value of a safe-mode reply carrying ``plaintext``.

        ``random16`` fixes the 16 leading random bytes (tests reproduce Tencent's vectors
        with it); by default they come from ``os.urandom``.
        """
        if random16 is None:
            random16 = os.urandom(_RANDOM)
        elif len(random16) != _RANDOM:
            raise ValueError("random16 must be exactly 16 bytes")
        msg = plaintext.encode()
        size = _HEADER + len(msg) + len(self._appid_bytes)
        pad = _BLOCK - size % _BLOCK
        buffer = b"".join(
            (random16, len(msg).to_bytes(4, "big"), msg, self._appid_bytes, bytes((pad,)) * pad)
        )
        encryptor = self._cipher.encryptor()
        ciphertext = encryptor.update(buffer)
        encryptor.finalize()
        return binascii.b2a_base64(ciphertext, newline=False).decode("ascii")

    def decrypt(self, ciphertext_b64: str) -> str:
        """The message inside an ``Encrypt`` value.

        Raises :class:`MalformedMessage` when it is not base64, not whole AES blocks, badly
        padded, carries an impossible length, another app's appid, or text that is not UTF-8.
        """
        try:
            raw = binascii.a2b_base64(ciphertext_b64, strict_mode=True)
        except ValueError:  # binascii.Error, and non-ASCII str
            raise MalformedMessage from None
        size = len(raw)
        if size < _BLOCK or size % 16:
            raise MalformedMessage
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(raw)
        decryptor.finalize()

        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or not plain.endswith(bytes((pad,)) * pad):
            raise MalformedMessage
        end = size - pad  # where the appid ends
        # The length field is attacker-shaped until checked: bound it by what is really there
        # before it is used for anything.
        msg_len = int.from_bytes(plain[_RANDOM:_HEADER], "big")
        msg_end = _HEADER + msg_len
        if msg_end + len(self._appid_bytes) != end or not plain.startswith(self._appid_bytes, msg_end):
            raise MalformedMessage
        try:
            return str(memoryview(plain)[_HEADER:msg_end], "utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage from None


def _decode_key(encoding_aes_key: str) -> bytes:
    hint = "encoding_aes_key must be the 43-character EncodingAESKey from the WeChat console"
    if len(encoding_aes_key) != _KEY_CHARS or not encoding_aes_key.isascii():
        raise ConfigError(hint)
    try:
        key = binascii.a2b_base64(encoding_aes_key + "=", strict_mode=True)
    except ValueError:
        raise ConfigError(hint) from None
    if len(key) != 32:
        raise ConfigError(hint)
    return key
