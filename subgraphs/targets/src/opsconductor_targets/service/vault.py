"""The credential vault: secrets encrypted at rest with the key ring (AES-GCM, the row id as AAD).

Secrets (passwords, private keys, passphrases) leave the service only through the credential
resolver (``grants.resolve_many``, the engine's ``POST /internal/credentials`` with a connection
grant). They are also decrypted, and kept for the call only, by a local probe of a saved method
(``ConnectionTester.test_saved_method``) and by ``methods._replace_credential`` (to keep a stored
passphrase). They never go into events, logs or GraphQL types.
"""

from __future__ import annotations

import json
from typing import Any

from opsconductor_shared.crypto import KeyRing
from opsconductor_shared.logging import get_logger
from opsconductor_targets.models import Credential, GrantKey
from opsconductor_targets.settings import Settings

log = get_logger("opsconductor.targets")


def load_keyring(settings: Settings) -> KeyRing:
    """The key ring of ``encryption_keys``, else the generated key file under the data directory."""
    keys = settings.encryption_keys
    return KeyRing.load_or_create(
        keys.get_secret_value() if keys is not None else None, settings.data_dir / "targets.keys"
    )


class Vault:
    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    def encrypt(self, cred_id: str, secret: dict[str, Any]) -> str:
        return self.keyring.encrypt(json.dumps(secret).encode(), aad=cred_id.encode())

    def decrypt(self, credential: Credential) -> dict[str, Any]:
        return json.loads(self.keyring.decrypt(credential.secret_encrypted, aad=credential.id.encode()))


async def reencrypt(*, keyring: KeyRing) -> dict[str, int]:
    """Re-encrypt every credential and grant key not under the active key (rotation step 2)."""
    done = {"credentials": 0, "grant_keys": 0, "already_current": 0}
    for cred in await Credential.all():
        if keyring.key_id_of(cred.secret_encrypted) == keyring.active:
            done["already_current"] += 1
            continue
        plain = keyring.decrypt(cred.secret_encrypted, aad=cred.id.encode())
        cred.secret_encrypted = keyring.encrypt(plain, aad=cred.id.encode())
        await cred.save(update_fields=["secret_encrypted"])
        done["credentials"] += 1
    for gk in await GrantKey.all():
        if keyring.key_id_of(gk.key_encrypted) == keyring.active:
            done["already_current"] += 1
            continue
        aad = f"grant-key:{gk.kid}".encode()
        gk.key_encrypted = keyring.encrypt(keyring.decrypt(gk.key_encrypted, aad=aad), aad=aad)
        await gk.save(update_fields=["key_encrypted"])
        done["grant_keys"] += 1
    log.info("credentials re-encrypted", active_key=keyring.active, **done)
    return done
