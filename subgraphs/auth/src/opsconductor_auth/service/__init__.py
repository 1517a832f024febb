"""Auth domain logic (no strawberry): async module functions with keyword-only arguments; the
collaborators they share (signing keys, token issuer, revocation list, policies) are in :class:`Deps`,
built in ``app.py``. Functions write; the resolver owns the transaction.

- ``keys``: RS256 signing keys and rotation, the tokens auth signs, service tokens
- ``hashing``: argon2id / legacy bcrypt, the password policy, a login's password check
- ``sessions``: login with lockout, sessions (sliding idle), refresh rotation, logout, login attempts
- ``api_keys``: create, revoke, the status every service asks
- ``passwords``: set / change / reset / import a credential's password, the bootstrap admin
- ``replica``: the users service's claims, from its events
"""

from opsconductor_auth.service.api_keys import (
    api_key_active,
    create_api_key,
    list_api_keys,
    not_held,
    record_api_key_use,
    revoke_api_key,
    revoke_api_keys,
)
from opsconductor_auth.service.deps import Deps
from opsconductor_auth.service.hashing import (
    PasswordCheck,
    PasswordPolicy,
    check_importable_hash,
    check_password,
    hash_password,
    is_legacy_hash,
)
from opsconductor_auth.service.keys import (
    SERVICE_PERMISSIONS,
    SERVICE_TOKEN_MINUTES,
    KeyManager,
    RotationResult,
    ServiceSecrets,
    TokenIssuer,
    keyring_of,
    now,
    service_token,
    token_retention_seconds,
)
from opsconductor_auth.service.passwords import (
    NewPassword,
    announce_bootstrap_password,
    change_password,
    check_admin_password,
    ensure_bootstrap_admin,
    import_legacy_credential,
    prepare_password,
    prepare_password_change,
    prepare_password_reset,
    reset_password,
    set_credential,
)
from opsconductor_auth.service.replica import apply_user_event, snapshot_version
from opsconductor_auth.service.sessions import (
    AttemptPage,
    IssuedTokens,
    Outcome,
    SessionPolicy,
    end_session,
    extend_session,
    get_session,
    last_seen,
    list_login_attempts,
    list_sessions,
    login,
    logout,
    prune_login_attempts,
    refresh,
    revoke_all,
    revoke_all_sessions,
    revoke_session,
    session_of,
)

__all__ = [
    "SERVICE_PERMISSIONS",
    "SERVICE_TOKEN_MINUTES",
    "AttemptPage",
    "Deps",
    "IssuedTokens",
    "KeyManager",
    "NewPassword",
    "Outcome",
    "PasswordCheck",
    "PasswordPolicy",
    "RotationResult",
    "ServiceSecrets",
    "SessionPolicy",
    "TokenIssuer",
    "announce_bootstrap_password",
    "api_key_active",
    "apply_user_event",
    "change_password",
    "check_admin_password",
    "check_importable_hash",
    "check_password",
    "create_api_key",
    "end_session",
    "ensure_bootstrap_admin",
    "extend_session",
    "get_session",
    "hash_password",
    "import_legacy_credential",
    "is_legacy_hash",
    "keyring_of",
    "last_seen",
    "list_api_keys",
    "list_login_attempts",
    "list_sessions",
    "login",
    "logout",
    "not_held",
    "now",
    "prepare_password",
    "prepare_password_change",
    "prepare_password_reset",
    "prune_login_attempts",
    "record_api_key_use",
    "refresh",
    "reset_password",
    "revoke_all",
    "revoke_all_sessions",
    "revoke_api_key",
    "revoke_api_keys",
    "revoke_session",
    "service_token",
    "session_of",
    "set_credential",
    "snapshot_version",
    "token_retention_seconds",
]
