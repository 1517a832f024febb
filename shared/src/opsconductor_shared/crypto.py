"""AES-GCM envelope encryption with key ids, for secrets at rest (credentials, signing keys).

Ciphertext format: ``v1:<kid>:<base64url(nonce || ciphertext+tag)>``. The key id lets a key
ring hold the current key and older ones, so rotation is: add a new key first in the list,
re-encrypt, then drop the old key. Associated data binds a ciphertext to its row, so a
ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class DecryptionError(Exception):
    """The ciphertext is malformed, was made with an unknown key, or was tampered with."""


class KeyRing:
    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if active not in keys:
            raise ValueError(f"active key id {active!r} is not in the key ring")
        for kid, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"key {kid!r} must be 32 bytes (AES-256)")
            if ":" in kid:
                raise ValueError("key ids may not contain ':'")
        self._keys = dict(keys)
        self.active = active

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """``kid1:base64key,kid2:base64key``; the first key is the active one."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, _, b64 = part.partition(":")
            keys[kid] = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
            order.append(kid)
        if not order:
            raise ValueError("empty key ring")
        return cls(keys, order[0])

    @classmethod
    def load_or_create(cls, spec: str | None, path: Path) -> KeyRing:
        """Keys from settings, else the embedded default: a generated key file (mode 0600)."""
        if spec:
            return cls.parse(spec)
        if path.exists():
            return cls.parse(path.read_text().strip())
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = f"k{secrets.token_hex(4)}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(spec)
        return cls.parse(spec)

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> str:
        nonce = os.urandom(12)
        ct = AESGCM(self._keys[self.active]).encrypt(nonce, plaintext, aad)
        return f"v1:{self.active}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def decrypt(self, token: str, aad: bytes = b"") -> bytes:
        try:
            version, kid, b64 = token.split(":", 2)
        except ValueError as exc:
            raise DecryptionError("malformed ciphertext") from exc
        if version != "v1":
            raise DecryptionError(f"unknown ciphertext version {version!r}")
        key = self._keys.get(kid)
        if key is None:
            raise DecryptionError(f"ciphertext made with unknown key id {kid!r}")
        try:
            raw = base64.urlsafe_b64decode(b64)
        except ValueError as exc:  # binascii.Error: bad padding
            raise DecryptionError("malformed ciphertext") from exc
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], aad)
        except Exception as exc:
            raise DecryptionError("ciphertext failed authentication") from exc

    def key_id_of(self, token: str) -> str:
        parts = token.split(":", 2)
        if len(parts) != 3:
            raise DecryptionError("malformed ciphertext")
        return parts[1]
