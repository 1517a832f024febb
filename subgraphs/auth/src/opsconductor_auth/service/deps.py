"""The auth service's collaborators, built once in ``app.py`` and passed to the service functions."""

from __future__ import annotations

from dataclasses import dataclass

from opsconductor_auth.service.hashing import PasswordPolicy
from opsconductor_auth.service.keys import KeyManager, ServiceSecrets, TokenIssuer
from opsconductor_auth.service.sessions import SessionPolicy
from opsconductor_auth.settings import Settings
from opsconductor_shared.auth import RevocationStore


@dataclass(frozen=True)
class Deps:
    keys: KeyManager
    tokens: TokenIssuer
    revocations: RevocationStore
    service_secrets: ServiceSecrets
    passwords: PasswordPolicy
    sessions: SessionPolicy

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        keys: KeyManager,
        revocations: RevocationStore,
        service_secrets: ServiceSecrets | None = None,
    ) -> Deps:
        return cls(
            keys=keys,
            tokens=TokenIssuer.from_settings(keys, settings),
            revocations=revocations,
            service_secrets=service_secrets or ServiceSecrets.from_settings(settings),
            passwords=PasswordPolicy.from_settings(settings),
            sessions=SessionPolicy.from_settings(settings),
        )
