"""Password hashing: argon2id (current), legacy bcrypt (imported from the monolith), the password
policy, and a login's password check. argon2 costs ~0.2 s of CPU: it always runs in a thread, and
never inside a transaction (see :func:`check_password` and ``passwords.prepare_password``)."""

from __future__ import annotations

import asyncio
import functools
import secrets
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from opsconductor_auth.models import Credential
from opsconductor_auth.settings import Settings
from opsconductor_shared.errors import ValidationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

LEGACY_PREFIXES = ("$2a$", "$2b$", "$2y$")


# A dummy hash so a login for an unknown user costs the same as for a known one.
@functools.cache
def _dummy_hash() -> str:
    """Made on first use, not at import (argon2 costs ~0.2 s of CPU)."""
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def is_legacy_hash(hashed: str) -> bool:
    """A bcrypt hash as the monolith stored them (passlib ``CryptContext(["bcrypt"])``)."""
    return hashed.startswith(LEGACY_PREFIXES)


def needs_rehash(hashed: str) -> bool:
    """Legacy bcrypt, or argon2 with older parameters: replaced at the next successful login."""
    return is_legacy_hash(hashed) or _hasher.check_needs_rehash(hashed)


def check_importable_hash(hashed: str) -> str:
    """The hash, if login can verify it: bcrypt (``$2a$ $2b$ $2y$``) or argon2id; else ValidationError."""
    hashed = hashed.strip()
    if is_legacy_hash(hashed):
        if len(hashed) != 60:
            raise ValidationError("a bcrypt hash is 60 characters long", field="passwordHash")
        return hashed
    if hashed.startswith("$argon2id$"):
        return hashed
    raise ValidationError("only bcrypt ($2b$) and argon2id hashes can be imported", field="passwordHash")


def _verify(hashed: str, password: str) -> bool:
    if is_legacy_hash(hashed):
        # passlib silently used the first 72 bytes (bcrypt's limit); bcrypt 5 refuses longer input.
        try:
            return bcrypt.checkpw(password.encode()[:72], hashed.encode())
        except ValueError:
            return False
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_async(hashed: str, password: str) -> bool:
    """argon2 takes ~0.2 s of CPU: off the event loop, which every service in the process shares."""
    return await asyncio.to_thread(_verify, hashed, password)


async def hash_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    min_classes: int = 2
    history: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        return cls(settings.password_min_length, settings.password_min_classes, settings.password_history)

    def check(self, password: str) -> None:
        if len(password) < self.min_length:
            raise ValidationError(f"password must be at least {self.min_length} characters", field="password")
        classes = sum(
            any(test(c) for c in password)
            for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
        )
        if classes < self.min_classes:
            raise ValidationError(
                f"password must mix at least {self.min_classes} of: lower case, upper case, digits, symbols",
                field="password",
            )


@dataclass(frozen=True)
class PasswordCheck:
    """A login's password verification, done before its transaction (see :func:`check_password`)."""

    hash_seen: str | None  # the stored hash it was verified against (None: no such user)
    ok: bool
    new_hash: str | None = None  # argon2id rehash of a legacy/outdated hash, made outside the transaction


async def check_password(*, username: str, password: str) -> PasswordCheck:
    """A login's first step, before (outside) its transaction: argon2 runs in a thread while no
    transaction, row lock or (SQLite) connection lock is held, so one slow login never stalls
    auth's other database work. Every login verifies exactly one hash, whatever follows
    (unknown name: a dummy hash; locked account: its own hash), so the answer's timing tells
    nothing about the name."""
    cred = await Credential.get_or_none(username=username)
    hashed = cred.password_hash if cred is not None else None
    ok = await verify_async(hashed or _dummy_hash(), password) and hashed is not None
    new_hash = None
    if ok and hashed is not None and needs_rehash(hashed):
        # Legacy bcrypt (imported from the monolith) or old argon2 parameters: rehash now,
        # while the clear password is at hand; the login's commit stores it.
        new_hash = await hash_async(password)
    return PasswordCheck(hashed, ok, new_hash)
