"""Fetching a target's secret from the targets service at connect time.

Secrets exist only inside the pool actor that connects: a `Credential` refuses to be
pickled (so it cannot reach Ray's object store by accident) and its repr hides secrets.
Private keys are parsed once and cached by a digest of their text, because parsing an
encrypted key runs a deliberately slow KDF.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import asyncssh
import httpx

from opsconductor_ray.errors import CredentialUnavailable
from opsconductor_ray.protocol import CredentialRef

RESOLVER_TIMEOUT_S = 10.0
BATCH_TIMEOUT_PER_TARGET_S = 0.2
"""A batch request (`fetch_credentials`) may take RESOLVER_TIMEOUT_S plus this per target."""


@dataclass(frozen=True, repr=False)
class Credential:
    """A resolved login for one target. Never logged, never serialized."""

    username: str
    password: str | None = field(default=None)
    private_key: asyncssh.SSHKey | None = field(default=None)
    passphrase: str | None = field(default=None)
    fingerprint: str = field(default="", compare=False)
    """Stable within the process for equal secrets, meaningless outside it (keyed digest)."""
    options: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Non-secret transport options from the resolver (WinRM: transport, serverCertValidation, scheme;
    SSH: knownHosts, the target's trusted host key in known_hosts format, which replaces the pool's)."""

    def __repr__(self) -> str:
        hidden = "***"
        return (
            f"Credential(username={self.username!r}, "
            f"password={hidden if self.password is not None else None}, "
            f"private_key={hidden if self.private_key is not None else None})"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Credential holds secrets and must not be serialized")


class KeyCache:
    """Parsed private keys by digest of (key text, passphrase); one per pool actor."""

    def __init__(self) -> None:
        self._keys: dict[str, asyncssh.SSHKey] = {}
        self._salt = secrets.token_bytes(16)

    def digest(self, *parts: str | None) -> str:
        """A keyed digest of secret parts: equal within this process only, never reversible."""
        mac = hmac.new(self._salt, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(b"\x00" if part is None else b"\x01" + part.encode())
            mac.update(b"\xff")
        return mac.hexdigest()

    async def load(self, pem: str, passphrase: str | None) -> asyncssh.SSHKey:
        digest = self.digest(pem, passphrase)
        key = self._keys.get(digest)
        if key is None:
            # Parsing (and decrypting) is CPU work: keep it off the actor's event loop.
            key = await asyncio.to_thread(asyncssh.import_private_key, pem, passphrase)
            self._keys[digest] = key
        return key

    def __len__(self) -> int:
        return len(self._keys)


def _unavailable(message: str) -> NoReturn:
    raise CredentialUnavailable(message)


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    _unavailable(f"credential resolver returned a non-string {name!r}")


async def _post(
    ref: CredentialRef,
    payload: dict[str, Any],
    client: httpx.AsyncClient | None,
    *,
    timeout_s: float = RESOLVER_TIMEOUT_S,
    attempts: int = 1,
) -> Any:
    """POST to the resolver; the JSON body of a 200 answer, else `CredentialUnavailable`.

    A resolver that could not be reached or did not answer in time is asked again, up to
    `attempts` times in all (resolving is read-only, so asking twice is harmless)."""
    response: httpx.Response | None = None
    for attempt in range(1, attempts + 1):
        try:
            if client is None:
                async with httpx.AsyncClient(timeout=timeout_s) as own_client:
                    response = await own_client.post(ref.resolver_url, json=payload)
            else:
                response = await client.post(ref.resolver_url, json=payload, timeout=timeout_s)
            break
        except httpx.HTTPError as exc:
            if attempt < attempts:
                await asyncio.sleep(0.5 * attempt)
                continue
            raise CredentialUnavailable(
                f"credential resolver {ref.resolver_url} unreachable: {type(exc).__name__}"
            ) from exc
    assert response is not None  # the loop either answered or raised
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        message = body.get("message") if isinstance(body, dict) else None
        _unavailable(str(message) if message else f"credential resolver answered HTTP {response.status_code}")
    return body


async def fetch_credential(
    ref: CredentialRef,
    target_id: str,
    *,
    client: httpx.AsyncClient | None = None,
    key_cache: KeyCache | None = None,
) -> Credential:
    """Resolve `ref` for `target_id` by POSTing `{grant, targetId}` to the targets service's resolver.

    Raises `CredentialUnavailable` (with the server's `message` when it sent one) for any
    non-200 answer, an unreachable resolver, a malformed body or an unusable key.
    """
    body = await _post(ref, {"grant": ref.grant, "targetId": target_id}, client)
    return await _credential(body, key_cache if key_cache is not None else KeyCache())


async def fetch_credentials(
    ref: CredentialRef,
    target_ids: Sequence[str],
    *,
    client: httpx.AsyncClient | None = None,
    key_cache: KeyCache | None = None,
) -> dict[str, Credential | CredentialUnavailable]:
    """Resolve `ref` for many targets in one request (`{grant, targetIds}`): what a pool does once
    per batch instead of once per target.

    Every asked id gets its `Credential` or its own `CredentialUnavailable` (the resolver's
    refusal for that target, or, when the whole request failed, that failure).
    """
    cache = key_cache if key_cache is not None else KeyCache()
    ids = list(dict.fromkeys(target_ids))
    try:
        # A batch may make the resolver read first-use host keys: allow it time per target,
        # and one more try before every target of the batch fails.
        body = await _post(
            ref,
            {"grant": ref.grant, "targetIds": ids},
            client,
            timeout_s=RESOLVER_TIMEOUT_S + BATCH_TIMEOUT_PER_TARGET_S * len(ids),
            attempts=2,
        )
        if not isinstance(body, dict) or not isinstance(body.get("credentials"), dict):
            _unavailable("credential resolver returned a body without a credentials object")
    except CredentialUnavailable as exc:
        return dict.fromkeys(ids, exc)
    answers: dict[str, Any] = body["credentials"]
    refused_body = body.get("refused")
    refused: dict[str, Any] = refused_body if isinstance(refused_body, dict) else {}
    out: dict[str, Credential | CredentialUnavailable] = {}
    for target_id in ids:
        try:
            if target_id in answers:
                out[target_id] = await _credential(answers[target_id], cache)
            else:
                _unavailable(
                    str(refused.get(target_id) or "credential resolver did not answer for this target")
                )
        except CredentialUnavailable as exc:
            out[target_id] = exc
    return out


async def _credential(body: Any, cache: KeyCache) -> Credential:
    """A `Credential` from one resolver answer (`CredentialUnavailable` if it is unusable)."""
    if not isinstance(body, dict):
        _unavailable("credential resolver returned a body that is not a JSON object")

    username = body.get("username")
    if not isinstance(username, str) or not username:
        _unavailable("credential resolver returned no username")
    password = _optional_str(body, "password")
    pem = _optional_str(body, "privateKey")
    passphrase = _optional_str(body, "passphrase")
    if password is None and pem is None:
        _unavailable(f"credential for user '{username}' has neither a password nor a private key")

    private_key = None
    if pem is not None:
        try:
            private_key = await cache.load(pem, passphrase)
        except asyncssh.KeyEncryptionError as exc:
            raise CredentialUnavailable(f"private key of user '{username}' could not be decrypted") from exc
        except asyncssh.KeyImportError as exc:
            raise CredentialUnavailable(f"private key of user '{username}' could not be parsed") from exc

    options = {
        name: value
        for name in ("transport", "serverCertValidation", "scheme", "knownHosts")
        if isinstance(value := body.get(name), str)
    }
    return Credential(
        options=options,
        username=username,
        password=password,
        private_key=private_key,
        passphrase=passphrase,
        fingerprint=cache.digest(username, password, pem, passphrase),
    )
