"""Private-key checks that cannot freeze the service (review H8).

An encrypted private key names its own key-derivation cost: OpenSSH keys a bcrypt ``rounds``
count (uint32, ~10 ms of CPU per round), PKCS#8 keys a PBKDF2 iteration count. asyncssh runs
the KDF to the end even for a wrong passphrase, so a key with ``rounds=2**24`` costs days.
Here the cost is read from the key's header **before** any KDF work and refused above a cap
(settings ``ssh_key_max_kdf_rounds`` / ``ssh_key_max_pbkdf2_iterations``); the import itself
runs in a small thread pool of its own, bounded by ``ssh_key_check_timeout_seconds``, never on
the event loop.

Formats read (what ``asyncssh.import_private_key`` accepts, located the same way it does: DER
when the data starts with a SEQUENCE byte, else the first ``-----BEGIN ... PRIVATE KEY-----``
block): ``OPENSSH`` (PROTOCOL.key: ``"openssh-key-v1\\0"``, string ciphername, string kdfname,
string kdfoptions = string salt + uint32 rounds), ``ENCRYPTED`` PKCS#8 (PEM or DER:
EncryptedPrivateKeyInfo, whose algorithm parameters carry the iteration count). A header that
names such a format but cannot be read is refused (fail closed); other formats (PKCS#1, legacy
PEM encryption with one MD5 pass, plain PKCS#8) do no attacker-sized work.
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from asyncssh.asn1 import ASN1DecodeError, der_decode_partial
from asyncssh.misc import match_base64

from opsconductor_shared.errors import ValidationError

T = TypeVar("T")

OPENSSH_MAGIC = b"openssh-key-v1\0"
DEFAULT_MAX_KDF_ROUNDS = 1024
DEFAULT_MAX_PBKDF2_ITERATIONS = 1_000_000


class KeyCostError(ValueError):
    """The key asks for more KDF work than allowed, or its KDF header cannot be read."""


def _read_string(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(data):
        raise KeyCostError("truncated OpenSSH private key header")
    (size,) = struct.unpack(">I", data[pos : pos + 4])
    pos += 4
    if pos + size > len(data):
        raise KeyCostError("truncated OpenSSH private key header")
    return data[pos : pos + size], pos + size


def openssh_kdf(blob: bytes) -> tuple[bytes, bytes, int | None]:
    """(ciphername, kdfname, bcrypt rounds or None) of an ``openssh-key-v1`` blob."""
    if not blob.startswith(OPENSSH_MAGIC):
        raise KeyCostError("not an OpenSSH private key")
    pos = len(OPENSSH_MAGIC)
    cipher, pos = _read_string(blob, pos)
    kdf, pos = _read_string(blob, pos)
    options, pos = _read_string(blob, pos)
    rounds = None
    if kdf == b"bcrypt":
        _salt, opt_pos = _read_string(options, 0)
        if opt_pos + 4 > len(options):
            raise KeyCostError("truncated bcrypt KDF options")
        (rounds,) = struct.unpack(">I", options[opt_pos : opt_pos + 4])
    return cipher, kdf, rounds


def _largest_int(value: Any, depth: int = 0) -> int:
    """The largest integer in decoded ASN.1 parameters (the iteration count; other integers
    there are small: key sizes, RC2 versions)."""
    if depth > 8:
        raise KeyCostError("PKCS#8 encryption parameters nested too deep")
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, tuple | list):
        return max((_largest_int(v, depth + 1) for v in value), default=0)
    return 0


def pkcs8_iterations(der: bytes) -> int:
    """The iteration count of a PKCS#8 EncryptedPrivateKeyInfo (0 if it is not one)."""
    try:
        decoded, _ = der_decode_partial(der)
    except (ASN1DecodeError, ValueError, IndexError, TypeError):
        raise KeyCostError("unreadable DER private key") from None
    # EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
    if isinstance(decoded, tuple) and len(decoded) == 2 and isinstance(decoded[1], bytes):
        alg = decoded[0]
        if isinstance(alg, tuple) and len(alg) == 2:
            return _largest_int(alg[1])
    return 0


def _pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(PEM name, decoded body) of every ``-----BEGIN <name> PRIVATE KEY-----`` block, found as
    asyncssh finds them (lines split on LF, the footer matched by ``asyncssh.misc.match_base64``,
    RFC 1421 header lines skipped, the rest ``binascii.a2b_base64``). Every block is checked, not
    just the first, so a difference in which one the importer picks cannot slip a key past."""
    blocks: list[tuple[bytes, bytes]] = []
    start = 0
    while start < len(data) and len(blocks) < 16:
        cut = data.find(b"\n", start) + 1
        end = cut if cut else len(data)
        line = data[start:end].rstrip()
        start = end
        if not (line.startswith(b"-----BEGIN ") and line.endswith(b" PRIVATE KEY-----")):
            continue
        name = line[11:-17].strip()
        try:
            body, _ = match_base64(data, end, line)
        except ValueError:
            if name in (b"OPENSSH", b"ENCRYPTED"):
                raise KeyCostError("missing PEM footer") from None
            continue
        rows = body.split(b"\n")
        while rows and b":" in rows[0]:  # RFC 1421 headers (Proc-Type, DEK-Info)
            rows.pop(0)
        try:
            blocks.append((name, binascii.a2b_base64(b"\n".join(rows))))
        except (binascii.Error, ValueError):
            if name in (b"OPENSSH", b"ENCRYPTED"):
                raise KeyCostError("malformed PEM body") from None
    return blocks


def check_kdf_cost(private_key: str | bytes, *, max_rounds: int, max_iterations: int) -> None:
    """Raise KeyCostError when the key's KDF would cost more than the caps (no KDF work here)."""
    data = private_key.encode("ascii", "replace") if isinstance(private_key, str) else private_key
    if data.startswith(b"\x30") and _looks_der(data):
        _check_iterations(pkcs8_iterations(data), max_iterations)
        return
    for name, body in _pem_blocks(data):
        if name == b"OPENSSH":
            cipher, kdf, rounds = openssh_kdf(body)
            if cipher != b"none" and kdf == b"bcrypt" and rounds is not None and rounds > max_rounds:
                raise KeyCostError(
                    f"the key asks for {rounds} bcrypt KDF rounds; at most {max_rounds} are accepted "
                    "(re-encrypt it with ssh-keygen -p -a 16)"
                )
        elif name == b"ENCRYPTED":
            _check_iterations(pkcs8_iterations(body), max_iterations)


def _check_iterations(iterations: int, max_iterations: int) -> None:
    if iterations > max_iterations:
        raise KeyCostError(
            f"the key asks for {iterations} PBKDF2 iterations; at most {max_iterations} are accepted"
        )


def _looks_der(data: bytes) -> bool:
    try:
        der_decode_partial(data)
    except (ASN1DecodeError, ValueError, IndexError, TypeError):
        return False
    return True


# -- running the import off the event loop ------------------------------------------------------

_executor: concurrent.futures.ThreadPoolExecutor | None = None
KEY_WORKERS = 2


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """A pool of its own: key imports never crowd out the default executor (DNS, files)."""
    global _executor
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(KEY_WORKERS, thread_name_prefix="opsc-keycheck")
    return _executor


async def off_loop(fn: Callable[..., T], *args: Any, timeout: float, field: str) -> T:  # noqa: ASYNC109
    """Run ``fn(*args)`` (key parsing) in the key pool, bounded by ``timeout``. A timeout is a
    ValidationError on ``field``; the thread finishes on its own (its work is capped by the
    KDF limits checked first)."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_pool(), fn, *args)
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise ValidationError(
            f"checking the private key took longer than {timeout:g}s", field=field
        ) from None
