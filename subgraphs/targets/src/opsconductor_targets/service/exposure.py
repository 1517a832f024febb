"""What decides where a method's secret goes, and how protected it travels (reviews H2, L5).

Kept apart from ``validation.py`` and ``grants.py`` because both the write path
(``update_method``: moving a method needs its secret again) and the credential resolver (WinRM
rows stored before the L5 rule are refused) ask the same questions.
"""

from __future__ import annotations

from typing import Any

from opsconductor_shared.errors import ValidationError

# legacy's WinRM defaults (catalog.METHOD_CONFIG_DEFAULTS["winrm"] is built from this)
WINRM_DEFAULTS: dict[str, Any] = {
    "timeout": 30,
    "transport": "ntlm",
    "scheme": "http",
    "server_cert_validation": "validate",
}

# Config keys that decide where (or how protected) a method's secret is sent: changing one of
# them, like the host or port, needs the secret again (review H2). Per method type.
ENDPOINT_CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "winrm": ("scheme", "path", "server_cert_validation", "ca_trust_path", "allow_unverified_tls"),
    "rest_api": ("protocol", "verify_ssl"),
    "elasticsearch": ("ssl", "verify_certs"),
    "smtp": ("use_ssl", "use_tls", "encryption", "connection_security"),
    "postgresql": ("ssl_mode",),
    "mysql": ("ssl_mode",),
    "redis": ("ssl",),
    "mongodb": ("ssl",),
    "mssql": ("encrypt", "trust_server_certificate"),
    "sqlite": ("database_path",),
}


def endpoint_changes(
    method_type: str, old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any]
) -> list[str]:
    """The endpoint-defining config keys whose effective value (over ``defaults``, the type's
    legacy defaults) differs between two configs."""
    return [
        key
        for key in ENDPOINT_CONFIG_KEYS.get(method_type, ())
        if {**defaults, **old}.get(key) != {**defaults, **new}.get(key)
    ]


def winrm_insecurity(config: dict[str, Any]) -> tuple[str, str] | None:
    """(config key, reason) when a WinRM config would expose its credential without an explicit
    opt-in (review L5): Basic over plain HTTP sends the password in clear text, and
    ``server_cert_validation: ignore`` lets anyone on the path impersonate the host."""
    cfg = {**WINRM_DEFAULTS, **config}
    if (
        cfg.get("transport") == "basic"
        and cfg.get("scheme") == "http"
        and not cfg.get("allow_insecure_basic")
    ):
        return (
            "transport",
            "basic authentication over http sends the password in clear text: use scheme https or "
            "another transport (ntlm, kerberos), or set allow_insecure_basic: true to accept that",
        )
    if cfg.get("server_cert_validation") == "ignore" and not cfg.get("allow_unverified_tls"):
        return (
            "server_cert_validation",
            "server_cert_validation ignore lets anyone on the path impersonate the host: set "
            "allow_unverified_tls: true to accept that",
        )
    return None


def check_winrm_security(method_type: str, config: dict[str, Any], field_name: str) -> None:
    if method_type == "winrm":
        problem = winrm_insecurity(config)
        if problem is not None:
            raise ValidationError(problem[1], field=f"{field_name}.{problem[0]}")
