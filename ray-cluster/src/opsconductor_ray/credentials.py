"""Fetching a target's secret from the targets service at connect time.

Secrets exist only inside the pool actor that connects: a `Credential` refuses to be
pickled (so it cannot reach Ray's object store by accident) and its repr hides secrets.
Private keys are parsed once and cached by a digest of their text, because parsing an
encrypted key runs a deliberately slow KDF.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

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
    options: dict[str, str] = field(default_factory=dict[str, str], compare=False, hash=False)
    """Non-secret transport options from the resolver (WinRM: transport, serverCertValidation, scheme;
    SSH: knownHosts, the target's trusted host key in known_hosts format, which replaces the pool's;
    without it (and without a pool-wide known_hosts file) the pool refuses to connect)."""

    def __repr__(self) -> str:
        hidden = "***"
        return (
            f"Credential(username={self.username!r}, "
            f"password={hidden if self.password is not None else None}, "
            f"private_key={hidden if self.private_key is not None else None})"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Credential holds secrets and must not be serialized")


MAX_KDF_ROUNDS = 1024
"""Most bcrypt rounds an encrypted OpenSSH key may ask for (ssh-keygen's default is 16; each
round costs ~10-20 ms of CPU, and the count is the key author's choice: review H8)."""
MAX_PBKDF_ITERATIONS = 1_000_000
"""Most PBKDF iterations an encrypted PKCS#8 key may ask for (OpenSSL's default is 2048)."""
KEY_PARSE_TIMEOUT_S = 30.0
KEY_CACHE_SIZE = 256
KEY_CACHE_TTL_S = 3600.0
_KEY_PARSERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="opsc-key-parse")
"""Key parsing runs here, never on an event loop; two threads at most, so a key that takes
long (up to MAX_KDF_ROUNDS) can hold at most these, whatever happens to its waiter."""
_OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----"
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


class KeyTooCostly(CredentialUnavailable):
    """An encrypted private key asks for more KDF work than the pool allows (H8)."""


def openssh_kdf_rounds(pem: str) -> int | None:
    """The bcrypt rounds an OpenSSH-format private key asks for: None if it is not in that
    format or not encrypted with bcrypt. Reads only the header, no KDF runs."""
    start = pem.find(_OPENSSH_BEGIN)
    if start < 0:
        return None
    end = pem.find(_OPENSSH_END, start)
    body = pem[start + len(_OPENSSH_BEGIN) : end if end >= 0 else len(pem)]
    try:
        raw = base64.b64decode("".join(body.split()), validate=False)
    except (ValueError, binascii.Error):
        return None
    if not raw.startswith(_OPENSSH_MAGIC):
        return None
    offset = len(_OPENSSH_MAGIC)

    def string() -> bytes:
        nonlocal offset
        if offset + 4 > len(raw):
            raise ValueError("truncated")
        (length,) = struct.unpack_from(">I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ValueError("truncated")
        value = raw[offset : offset + length]
        offset += length
        return value

    try:
        string()  # cipher name
        kdf_name = string()
        kdf_options = string()
    except ValueError:
        return None
    if kdf_name != b"bcrypt":
        return None
    if len(kdf_options) < 4:
        return None
    (salt_length,) = struct.unpack_from(">I", kdf_options, 0)
    if 4 + salt_length + 4 > len(kdf_options):
        return None
    (rounds,) = struct.unpack_from(">I", kdf_options, 4 + salt_length)
    return int(rounds)


_PKCS8_BEGIN = "-----BEGIN ENCRYPTED PRIVATE KEY-----"
_PKCS8_END = "-----END ENCRYPTED PRIVATE KEY-----"


def pkcs8_kdf_iterations(pem: str) -> int | None:
    """The PBKDF iteration count an encrypted PKCS#8 PEM key asks for (PBES2/PBKDF2 or PBES1);
    None if it is not such a key or its parameters are not in a form we know."""
    from asyncssh.asn1 import ASN1DecodeError, der_decode

    start = pem.find(_PKCS8_BEGIN)
    if start < 0:
        return None
    end = pem.find(_PKCS8_END, start)
    body = pem[start + len(_PKCS8_BEGIN) : end if end >= 0 else len(pem)]
    try:
        decoded: Any = der_decode(base64.b64decode("".join(body.split())))
    except (ValueError, binascii.Error, ASN1DecodeError):
        return None
    try:
        algorithm, _ = decoded
        _, params = algorithm
        # PBES2: ((kdf oid, (salt, iterations, ...)), cipher); PBES1 / PKCS#12 PBE: (salt, iterations)
        iterations = params[0][1][1] if isinstance(params[0], tuple) else params[1]
    except (TypeError, ValueError, IndexError):
        return None
    return iterations if isinstance(iterations, int) else None


class KeyCache:
    """Parsed private keys by digest of (key text, passphrase); one per pool actor.

    Bounded (M12): at most `max_keys`, least recently used evicted first, and none kept longer
    than `ttl_s` after it was parsed (so deleted or rotated keys leave the pool's memory).
    Parsing is bounded too (H8): an encrypted OpenSSH key asking for more than
    `max_kdf_rounds` bcrypt rounds (an encrypted PKCS#8 key more than `max_pbkdf_iterations`)
    is refused before any KDF runs, and parsing (in a small
    thread pool, never on the event loop) is given up after `parse_timeout_s`."""

    def __init__(
        self,
        *,
        max_keys: int = KEY_CACHE_SIZE,
        ttl_s: float = KEY_CACHE_TTL_S,
        max_kdf_rounds: int = MAX_KDF_ROUNDS,
        max_pbkdf_iterations: int = MAX_PBKDF_ITERATIONS,
        parse_timeout_s: float = KEY_PARSE_TIMEOUT_S,
    ) -> None:
        self._keys: OrderedDict[str, tuple[asyncssh.SSHKey, float]] = OrderedDict()
        self._salt = secrets.token_bytes(16)
        self._max_keys = max(1, max_keys)
        self._ttl_s = ttl_s
        self._max_kdf_rounds = max_kdf_rounds
        self._max_pbkdf_iterations = max_pbkdf_iterations
        self._parse_timeout_s = parse_timeout_s

    def digest(self, *parts: str | None) -> str:
        """A keyed digest of secret parts: equal within this process only, never reversible."""
        mac = hmac.new(self._salt, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(b"\x00" if part is None else b"\x01" + part.encode())
            mac.update(b"\xff")
        return mac.hexdigest()

    async def load(self, pem: str, passphrase: str | None) -> asyncssh.SSHKey:
        digest = self.digest(pem, passphrase)
        now = time.monotonic()
        self.expire(now)
        entry = self._keys.get(digest)
        if entry is not None:
            self._keys.move_to_end(digest)
            return entry[0]
        rounds = openssh_kdf_rounds(pem)
        if rounds is not None and rounds > self._max_kdf_rounds:
            raise KeyTooCostly(
                f"the private key asks for {rounds} bcrypt KDF rounds; at most {self._max_kdf_rounds} "
                "are accepted (re-export it with fewer, e.g. ssh-keygen -p -a 64)"
            )
        iterations = pkcs8_kdf_iterations(pem)
        if iterations is not None and iterations > self._max_pbkdf_iterations:
            raise KeyTooCostly(
                f"the private key asks for {iterations} PBKDF iterations; at most "
                f"{self._max_pbkdf_iterations} are accepted"
            )
        # Parsing (and decrypting) is CPU work: keep it off the actor's event loop, bounded.
        loop = asyncio.get_running_loop()
        parsing = loop.run_in_executor(_KEY_PARSERS, asyncssh.import_private_key, pem, passphrase)
        try:
            key = await asyncio.wait_for(parsing, self._parse_timeout_s)
        except TimeoutError:
            raise CredentialUnavailable(
                f"parsing the private key took longer than {self._parse_timeout_s:g}s"
            ) from None
        self._keys[digest] = (key, time.monotonic())
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return key

    def expire(self, now: float | None = None) -> int:
        """Drop keys parsed more than `ttl_s` ago; returns how many."""
        now = time.monotonic() if now is None else now
        stale = [digest for digest, (_, at) in self._keys.items() if now - at >= self._ttl_s]
        for digest in stale:
            del self._keys[digest]
        return len(stale)

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
        error = _json_object(body)
        message = error.get("message") if error is not None else None
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
        batch = _json_object(body)
        answers = _json_object(batch.get("credentials")) if batch is not None else None
        if batch is None or answers is None:
            _unavailable("credential resolver returned a body without a credentials object")
    except CredentialUnavailable as exc:
        return dict.fromkeys(ids, exc)
    refused = _json_object(batch.get("refused")) or {}
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


def _json_object(value: object) -> dict[str, Any] | None:
    """`value` if it is a JSON object (a dict, from `response.json()`), else None."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


async def _credential(answer: Any, cache: KeyCache) -> Credential:
    """A `Credential` from one resolver answer (`CredentialUnavailable` if it is unusable)."""
    body = _json_object(answer)
    if body is None:
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
    # WinRM: the method explicitly allows Basic over http / no certificate validation (L5).
    allow_insecure = body.get("allowInsecure")
    if allow_insecure is True or (isinstance(allow_insecure, str) and allow_insecure.lower() == "true"):
        options["allowInsecure"] = "true"
    return Credential(
        options=options,
        username=username,
        password=password,
        private_key=private_key,
        passphrase=passphrase,
        fingerprint=cache.digest(username, password, pem, passphrase),
    )
