"""KeyRing: AES-GCM envelope encryption with key ids (secrets at rest)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from opsconductor_shared.crypto import DecryptionError, KeyRing


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing({"k1": os.urandom(32)}, "k1")


def test_round_trip_with_and_without_aad(ring: KeyRing) -> None:
    token = ring.encrypt(b"s3cret", aad=b"row-1")
    assert token.startswith("v1:k1:")
    assert b"s3cret" not in token.encode()
    assert ring.decrypt(token, aad=b"row-1") == b"s3cret"
    assert ring.decrypt(ring.encrypt(b"")) == b""
    assert ring.key_id_of(token) == "k1"


def test_same_plaintext_gives_different_ciphertexts(ring: KeyRing) -> None:
    assert ring.encrypt(b"same") != ring.encrypt(b"same")  # fresh nonce every time


def test_tampered_ciphertext_is_rejected(ring: KeyRing) -> None:
    version, kid, body = ring.encrypt(b"s3cret").split(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 0x01
    with pytest.raises(DecryptionError, match="failed authentication"):
        ring.decrypt(f"{version}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode()}")


def test_ciphertext_bound_to_its_row_by_aad(ring: KeyRing) -> None:
    token = ring.encrypt(b"s3cret", aad=b"row-1")
    with pytest.raises(DecryptionError):
        ring.decrypt(token, aad=b"row-2")
    with pytest.raises(DecryptionError):
        ring.decrypt(token)


def test_unknown_key_id(ring: KeyRing) -> None:
    other = KeyRing({"k2": os.urandom(32)}, "k2")
    with pytest.raises(DecryptionError, match="unknown key id 'k2'"):
        ring.decrypt(other.encrypt(b"x"))


def test_same_kid_different_key_fails_authentication(ring: KeyRing) -> None:
    impostor = KeyRing({"k1": os.urandom(32)}, "k1")
    with pytest.raises(DecryptionError, match="failed authentication"):
        ring.decrypt(impostor.encrypt(b"x"))


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "v1:k1", "v2:k1:AAAA", "v1:k1:abc", "v1:k1:", "v1:k1:!!!!"],
    ids=["empty", "no-separators", "two-parts", "version", "bad-padding", "empty-body", "not-base64"],
)
def test_malformed_ciphertext_raises_decryption_error(ring: KeyRing, token: str) -> None:
    with pytest.raises(DecryptionError):
        ring.decrypt(token)


def test_rotation_new_key_first_decrypts_old_and_encrypts_with_new() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    old = KeyRing.parse(f"old:{b64(old_key)}")
    legacy = old.encrypt(b"before rotation", aad=b"row")

    rotated = KeyRing.parse(f"new:{b64(new_key)}, old:{b64(old_key)}")
    assert rotated.active == "new"
    assert rotated.key_ids == ["new", "old"]
    assert rotated.decrypt(legacy, aad=b"row") == b"before rotation"
    fresh = rotated.encrypt(b"after rotation", aad=b"row")
    assert rotated.key_id_of(fresh) == "new"
    # Once the old key is dropped, only re-encrypted values still decrypt.
    new_only = KeyRing.parse(f"new:{b64(new_key)}")
    assert new_only.decrypt(fresh, aad=b"row") == b"after rotation"
    with pytest.raises(DecryptionError, match="unknown key id 'old'"):
        new_only.decrypt(legacy, aad=b"row")


def test_parse_accepts_unpadded_base64() -> None:
    key = os.urandom(32)
    ring = KeyRing.parse(f"k1:{b64(key).rstrip('=')}")
    assert ring.decrypt(ring.encrypt(b"x")) == b"x"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty key ring"),
        (" , ,", "empty key ring"),
        ("k1:" + b64(os.urandom(16)), "must be 32 bytes"),
        ("k1", "must be 32 bytes"),
        ("k1:not base64!", None),
    ],
    ids=["empty", "only-commas", "short-key", "no-key", "bad-base64"],
)
def test_parse_errors(spec: str, message: str | None) -> None:
    with pytest.raises(ValueError, match=message):
        KeyRing.parse(spec)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="not in the key ring"):
        KeyRing({"k1": os.urandom(32)}, "k2")
    with pytest.raises(ValueError, match="may not contain ':'"):
        KeyRing({"a:b": os.urandom(32)}, "a:b")


def test_load_or_create_makes_a_private_file_and_reloads_it(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "service.keys"
    first = KeyRing.load_or_create(None, path)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = first.encrypt(b"persisted", aad=b"row")

    again = KeyRing.load_or_create(None, path)
    assert again.key_ids == first.key_ids
    assert again.decrypt(token, aad=b"row") == b"persisted"


def test_load_or_create_prefers_the_configured_spec(tmp_path: Path) -> None:
    path = tmp_path / "service.keys"
    ring = KeyRing.load_or_create(f"cfg:{b64(os.urandom(32))}", path)
    assert ring.active == "cfg"
    assert not path.exists()
