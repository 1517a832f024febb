"""The audit service's own Ed25519 key: signs checkpoints; its public key is published
(``auditPublicKey``, every export and checkpoint record)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from opsconductor_audit.service.canonical import key_id

KEY_FILE = "audit-signing.key"


class Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_b64 = base64.b64encode(raw).decode()
        self.key_id = key_id(raw)

    @classmethod
    def from_raw_b64(cls, value: str) -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(base64.b64decode(value)))

    @classmethod
    def load_or_create(cls, configured: str | None, data_dir: Path) -> Signer:
        """The configured key (base64 of 32 raw bytes), else ``<data_dir>/audit-signing.key``
        (created once, mode 0600)."""
        if configured:
            return cls.from_raw_b64(configured)
        path = data_dir / KEY_FILE
        if path.exists():
            return cls.from_raw_b64(path.read_text().strip())
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        raw = os.urandom(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another replica on this data directory made it first
            return cls.from_raw_b64(path.read_text().strip())
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(raw).decode())
        return cls.from_raw_b64(base64.b64encode(raw).decode())

    def sign(self, statement: bytes) -> str:
        return base64.b64encode(self._key.sign(statement)).decode()

    def verify(self, statement: bytes, signature_b64: str) -> bool:
        public: Ed25519PublicKey = self._key.public_key()
        try:
            public.verify(base64.b64decode(signature_b64), statement)
        except (InvalidSignature, ValueError):
            return False
        return True
