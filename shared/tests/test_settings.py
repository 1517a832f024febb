"""ServiceSettings: the service's own prefixed fields and the platform-wide OPSC_* aliases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import InsecureSettings, ServiceSettings, secret_sha256


class ThingsSettings(ServiceSettings):
    """A subgraph's settings, shaped like every subgraph's settings.py."""

    model_config = SettingsConfigDict(env_prefix="OPSC_THINGS_", extra="ignore", populate_by_name=True)

    port: int = 3999
    page_limit: int = 10


PLATFORM_VARS = (
    "OPSC_DATA_DIR",
    "OPSC_REDIS_URL",
    "OPSC_JWKS_URL",
    "OPSC_AUTH_INTERNAL_URL",
    "OPSC_JWT_ISSUER",
    "OPSC_JWT_AUDIENCE",
    "OPSC_SERVICE_SECRET",
    "OPSC_API_KEY_CHECK_SECONDS",
    "OPSC_LOG_LEVEL",
    "OPSC_LOG_JSON",
    "OPSC_MAX_REQUEST_BYTES",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform fixture may have set these for the session; each test starts without them."""
    for name in PLATFORM_VARS:
        monkeypatch.delenv(name, raising=False)
    for name in ("PORT", "PAGE_LIMIT", "DATABASE_URL", "HOST", "REDIS_URL"):
        monkeypatch.delenv(f"OPSC_THINGS_{name}", raising=False)
    for name in list(os.environ):
        if name.startswith("OPSC_SERVICE_SECRET_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_platform() -> None:
    s = ThingsSettings()
    assert s.host == "127.0.0.1"
    assert s.port == 3999
    assert s.redis_url is None
    assert s.database_url is None
    assert s.jwt_issuer == "opsconductor-auth"
    assert s.jwt_audience == "opsconductor"
    assert s.max_request_bytes == 1_000_000
    assert s.base_url == "http://127.0.0.1:3999"
    assert "dev-service-secret" not in repr(s)  # SecretStr never prints


def test_own_fields_use_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_THINGS_PORT", "4100")
    monkeypatch.setenv("OPSC_THINGS_PAGE_LIMIT", "25")
    monkeypatch.setenv("OPSC_THINGS_DATABASE_URL", "postgres://db/things")
    monkeypatch.setenv("OPSC_OTHER_PORT", "1")  # another service's variable is not ours
    s = ThingsSettings()
    assert (s.port, s.page_limit, s.database_url) == (4100, 25, "postgres://db/things")


def test_platform_wide_values_keep_their_opsc_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPSC_REDIS_URL", "redis://cache:6379/3")
    monkeypatch.setenv("OPSC_JWKS_URL", "http://auth:3000/.well-known/jwks.json")
    monkeypatch.setenv("OPSC_AUTH_INTERNAL_URL", "http://auth:3000")
    monkeypatch.setenv("OPSC_JWT_ISSUER", "issuer-x")
    monkeypatch.setenv("OPSC_JWT_AUDIENCE", "aud-x")
    monkeypatch.setenv("OPSC_SERVICE_SECRET_THINGS", "things-own-secret-0123456789")
    monkeypatch.setenv("OPSC_SERVICE_SECRET_SHA256_USERS", "ab" * 32)
    monkeypatch.setenv("OPSC_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("OPSC_LOG_JSON", "false")
    monkeypatch.setenv("OPSC_MAX_REQUEST_BYTES", "2048")
    monkeypatch.setenv("OPSC_DATA_DIR", str(tmp_path))
    for settings in (ThingsSettings(), ServiceSettings()):  # the same for every service
        assert settings.redis_url == "redis://cache:6379/3"
        assert settings.jwks_url == "http://auth:3000/.well-known/jwks.json"
        assert settings.auth_internal_url == "http://auth:3000"
        assert (settings.jwt_issuer, settings.jwt_audience) == ("issuer-x", "aud-x")
        assert settings.service_secrets["things"].get_secret_value() == "things-own-secret-0123456789"
        assert settings.own_service_secret("things") == "things-own-secret-0123456789"
        assert settings.service_secret_hashes == {"users": "ab" * 32}
        assert "things-own-secret" not in repr(settings)
        assert settings.log_level == "DEBUG"
        assert settings.log_json is False
        assert settings.max_request_bytes == 2048
        assert settings.data_dir == tmp_path


def test_platform_wide_value_wins_over_a_prefixed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_THINGS_REDIS_URL", "redis://prefixed:6379/0")
    monkeypatch.setenv("OPSC_REDIS_URL", "redis://platform:6379/0")
    assert ThingsSettings().redis_url == "redis://platform:6379/0"


def test_constructor_arguments_by_field_name(tmp_path: Path) -> None:
    s = ThingsSettings(port=1234, redis_url="redis://x/1", data_dir=tmp_path, max_request_bytes=10)
    assert (s.port, s.redis_url, s.data_dir, s.max_request_bytes) == (1234, "redis://x/1", tmp_path, 10)


def test_resolved_database_url_defaults_to_sqlite_under_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet" / "there"
    s = ThingsSettings(data_dir=data_dir)
    url = s.resolved_database_url("things")
    assert data_dir.is_dir()  # created on demand
    assert url == f"sqlite://{(data_dir / 'things.sqlite3').resolve()}?synchronous=NORMAL"
    assert s.sqlite_path("things") == data_dir / "things.sqlite3"


def test_resolved_database_url_prefers_the_configured_one(tmp_path: Path) -> None:
    s = ThingsSettings(data_dir=tmp_path / "unused", database_url="postgres://postgres@db:5432/things")
    assert s.resolved_database_url("things") == "postgres://postgres@db:5432/things"
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "is not set"),
        ("dev-service-secret-change-me", "published default"),
        ("short", "shorter than 16"),
    ],
    ids=["missing", "old-default", "short"],
)
def test_h1_a_service_refuses_a_missing_or_known_default_secret(
    monkeypatch: pytest.MonkeyPatch, value: str | None, why: str
) -> None:
    """H1: no service starts with the old published default (or no secret of its own)."""
    if value is not None:
        monkeypatch.setenv("OPSC_SERVICE_SECRET_THINGS", value)
    with pytest.raises(InsecureSettings, match=why):
        ThingsSettings().own_service_secret("things")


def test_h1_the_old_shared_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_SERVICE_SECRET", "a-long-enough-shared-secret-0123")
    monkeypatch.setenv("OPSC_SERVICE_SECRET_THINGS", "things-own-secret-0123456789")
    with pytest.raises(InsecureSettings, match="no longer accepted"):
        ThingsSettings().own_service_secret("things")


def test_h1_each_service_has_its_own_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_SERVICE_SECRET_USERS", "users-secret-0123456789abcdef")
    monkeypatch.setenv("OPSC_SERVICE_SECRET_JOBS", "jobs-secret-0123456789abcdef")
    s = ServiceSettings(service_secrets={"jobs": "given-jobs-secret-0123456789"})
    assert s.own_service_secret("users") == "users-secret-0123456789abcdef"
    assert s.own_service_secret("jobs") == "given-jobs-secret-0123456789"  # given beats env
    assert secret_sha256("x") == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
