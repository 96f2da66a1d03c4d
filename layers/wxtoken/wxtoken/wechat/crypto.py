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
import threading

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wxtoken.errors import ConfigError, MalformedMessage

_BLOCK = 32  # WeChat's PKCS#7 block size, not AES's 16
_RANDOM = 16
_HEADER = _RANDOM + 4  # random bytes, then the 4-byte message length
_SKIP = 16  # the block a kept decryption context yields for the IV fed before a message
_KEY_CHARS = 43


class MessageCrypto:
    """Encrypts replies and decrypts messages of one official account.

    Build one per (appid, EncodingAESKey) and keep it: the key is decoded, the AES cipher set
    up and one CBC context of each direction started once. Safe to share between threads.

    The contexts are kept from call to call, for a measured reason: starting a CBC context
    costs 1.7 µs to decrypt and 2.1 to encrypt, more than the AES work on a message (0.3), of
    a webhook request that has 43 µs to be twice as fast as wechatpy
    (bench/webhook_roundtrip.py --breakdown). A kept context chains each call's first block
    on the previous call's last ciphertext block instead of WeChat's IV (``AESKey[:16]``), so:

    - to decrypt, the IV goes in first as one more ciphertext block: the context then chains
      the message's first block on the IV, and the block it yields for the IV is dropped;
    - to encrypt, the first plaintext block goes in as ``block ^ IV ^ previous``: the context
      XORs it with ``previous``, which leaves ``block ^ IV``, CBC's first step with the IV.
      When the block is the 16 random bytes drawn here, fresh random bytes go in as they are:
      what WeChat decrypts in their place is as uniformly random, and nothing else reads them.

    tests/unit/test_crypto.py checks both against a context started fresh for every call,
    across interleaved calls, and on Tencent's vectors.
    """

    __slots__ = ("_appid_bytes", "_decryptor", "_encryptor", "_iv", "_lock", "_previous", "appid")

    def __init__(self, encoding_aes_key: str, appid: str) -> None:
        """Raises :class:`ConfigError` when the key is not WeChat's 43-character EncodingAESKey."""
        key = _decode_key(encoding_aes_key)
        self.appid = appid
        self._appid_bytes = appid.encode()
        self._iv = key[:16]
        cipher = Cipher(algorithms.AES(key), modes.CBC(self._iv))
        self._encryptor = cipher.encryptor()
        self._decryptor = cipher.decryptor()
        self._previous = self._iv  # what the encryptor chains its next block on
        self._lock = threading.Lock()

    def encrypt(self, plaintext: str, *, random16: bytes | None = None) -> str:
        """The ``Encrypt`` value of a safe-mode reply carrying ``plaintext``.

        ``random16`` fixes the 16 leading random bytes (tests reproduce Tencent's vectors
        with it); by default they come from ``os.urandom``.
        """
        if random16 is not None and len(random16) != _RANDOM:
            raise ValueError("random16 must be exactly 16 bytes")
        msg = plaintext.encode()
        size = _HEADER + len(msg) + len(self._appid_bytes)
        pad = _BLOCK - size % _BLOCK
        rest = b"".join((len(msg).to_bytes(4, "big"), msg, self._appid_bytes, bytes((pad,)) * pad))
        with self._lock:
            first = os.urandom(_RANDOM) if random16 is None else _xor(random16, self._iv, self._previous)
            ciphertext = self._encryptor.update(first + rest)
            self._previous = ciphertext[-_RANDOM:]
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
        with self._lock:
            # The IV first: its own output block (_SKIP bytes) is dropped below.
            plain = self._decryptor.update(self._iv + raw)

        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or not plain.endswith(bytes((pad,)) * pad):
            raise MalformedMessage
        end = _SKIP + size - pad  # where the appid ends
        # The length field is attacker-shaped until checked: bound it by what is really there
        # before it is used for anything.
        msg_len = int.from_bytes(plain[_SKIP + _RANDOM : _SKIP + _HEADER], "big")
        msg_end = _SKIP + _HEADER + msg_len
        if msg_end + len(self._appid_bytes) != end or not plain.startswith(self._appid_bytes, msg_end):
            raise MalformedMessage
        try:
            return str(memoryview(plain)[_SKIP + _HEADER : msg_end], "utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage from None


def _xor(*blocks: bytes) -> bytes:
    result = 0
    for block in blocks:
        result ^= int.from_bytes(block)
    return result.to_bytes(_RANDOM)


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
