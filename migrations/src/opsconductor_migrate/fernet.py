"""The monolith's credential encryption (``app/utils/encryption_utils.py``), read side only.

Key: the first 32 bytes of ``SECRET_KEY``, right-padded with ASCII ``'0'`` to 32 bytes, then
urlsafe-base64 encoded as a Fernet key (no KDF, no salt). Stored value: the Fernet token
base64-urlsafe-encoded a second time. Plaintext: JSON ``{type: "password", username, password}``
(password, snmp_community, api_key) or ``{type: "ssh_key", username, private_key[, passphrase]}``
(ssh_key, api_token: the token sits in ``private_key``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from opsconductor_targets.service.legacy import LegacySecret

__all__ = ["LegacyDecryptError", "legacy_fernet", "secret_of"]


class LegacyDecryptError(Exception):
    """A stored credential that does not decrypt or parse (reported, never guessed)."""


def legacy_fernet(secret_key: str) -> Fernet:
    raw = secret_key.encode()[:32].ljust(32, b"0")
    return Fernet(base64.urlsafe_b64encode(raw))


def decrypt(fernet: Fernet, stored: str) -> dict[str, Any]:
    try:
        token = base64.urlsafe_b64decode(stored.strip().encode())
        plain = fernet.decrypt(token)
    except (InvalidToken, binascii.Error, ValueError):
        raise LegacyDecryptError("does not decrypt with the legacy SECRET_KEY") from None
    try:
        data = json.loads(plain)
    except ValueError:
        raise LegacyDecryptError("decrypts, but not to JSON") from None
    if not isinstance(data, dict):
        raise LegacyDecryptError("decrypts, but not to a JSON object")
    return data  # pyright: ignore[reportUnknownVariableType]


def secret_of(credential_type: str, data: dict[str, Any]) -> LegacySecret:
    """The decrypted legacy JSON as our credential's secret."""
    username = str(data.get("username") or "")
    if credential_type == "ssh_key":
        key = data.get("private_key")
        if not key:
            raise LegacyDecryptError("ssh_key credential without private_key")
        return LegacySecret(
            username=username, private_key=str(key), passphrase=data.get("passphrase") or None
        )
    if credential_type == "api_token":
        token = data.get("private_key") or data.get("password")
        if not token:
            raise LegacyDecryptError("api_token credential without a token")
        return LegacySecret(username=username, password=str(token))
    password = data.get("password")
    if not password:
        raise LegacyDecryptError(f"{credential_type} credential without password")
    return LegacySecret(username=username, password=str(password))
