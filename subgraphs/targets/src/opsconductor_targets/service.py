"""Targets domain logic: validation, creation, reads, the credential vault and connection grants.

No strawberry here. Write functions expect the caller (the resolver) to own the transaction.
Secrets (passwords, private keys, passphrases) are validated, encrypted and stored here; they
leave the service only through :meth:`TargetService.resolve`, which the engine reaches with a
connection grant at connect time. They never go into events, logs or GraphQL types.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncssh
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as MetricCounter
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from opsconductor_shared.crypto import DecryptionError, KeyRing
from opsconductor_shared.errors import DomainError, NotFoundError, ValidationError
from opsconductor_shared.events import EventEnvelope, new_uuid7, record_event
from opsconductor_shared.logging import get_logger
from opsconductor_targets import keyparse
from opsconductor_targets.exposure import (
    WINRM_DEFAULTS,
    check_winrm_security,
    endpoint_changes,
    winrm_insecurity,
)
from opsconductor_targets.lookups import searchable, storable
from opsconductor_targets.models import (
    CommunicationMethod,
    Counter,
    Credential,
    DeviceType,
    DeviceTypeCategory,
    GrantKey,
    KnownHostKey,
    Outbox,
    Target,
    TargetTag,
)
from opsconductor_targets.netpolicy import AddressDenied, NetPolicy
from opsconductor_targets.queries import (
    GrantMethod,
    GrantTarget,
    active_credential,
    active_target_ids,
    best_method,
    get_targets,
    grant_method,
    grant_targets,
)
from opsconductor_targets.settings import Settings

log = get_logger("opsconductor.targets")

# method type -> default port (legacy getDefaultCommunicationMethodConfig)
METHOD_PORTS: dict[str, int] = {
    "ssh": 22,
    "winrm": 5985,
    "snmp": 161,
    "telnet": 23,
    "rest_api": 80,
    "smtp": 587,
    "mysql": 3306,
    "postgresql": 5432,
    "mssql": 1433,
    "oracle": 1521,
    "sqlite": 0,
    "mongodb": 27017,
    "redis": 6379,
    "elasticsearch": 9200,
}
METHOD_TYPES = tuple(METHOD_PORTS)
# Non-secret defaults merged under the caller's config (legacy getDefaultCommunicationMethodConfig
# minus host/port/secrets; legacy winrm said transport "plaintext" but always spoke NTLM).
METHOD_CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "ssh": {"timeout": 30, "key_algorithm": "rsa"},
    "winrm": dict(WINRM_DEFAULTS),
    "snmp": {"timeout": 10, "version": "2c", "retries": 3},
    "telnet": {"timeout": 30, "encoding": "utf-8", "newline": "CRLF"},
    "rest_api": {"timeout": 30, "protocol": "http", "base_path": "/", "verify_ssl": True},
    "smtp": {"timeout": 30, "use_tls": True, "use_ssl": False, "auth_required": True},
    "mysql": {"timeout": 30, "charset": "utf8mb4", "connection_pool_size": 5},
    "postgresql": {"timeout": 30, "database": "postgres", "ssl_mode": "prefer", "connection_pool_size": 5},
    "mssql": {
        "timeout": 30,
        "database": "master",
        "driver": "ODBC Driver 17 for SQL Server",
        "connection_pool_size": 5,
    },
    "oracle": {"timeout": 30, "connection_pool_size": 5},
    "sqlite": {"timeout": 30, "journal_mode": "WAL", "synchronous": "NORMAL"},
    "mongodb": {
        "timeout": 30,
        "database": "admin",
        "auth_source": "admin",
        "ssl": False,
        "connection_pool_size": 10,
    },
    "redis": {"timeout": 30, "database": 0, "ssl": False, "connection_pool_size": 10, "max_connections": 50},
    "elasticsearch": {"timeout": 30, "ssl": False, "verify_certs": True, "connection_pool_size": 10},
}
# Typed config keys per method: ("int"|"num", lo, hi) | ("bool",) | ("str", maxlen) | ("enum", choices).
_TIMEOUT = ("num", 1, 3600)
_POOL = ("int", 1, 1000)
_STR = ("str", 255)
WINRM_TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic")
METHOD_CONFIG_SPEC: dict[str, dict[str, tuple[Any, ...]]] = {
    "ssh": {"timeout": _TIMEOUT, "key_algorithm": ("enum", ("rsa", "ed25519", "ecdsa", "dsa"))},
    "winrm": {
        "timeout": _TIMEOUT,
        "transport": ("enum", WINRM_TRANSPORTS),
        "scheme": ("enum", ("http", "https")),
        "server_cert_validation": ("enum", ("validate", "ignore")),
        "ca_trust_path": _STR,
        "path": _STR,
        # explicit opt-ins for what leaks the credential to a listener (review L5)
        "allow_insecure_basic": ("bool",),
        "allow_unverified_tls": ("bool",),
    },
    "snmp": {
        "timeout": _TIMEOUT,
        "version": ("enum", ("1", "2c", "3")),
        "retries": ("int", 0, 10),
        "security_level": ("enum", ("noAuthNoPriv", "authNoPriv", "authPriv")),
        "auth_protocol": ("enum", ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")),
        "privacy_protocol": ("enum", ("DES", "3DES", "AES", "AES192", "AES256")),
        "context_name": _STR,
    },
    "telnet": {
        "timeout": _TIMEOUT,
        "encoding": ("str", 30),
        "newline": ("enum", ("CRLF", "LF", "CR")),
        "login_prompt": _STR,
        "shell_prompt": _STR,
    },
    "rest_api": {
        "timeout": _TIMEOUT,
        "protocol": ("enum", ("http", "https")),
        "base_path": _STR,
        "verify_ssl": ("bool",),
        "health_path": _STR,
        "auth_header": ("str", 100),
    },
    "smtp": {
        "timeout": _TIMEOUT,
        "use_tls": ("bool",),
        "use_ssl": ("bool",),
        "auth_required": ("bool",),
        "encryption": ("enum", ("starttls", "ssl", "none")),
        "server_type": ("enum", ("smtp", "exchange", "gmail", "outlook")),
        "domain": _STR,
        "test_recipient": _STR,
        "connection_security": ("enum", ("auto", "ssl", "starttls", "none")),
    },
    "mysql": {
        "timeout": _TIMEOUT,
        "database": _STR,
        "charset": ("str", 30),
        "ssl_mode": ("enum", ("disabled", "preferred", "required", "verify_ca", "verify_identity")),
        "connection_pool_size": _POOL,
    },
    "postgresql": {
        "timeout": _TIMEOUT,
        "database": _STR,
        "ssl_mode": ("enum", ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")),
        "connection_pool_size": _POOL,
    },
    "mssql": {
        "timeout": _TIMEOUT,
        "database": _STR,
        "driver": _STR,
        "encrypt": ("bool",),
        "trust_server_certificate": ("bool",),
        "connection_pool_size": _POOL,
    },
    "oracle": {"timeout": _TIMEOUT, "service_name": _STR, "sid": ("str", 30), "connection_pool_size": _POOL},
    "sqlite": {
        "timeout": _TIMEOUT,
        "database_path": _STR,
        "journal_mode": ("enum", ("DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF")),
        "synchronous": ("enum", ("OFF", "NORMAL", "FULL", "EXTRA")),
    },
    "mongodb": {
        "timeout": _TIMEOUT,
        "database": _STR,
        "auth_source": _STR,
        "replica_set": _STR,
        "ssl": ("bool",),
        "connection_pool_size": _POOL,
    },
    "redis": {
        "timeout": _TIMEOUT,
        "database": ("int", 0, 15),
        "ssl": ("bool",),
        "connection_pool_size": _POOL,
        "max_connections": ("int", 1, 10000),
    },
    "elasticsearch": {
        "timeout": _TIMEOUT,
        "ssl": ("bool",),
        "verify_certs": ("bool",),
        "index_prefix": ("str", 100),
        "connection_pool_size": _POOL,
    },
}
CREDENTIAL_TYPES = ("password", "ssh_key", "snmp_community", "api_key", "api_token")
# which credential types a method accepts (methods not listed accept any type)
METHOD_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "ssh": ("password", "ssh_key"),
    "winrm": ("password",),
    "snmp": ("snmp_community", "password"),
}
ENVIRONMENTS = ("production", "staging", "development", "testing")
STATUSES = ("active", "inactive", "maintenance")
HEALTH_STATUSES = ("unknown", "healthy", "warning", "critical")
# config keys that look like secrets: those belong in the credential, never in config
_SECRET_KEY_RE = re.compile(
    r"pass(word|phrase)?|secret|private_?key|token|community|api_?key|credential", re.IGNORECASE
)
_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
MAX_TAGS = 50
MAX_FILTER_TAGS = 50  # tags in one TargetFilter: each is a subquery
MAX_METHODS = 20
SECRET_PLACEHOLDER = "[Current Password - Hidden for Security]"  # noqa: S105 - legacy UI: "unchanged"


# ---- device-type catalogue (seeded; custom rows via CRUD) --------------------------------------

# (value, label, icon, color); sort order = position
DEVICE_CATEGORIES: tuple[tuple[str, str, str, str], ...] = (
    ("operating_system", "Operating systems", "computer", "#1976d2"),
    ("network_infrastructure", "Network", "router", "#388e3c"),
    ("virtualization", "Virtualization", "layers", "#7b1fa2"),
    ("cloud", "Cloud", "cloud", "#0288d1"),
    ("containers", "Containers", "widgets", "#00796b"),
    ("storage_systems", "Storage", "storage", "#5d4037"),
    ("database_systems", "Databases", "dns", "#f57c00"),
    ("application_servers", "Application servers", "apps", "#512da8"),
    ("communication_email", "Communication", "email", "#c2185b"),
    ("infrastructure_services", "Infrastructure services", "settings", "#455a64"),
    ("power_environmental", "Power and environment", "power", "#fbc02d"),
    ("security_appliances", "Security", "security", "#d32f2f"),
    ("iot_embedded", "IoT and embedded", "memory", "#689f38"),
    ("generic_unknown", "Generic", "devices_other", "#757575"),
)
_OS, _NET, _VIRT, _CLOUD, _CT, _STO, _DB, _APP, _COM, _INFRA, _PWR, _SEC, _IOT, _GEN = (
    c[0] for c in DEVICE_CATEGORIES
)
# (value, label, category, suggested methods). The first 11 are legacy's registry values (the only
# ones its create endpoint accepted); the rest are the values its UI offered.
DEVICE_TYPES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("linux", "Linux", _OS, ("ssh",)),
    ("windows", "Windows", _OS, ("winrm",)),
    ("cisco_switch", "Cisco switch", _NET, ("ssh", "snmp", "telnet")),
    ("cisco_router", "Cisco router", _NET, ("ssh", "snmp", "telnet")),
    ("smtp_server", "SMTP server", _COM, ("smtp",)),
    ("exchange", "Microsoft Exchange", _COM, ("smtp", "winrm")),
    ("mysql", "MySQL", _DB, ("mysql",)),
    ("postgresql", "PostgreSQL", _DB, ("postgresql",)),
    ("generic_device", "Generic device", _GEN, ("ssh", "snmp")),
    ("email", "Email service", _COM, ("smtp",)),
    ("database", "Database", _DB, ("postgresql", "mysql", "mssql", "oracle")),
    ("ubuntu", "Ubuntu", _OS, ("ssh",)),
    ("debian", "Debian", _OS, ("ssh",)),
    ("rhel", "Red Hat Enterprise Linux", _OS, ("ssh",)),
    ("centos", "CentOS", _OS, ("ssh",)),
    ("rocky", "Rocky Linux", _OS, ("ssh",)),
    ("suse", "SUSE Linux", _OS, ("ssh",)),
    ("windows_server", "Windows Server", _OS, ("winrm",)),
    ("windows_desktop", "Windows desktop", _OS, ("winrm",)),
    ("macos", "macOS", _OS, ("ssh",)),
    ("freebsd", "FreeBSD", _OS, ("ssh",)),
    ("solaris", "Solaris", _OS, ("ssh",)),
    ("aix", "AIX", _OS, ("ssh",)),
    ("juniper_router", "Juniper router", _NET, ("ssh", "snmp")),
    ("juniper_switch", "Juniper switch", _NET, ("ssh", "snmp")),
    ("arista_switch", "Arista switch", _NET, ("ssh", "snmp")),
    ("hp_switch", "HPE/Aruba switch", _NET, ("ssh", "snmp")),
    ("mikrotik", "MikroTik", _NET, ("ssh", "snmp")),
    ("load_balancer", "Load balancer", _NET, ("ssh", "rest_api", "snmp")),
    ("wireless_controller", "Wireless controller", _NET, ("ssh", "snmp")),
    ("access_point", "Wireless access point", _NET, ("snmp",)),
    ("vmware_esxi", "VMware ESXi", _VIRT, ("ssh", "rest_api")),
    ("vmware_vcenter", "VMware vCenter", _VIRT, ("rest_api",)),
    ("hyper_v", "Hyper-V", _VIRT, ("winrm",)),
    ("proxmox", "Proxmox VE", _VIRT, ("ssh", "rest_api")),
    ("kvm", "KVM host", _VIRT, ("ssh",)),
    ("xen", "Xen/XCP-ng", _VIRT, ("ssh",)),
    ("aws_ec2", "AWS EC2 instance", _CLOUD, ("ssh", "winrm")),
    ("azure_vm", "Azure VM", _CLOUD, ("ssh", "winrm")),
    ("gcp_vm", "Google Cloud VM", _CLOUD, ("ssh", "winrm")),
    ("docker_host", "Docker host", _CT, ("ssh", "rest_api")),
    ("kubernetes_node", "Kubernetes node", _CT, ("ssh",)),
    ("kubernetes_api", "Kubernetes API", _CT, ("rest_api",)),
    ("nas", "NAS", _STO, ("ssh", "snmp")),
    ("san", "SAN array", _STO, ("ssh", "snmp", "rest_api")),
    ("netapp", "NetApp", _STO, ("ssh", "rest_api")),
    ("synology", "Synology", _STO, ("ssh", "snmp")),
    ("mssql", "Microsoft SQL Server", _DB, ("mssql",)),
    ("oracle", "Oracle Database", _DB, ("oracle",)),
    ("mongodb", "MongoDB", _DB, ("mongodb",)),
    ("redis", "Redis", _DB, ("redis",)),
    ("elasticsearch", "Elasticsearch", _DB, ("elasticsearch",)),
    ("mariadb", "MariaDB", _DB, ("mysql",)),
    ("sqlite", "SQLite", _DB, ("sqlite",)),
    ("apache", "Apache HTTP Server", _APP, ("ssh", "rest_api")),
    ("nginx", "nginx", _APP, ("ssh", "rest_api")),
    ("iis", "IIS", _APP, ("winrm", "rest_api")),
    ("tomcat", "Tomcat", _APP, ("ssh", "rest_api")),
    ("jboss", "JBoss/WildFly", _APP, ("ssh", "rest_api")),
    ("nodejs", "Node.js service", _APP, ("ssh", "rest_api")),
    ("postfix", "Postfix", _COM, ("smtp", "ssh")),
    ("sendmail", "Sendmail", _COM, ("smtp", "ssh")),
    ("voip_pbx", "VoIP PBX", _COM, ("ssh", "snmp")),
    ("dns_server", "DNS server", _INFRA, ("ssh", "winrm")),
    ("dhcp_server", "DHCP server", _INFRA, ("ssh", "winrm")),
    ("domain_controller", "Active Directory domain controller", _INFRA, ("winrm",)),
    ("ldap_server", "LDAP server", _INFRA, ("ssh",)),
    ("ntp_server", "NTP server", _INFRA, ("ssh", "snmp")),
    ("ups", "UPS", _PWR, ("snmp",)),
    ("pdu", "PDU", _PWR, ("snmp",)),
    ("environmental_sensor", "Environmental sensor", _PWR, ("snmp",)),
    ("firewall", "Firewall", _SEC, ("ssh", "snmp", "rest_api")),
    ("palo_alto", "Palo Alto firewall", _SEC, ("ssh", "rest_api")),
    ("fortigate", "FortiGate", _SEC, ("ssh", "rest_api")),
    ("pfsense", "pfSense", _SEC, ("ssh", "rest_api")),
    ("vpn_gateway", "VPN gateway", _SEC, ("ssh", "snmp")),
    ("ids_ips", "IDS/IPS", _SEC, ("ssh", "snmp")),
    ("raspberry_pi", "Raspberry Pi", _IOT, ("ssh",)),
    ("iot_device", "IoT device", _IOT, ("snmp", "rest_api")),
    ("plc", "PLC", _IOT, ("telnet", "snmp")),
    ("ip_camera", "IP camera", _IOT, ("rest_api", "snmp")),
    ("printer", "Printer", _GEN, ("snmp",)),
    ("unknown", "Unknown", _GEN, ()),
)


def now() -> datetime:
    return datetime.now(UTC)


# ---- inputs (plain dataclasses; the GraphQL layer fills them) --------------------------------


@dataclass
class NewCredential:
    type: str
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)


@dataclass
class NewMethod:
    type: str
    host: str
    port: int | None = None
    is_primary: bool | None = None
    priority: int | None = None
    config: dict[str, Any] | None = None
    credential: NewCredential | None = None


@dataclass
class NewTarget:
    name: str
    os_type: str
    methods: list[NewMethod]
    environment: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    status: str | None = None
    location: str | None = None
    data_center: str | None = None
    region: str | None = None
    serial: str | None = None  # importers only: keep a legacy serial
    uuid: str | None = None  # importers only: keep a legacy target_uuid


@dataclass
class TargetQuery:
    search: str | None = None
    os_type: str | None = None
    environment: str | None = None
    status: str | None = None
    tags: list[str] | None = None
    health: str | None = None
    method_type: str | None = None
    location: str | None = None
    sort_field: str = "id"
    descending: bool = False


SORT_FIELDS = (
    "id",
    "name",
    "serial",
    "created_at",
    "updated_at",
    "os_type",
    "environment",
    "status",
    "health_status",
)


@dataclass
class TargetPatch:
    """Basic fields to change; None means unchanged (empty string clears an optional text)."""

    name: str | None = None
    os_type: str | None = None
    environment: str | None = None
    status: str | None = None
    description: str | None = None
    location: str | None = None
    data_center: str | None = None
    region: str | None = None
    tags: list[str] | None = None
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None


@dataclass
class MethodPatch:
    host: str | None = None
    port: int | None = None
    config: dict[str, Any] | None = None
    priority: int | None = None
    is_active: bool | None = None
    credential: NewCredential | None = None


@dataclass
class DeviceTypeData:
    value: str | None = None
    label: str | None = None
    category: str | None = None
    description: str | None = None
    communication_methods: list[str] | None = None


class HostAlreadyInUse(DomainError):
    def __init__(self, host: str, target_id: str) -> None:
        super().__init__(f"host {host!r} is already used by another active target")
        self.host = host
        self.target_id = target_id


class LastMethod(DomainError):
    """Removing (or deactivating) this method would leave the target without a way to reach it."""


class HostKeyProblem(DomainError):
    """The host key cannot be fetched, or does not match what the operator confirmed."""


class GrantRejected(DomainError):
    """A connection grant is malformed, forged, expired, or does not cover the target."""


# ---- validation (pure: unit-tested without a database) ----------------------------------------


def normalize_host(value: str, field_name: str = "host") -> str:
    """A hostname (RFC 1123 labels, lower-cased) or an IP address (normalized); else ValidationError."""
    if not isinstance(value, str):
        raise ValidationError("host must be a string", field=field_name)
    host = value.strip()
    if not host:
        raise ValidationError("host is required", field=field_name)
    if host != value or any(c.isspace() for c in host):
        raise ValidationError("host may not contain spaces", field=field_name)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253:
        raise ValidationError("host is longer than 253 characters", field=field_name)
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if not name or not all(_LABEL_RE.match(label) for label in labels):
        raise ValidationError(f"{value!r} is not a valid hostname or IP address", field=field_name)
    if labels[-1].isdigit():  # 999.1.1.1, 10.0.0: looks like an IP but is not one
        raise ValidationError(f"{value!r} is not a valid hostname or IP address", field=field_name)
    return name


def validate_port(port: int | None, method_type: str, field_name: str = "port") -> int:
    if port is None:
        return METHOD_PORTS[method_type]
    low = 0 if method_type == "sqlite" else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise ValidationError(f"port must be between {low} and 65535", field=field_name)
    return port


def _validate_sqlite_path(value: str, field_name: str) -> str:
    path = value.strip()
    if not path or len(path) > 255 or any(ord(c) < 32 for c in path):
        raise ValidationError(
            "sqlite methods need a database file path (1-255 characters) as host", field=field_name
        )
    return path


def _validate_config(config: dict[str, Any] | None, method_type: str, field_name: str) -> dict[str, Any]:
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValidationError("config must be a JSON object", field=field_name)

    def check(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if _SECRET_KEY_RE.search(str(key)):
                    raise ValidationError(
                        f"config key {path}{key!r} looks like a secret: put secrets in the "
                        "credential, config is not encrypted",
                        field=field_name,
                    )
                check(item, f"{path}{key}.")
        elif isinstance(value, list):
            for item in value:
                check(item, path)

    check(config, "")
    spec = METHOD_CONFIG_SPEC[method_type]
    merged = dict(METHOD_CONFIG_DEFAULTS.get(method_type, {}))
    for key, value in config.items():
        if key in ("host", "port"):
            continue  # legacy clients repeat them in config; the method's own fields win
        rule = spec.get(key)
        if rule is None:
            raise ValidationError(
                f"unknown {method_type} config key {key!r} (known: {', '.join(sorted(spec))})",
                field=f"{field_name}.{key}",
            )
        merged[key] = _check_config_value(value, rule, f"{field_name}.{key}")
    return merged


def _check_config_value(value: Any, rule: tuple[Any, ...], field_name: str) -> Any:
    kind = rule[0]
    if value is None:
        raise ValidationError("config values may not be null", field=field_name)
    if kind in ("int", "num"):
        ok_type = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not rule[1] <= value <= rule[2]:
            what = "an integer" if kind == "int" else "a number"
            raise ValidationError(f"must be {what} between {rule[1]} and {rule[2]}", field=field_name)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValidationError("must be true or false", field=field_name)
        return value
    if kind == "enum":
        choices = rule[1]
        if not isinstance(value, str) or value not in choices:
            raise ValidationError(f"must be one of {', '.join(choices)}", field=field_name)
        return value
    if not isinstance(value, str) or len(value) > rule[1] or any(ord(c) < 32 for c in value):
        raise ValidationError(f"must be a string of at most {rule[1]} characters", field=field_name)
    return value


@dataclass(frozen=True)
class KeyLimits:
    """Caps on the KDF work an encrypted private key may ask for (settings ssh_key_max_*)."""

    max_rounds: int = keyparse.DEFAULT_MAX_KDF_ROUNDS
    max_iterations: int = keyparse.DEFAULT_MAX_PBKDF2_ITERATIONS


def _check_private_key(private_key: str, passphrase: str | None, prefix: str, limits: KeyLimits) -> None:
    """Import the key (CPU work: call it off the event loop, see TargetService.plan_method)."""
    try:  # refuse attacker-sized KDF work before any of it is done (review H8)
        keyparse.check_kdf_cost(
            private_key, max_rounds=limits.max_rounds, max_iterations=limits.max_iterations
        )
    except keyparse.KeyCostError as exc:
        raise ValidationError(f"privateKey refused: {exc}", field=f"{prefix}.privateKey") from None
    try:
        asyncssh.import_private_key(private_key, passphrase or None)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        text = str(exc)
        # asyncssh's messages describe the failure, never the key material.
        if "assphrase" in text or "decrypt" in text.lower() or isinstance(exc, asyncssh.KeyEncryptionError):
            raise ValidationError(
                f"the private key could not be decrypted: {text}", field=f"{prefix}.passphrase"
            ) from None
        raise ValidationError(
            f"privateKey is not a valid private key: {text}", field=f"{prefix}.privateKey"
        ) from None
    except Exception:  # any parser failure on hostile input is a validation failure
        raise ValidationError("privateKey is not a valid private key", field=f"{prefix}.privateKey") from None


def validate_credential(
    cred: NewCredential, method_type: str, prefix: str, limits: KeyLimits = KeyLimits()
) -> dict[str, Any]:
    """Check one credential; returns the secret JSON to encrypt."""
    if cred.type not in CREDENTIAL_TYPES:
        raise ValidationError(f"unknown credential type {cred.type!r}", field=f"{prefix}.type")
    allowed = METHOD_CREDENTIALS.get(method_type)
    if allowed is not None and cred.type not in allowed:
        raise ValidationError(
            f"a {method_type} method needs a credential of type {' or '.join(allowed)}",
            field=f"{prefix}.type",
        )
    username = (cred.username or "").strip()
    if len(username) > 255:
        raise ValidationError("username is longer than 255 characters", field=f"{prefix}.username")
    if not username and cred.type in ("password", "ssh_key"):
        raise ValidationError("username is required", field=f"{prefix}.username")
    if cred.type == "ssh_key":
        if not cred.private_key or not cred.private_key.strip():
            raise ValidationError("an ssh_key credential needs privateKey", field=f"{prefix}.privateKey")
        _check_private_key(cred.private_key, cred.passphrase, prefix, limits)
        return {"password": None, "privateKey": cred.private_key, "passphrase": cred.passphrase or None}
    if not cred.password:
        what = {
            "password": "password",
            "snmp_community": "the community string",
            "api_key": "the API key",
            "api_token": "the token",
        }[cred.type]
        raise ValidationError(
            f"a {cred.type} credential needs {what} in password", field=f"{prefix}.password"
        )
    return {"password": cred.password, "privateKey": None, "passphrase": None}


@dataclass
class PlannedMethod:
    type: str
    host: str
    port: int
    is_primary: bool
    priority: int
    config: dict[str, Any]
    credential: NewCredential | None
    secret: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class PlannedTarget:
    name: str
    os_type: str
    environment: str
    description: str | None
    tags: list[str]
    status: str
    methods: list[PlannedMethod]
    location: str | None = None
    data_center: str | None = None
    region: str | None = None


def _clean_name(value: str | None) -> str:
    name = (value or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("name must be 1-100 characters", field="name")
    return name


def _clean_os_type(value: str | None, field_name: str = "osType") -> str:
    os_type = (value or "").strip().lower()
    if not 1 <= len(os_type) <= 50 or not re.fullmatch(r"[a-z0-9_.-]+", os_type):
        raise ValidationError("osType must be 1-50 characters of a-z, 0-9, '_', '-', '.'", field=field_name)
    return os_type


def _clean_environment(value: str | None) -> str:
    environment = (value or "development").strip().lower()
    if environment not in ENVIRONMENTS:
        raise ValidationError(f"environment must be one of {', '.join(ENVIRONMENTS)}", field="environment")
    return environment


def _clean_status(value: str | None) -> str:
    status = (value or "active").strip().lower()
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
    return status


def _clean_description(value: str | None) -> str | None:
    description = value.strip() if value else None
    if description and len(description) > 10_000:
        raise ValidationError("description is longer than 10000 characters", field="description")
    return description or None


def _clean_place(value: str | None, field_name: str) -> str | None:
    text = value.strip() if value else None
    if text and (len(text) > 100 or any(ord(c) < 32 for c in text)):
        raise ValidationError(f"{field_name} must be at most 100 printable characters", field=field_name)
    return text or None


def _clean_tags(values: Sequence[str] | None) -> list[str]:
    tags: list[str] = []
    for tag in values or []:
        clean = tag.strip()
        if not 1 <= len(clean) <= 50:
            raise ValidationError("tags must be 1-50 characters each", field="tags")
        if clean.lower() not in (t.lower() for t in tags):
            tags.append(clean)
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags", field="tags")
    return tags


def validate_method(
    m: NewMethod, prefix: str, default_priority: int, limits: KeyLimits = KeyLimits()
) -> PlannedMethod:
    """One method: type, host, port, priority, typed config, credential (is_primary decided by caller)."""
    if m.type not in METHOD_PORTS:
        raise ValidationError(f"unknown method type {m.type!r}", field=f"{prefix}.type")
    if m.type == "sqlite":
        host = _validate_sqlite_path(m.host or "", f"{prefix}.host")
    else:
        host = normalize_host(m.host, f"{prefix}.host")
    port = validate_port(m.port, m.type, f"{prefix}.port")
    priority = m.priority if m.priority is not None else default_priority
    if not 1 <= priority <= 1000:
        raise ValidationError("priority must be between 1 and 1000", field=f"{prefix}.priority")
    config = _validate_config(m.config, m.type, f"{prefix}.config")
    if m.type == "ssh" and m.credential is None:
        raise ValidationError(
            "an ssh method needs a credential (password or ssh_key)", field=f"{prefix}.credential"
        )
    check_winrm_security(m.type, config, f"{prefix}.config")
    secret = (
        validate_credential(m.credential, m.type, f"{prefix}.credential", limits) if m.credential else None
    )
    return PlannedMethod(
        type=m.type,
        host=host,
        port=port,
        is_primary=bool(m.is_primary),
        priority=priority,
        config=config,
        credential=m.credential,
        secret=secret,
    )


def validate_new_target(new: NewTarget, limits: KeyLimits = KeyLimits()) -> PlannedTarget:
    """Every rule that needs no database; raises ValidationError naming the offending input."""
    name = _clean_name(new.name)
    os_type = _clean_os_type(new.os_type)
    environment = _clean_environment(new.environment)
    status = _clean_status(new.status)
    description = _clean_description(new.description)
    tags = _clean_tags(new.tags)
    places = {f: _clean_place(getattr(new, f), f) for f in ("location", "data_center", "region")}
    if not new.methods:
        raise ValidationError("a target needs at least one communication method", field="methods")
    if len(new.methods) > MAX_METHODS:
        raise ValidationError(f"at most {MAX_METHODS} communication methods", field="methods")
    flagged = [i for i, m in enumerate(new.methods) if m.is_primary]
    if len(flagged) > 1:
        raise ValidationError("exactly one communication method may be primary", field="methods")
    primary = flagged[0] if flagged else 0
    methods: list[PlannedMethod] = []
    for i, m in enumerate(new.methods):
        planned = validate_method(m, f"methods[{i}]", i + 1, limits)
        planned.is_primary = i == primary
        methods.append(planned)
    return PlannedTarget(
        name=name,
        os_type=os_type,
        environment=environment,
        description=description,
        tags=tags,
        status=status,
        methods=methods,
        **places,
    )


# ---- connection grants ------------------------------------------------------------------------

GRANT_PREFIX = "ocg1"


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class GrantClaims:
    target_ids: list[str]
    expires_at: float
    issued_at: float
    purpose: str
    grant_id: str
    methods: dict[str, str]  # target id -> method id, when not the primary method


class GrantSigner:
    """HMAC-SHA256 signed grants: ``ocg1.<kid>.<b64url(json claims)>.<b64url(mac)>``.

    The HMAC keys sit in the ``grant_keys`` table encrypted with the key ring, so every replica
    of the service verifies every other's grants and keys rotate like credentials do.
    """

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._keys: dict[str, bytes] = {}
        self._active: str | None = None

    async def ensure_key(self) -> None:
        row = await GrantKey.filter(active=True).order_by("-created_at").first()
        if row is None:
            kid = secrets.token_hex(6)
            row = await GrantKey.create(
                kid=kid, key_encrypted=self.keyring.encrypt(os.urandom(32), aad=f"grant-key:{kid}".encode())
            )
        self._load(row)
        self._active = row.kid

    def _load(self, row: GrantKey) -> bytes:
        key = self.keyring.decrypt(row.key_encrypted, aad=f"grant-key:{row.kid}".encode())
        self._keys[row.kid] = key
        return key

    async def _key(self, kid: str) -> bytes | None:
        if kid in self._keys:
            return self._keys[kid]
        row = await GrantKey.get_or_none(kid=kid, active=True)
        return self._load(row) if row is not None else None

    async def sign(self, claims: dict[str, Any]) -> str:
        if self._active is None:
            await self.ensure_key()
        assert self._active is not None
        body = _b64e(json.dumps(claims, separators=(",", ":")).encode())
        signed = f"{GRANT_PREFIX}.{self._active}.{body}"
        mac = hmac.new(self._keys[self._active], signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{_b64e(mac)}"

    async def verify(self, grant: str, *, at: float | None = None) -> GrantClaims:
        parts = grant.split(".") if isinstance(grant, str) else []
        if len(parts) != 4 or parts[0] != GRANT_PREFIX or not re.fullmatch(r"[0-9a-f]{1,32}", parts[1]):
            raise GrantRejected("malformed connection grant")
        key = await self._key(parts[1])
        if key is None:
            raise GrantRejected("connection grant signed by an unknown key")
        expected = hmac.new(key, f"{parts[0]}.{parts[1]}.{parts[2]}".encode(), hashlib.sha256).digest()
        try:
            given = _b64d(parts[3])
        except ValueError:
            raise GrantRejected("malformed connection grant") from None
        if not hmac.compare_digest(expected, given):
            raise GrantRejected("connection grant signature is invalid")
        try:
            claims = json.loads(_b64d(parts[2]))
            result = GrantClaims(
                target_ids=[str(t) for t in claims["tid"]],
                expires_at=float(claims["exp"]),
                issued_at=float(claims["iat"]),
                purpose=str(claims.get("pur", "")),
                grant_id=str(claims.get("jti", "")),
                methods={str(k): str(v) for k, v in (claims.get("m") or {}).items()},
            )
        except (ValueError, KeyError, TypeError):
            raise GrantRejected("malformed connection grant") from None
        if result.expires_at <= (time.time() if at is None else at):
            raise GrantRejected("connection grant expired")
        return result


def known_hosts_line(host: str, port: int, key_line: str) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key_line}\n"


async def fetch_host_key(host: str, port: int, timeout_s: float) -> asyncssh.SSHKey:
    """The server's host key, read from the key exchange (no authentication is attempted)."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port, config=None), timeout_s)
    except TimeoutError:
        raise HostKeyProblem(
            f"could not read the host key of {host}:{port}: timed out after {timeout_s:g}s"
        ) from None
    except ConnectionRefusedError:
        raise HostKeyProblem(f"could not read the host key of {host}:{port}: connection refused") from None
    except (OSError, asyncssh.Error) as exc:
        raise HostKeyProblem(
            f"could not read the host key of {host}:{port}: {type(exc).__name__}: {exc}"
        ) from None
    if key is None:
        raise HostKeyProblem(f"{host}:{port} presented no host key")
    return key


async def seed_device_types() -> None:
    """Insert missing system categories and types (idempotent; never overwrites edits)."""
    have_cats = set(await DeviceTypeCategory.all().values_list("value", flat=True))
    for order, (value, label, icon, color) in enumerate(DEVICE_CATEGORIES):
        if value not in have_cats:
            with contextlib.suppress(IntegrityError):
                await DeviceTypeCategory.create(
                    value=value,
                    label=label,
                    icon=icon,
                    color=color,
                    sort_order=(order + 1) * 10,
                    is_system=True,
                )
    have = set(await DeviceType.all().values_list("value", flat=True))
    for value, label, category, methods in DEVICE_TYPES:
        if value not in have:
            with contextlib.suppress(IntegrityError):
                await DeviceType.create(
                    value=value,
                    label=label,
                    category=category,
                    communication_methods=list(methods),
                    is_system=True,
                )


# ---- the service ------------------------------------------------------------------------------


@dataclass
class IssuedGrant:
    grant: str
    resolver_url: str
    expires_at: datetime
    targets: list[tuple[GrantTarget, GrantMethod]]


@dataclass
class ConnectionTestOutcome:
    ok: bool
    latency_ms: float | None
    message: str
    method_type: str | None
    method_id: str | None = None


class TargetService:
    def __init__(self, settings: Settings, keyring: KeyRing) -> None:
        self.settings = settings
        self.keyring = keyring
        self.grants = GrantSigner(keyring)
        self._grants_issued: MetricCounter | None = None
        self._learn_pending: set[str] = set()
        self._learner: asyncio.Task[None] | None = None
        self.netpolicy = NetPolicy(settings)
        self.key_limits = KeyLimits(settings.ssh_key_max_kdf_rounds, settings.ssh_key_max_pbkdf2_iterations)

    # -- validation that may parse private keys: off the event loop, bounded (review H8) --------

    async def _off_loop(self, fn: Any, *args: Any, field: str) -> Any:
        return await keyparse.off_loop(
            fn, *args, timeout=self.settings.ssh_key_check_timeout_seconds, field=field
        )

    async def plan_target(self, new: NewTarget) -> PlannedTarget:
        if any(m.credential is not None and m.credential.private_key for m in new.methods):
            return await self._off_loop(validate_new_target, new, self.key_limits, field="methods")
        return validate_new_target(new, self.key_limits)

    async def plan_method(self, new: NewMethod, prefix: str, default_priority: int) -> PlannedMethod:
        if new.credential is not None and new.credential.private_key:
            return await self._off_loop(
                validate_method,
                new,
                prefix,
                default_priority,
                self.key_limits,
                field=f"{prefix}.credential.privateKey",
            )
        return validate_method(new, prefix, default_priority, self.key_limits)

    async def check_credential(self, cred: NewCredential, method_type: str, prefix: str) -> dict[str, Any]:
        if cred.private_key:
            return await self._off_loop(
                validate_credential, cred, method_type, prefix, self.key_limits, field=f"{prefix}.privateKey"
            )
        return validate_credential(cred, method_type, prefix, self.key_limits)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Count issued connection grants by purpose on the service's ``/metrics``."""
        self._grants_issued = MetricCounter(
            "opsc_connection_grants_issued",
            "Connection grants issued (each lets the engine fetch credentials of its targets)",
            ["purpose"],
            registry=registry,
        )

    async def startup(self) -> None:
        await self.grants.ensure_key()
        with contextlib.suppress(IntegrityError):  # another replica created it first
            await Counter.get_or_create(name="targets", defaults={"value": 0})
        await seed_device_types()

    # -- shared checks -------------------------------------------------------------------------

    async def _lock(self) -> None:
        """Take the counter row lock: serializes host checks between concurrent writers (PostgreSQL)."""
        if not await Counter.filter(name="targets").update(value=F("value")):
            await Counter.create(name="targets", value=0)

    @staticmethod
    async def _check_hosts(hosts: Sequence[str], *, except_target: str | None = None) -> None:
        """Legacy rule: no two active targets share a host (sqlite paths are not hosts)."""
        wanted = sorted(set(hosts))
        if not wanted:
            return
        query = CommunicationMethod.filter(host__in=wanted, is_active=True, target__is_active=True).exclude(
            type="sqlite"
        )
        if except_target is not None:
            query = query.exclude(target_id=except_target)
        clash = await query.first()
        if clash is not None:
            raise HostAlreadyInUse(clash.host, str(clash.target_id))  # type: ignore[attr-defined]

    @staticmethod
    async def _check_os_type(os_type: str) -> None:
        if not await DeviceType.filter(value=os_type, is_active=True).exists():
            raise ValidationError(
                f"unknown device type {os_type!r}: see deviceTypes, or create a custom one", field="osType"
            )

    async def _target(self, target_id: str) -> Target:
        found = await self.get_targets([target_id])
        if not found:
            raise NotFoundError(f"target {target_id} not found", id=target_id)
        return found[0]

    @staticmethod
    def _method(target: Target, method_id: str) -> CommunicationMethod:
        method = next((m for m in target.methods if m.id == method_id), None)
        if method is None:
            raise NotFoundError(f"communication method {method_id} not found on this target", id=method_id)
        return method

    async def _event(self, kind: str, target: Target, actor: str | None, data: dict[str, Any]) -> None:
        """Metadata only: never a secret, never a username."""
        await record_event(
            Outbox,
            EventEnvelope(
                type=f"targets.{kind}",
                source="targets",
                subject=target.id,
                actor=actor,
                data={"id": target.id, "serial": target.serial, **data},
            ),
        )

    def _encrypt_secret(self, cred_id: str, secret: dict[str, Any]) -> str:
        return self.keyring.encrypt(json.dumps(secret).encode(), aad=cred_id.encode())

    async def _store_method(self, target: Target, pm: PlannedMethod) -> dict[str, Any]:
        method = await CommunicationMethod.create(
            id=str(new_uuid7()),
            target=target,
            type=pm.type,
            host=pm.host,
            port=pm.port,
            config=pm.config,
            is_primary=pm.is_primary,
            priority=pm.priority,
        )
        entry: dict[str, Any] = {
            "id": method.id,
            "type": pm.type,
            "host": pm.host,
            "port": pm.port,
            "isPrimary": pm.is_primary,
        }
        if pm.credential is not None and pm.secret is not None:
            cred_id = str(new_uuid7())
            await Credential.create(
                id=cred_id,
                method=method,
                type=pm.credential.type,
                username=pm.credential.username.strip(),
                secret_encrypted=self._encrypt_secret(cred_id, pm.secret),
            )
            entry["credential"] = {"id": cred_id, "type": pm.credential.type}
        return entry

    # -- create ------------------------------------------------------------------------------

    async def _next_serial(self) -> str:
        # The UPDATE takes the counter row's lock until commit, which also serializes the host check
        # below between concurrent creates (on SQLite the write lock does the same).
        while True:
            if not await Counter.filter(name="targets").update(value=F("value") + 1):
                await Counter.create(name="targets", value=1)
            counter = await Counter.get(name="targets")
            serial = f"TGT-{counter.value:06d}"
            if not await Target.filter(serial=serial).exists():  # imported legacy serials
                return serial

    async def create_target(self, new: NewTarget, *, actor: str | None = None) -> Target:
        plan = await self.plan_target(new)
        await self._check_os_type(plan.os_type)
        if new.serial is not None:  # importer path: keep the legacy serial, advance the counter past it
            serial = new.serial.strip()
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", serial):
                raise ValidationError(
                    "serial must be 1-32 characters of A-Z, 0-9, '.', '_', '-'", field="serial"
                )
            await self._lock()
            if await Target.filter(serial=serial).exists():
                raise ValidationError(f"serial {serial} already exists", field="serial")
            if m := re.fullmatch(r"TGT-(\d{6})", serial):
                await Counter.filter(name="targets", value__lt=int(m.group(1))).update(value=int(m.group(1)))
        else:
            serial = await self._next_serial()
        await self._check_hosts([m.host for m in plan.methods if m.type != "sqlite"])
        target_id = str(new_uuid7())
        try:
            target_uuid = uuid.UUID(new.uuid) if new.uuid else uuid.UUID(target_id)
        except ValueError:
            raise ValidationError("uuid is not a UUID", field="uuid") from None
        if new.uuid and await Target.filter(uuid=target_uuid).exists():
            raise ValidationError(f"uuid {target_uuid} already exists", field="uuid")
        target = await Target.create(
            id=target_id,
            serial=serial,
            uuid=target_uuid,
            name=plan.name,
            description=plan.description,
            os_type=plan.os_type,
            environment=plan.environment,
            status=plan.status,
            tags=plan.tags,
            location=plan.location,
            data_center=plan.data_center,
            region=plan.region,
        )
        await self._set_tags(target, plan.tags)
        summary = [await self._store_method(target, pm) for pm in plan.methods]
        await self._event(
            "target_created",
            target,
            actor,
            {
                "name": plan.name,
                "osType": plan.os_type,
                "environment": plan.environment,
                "status": plan.status,
                "tags": plan.tags,
                "methods": summary,
            },
        )
        log.info("target created", target_id=target.id, serial=serial, actor=actor)
        return (await self.get_targets([target.id]))[0]

    @staticmethod
    async def _set_tags(target: Target, tags: list[str]) -> None:
        await TargetTag.filter(target_id=target.id).delete()
        for tag in sorted({t.lower() for t in tags}):
            await TargetTag.create(target=target, tag=tag)

    # -- update basics / delete ----------------------------------------------------------------

    async def update_target(self, target_id: str, patch: TargetPatch, *, actor: str | None = None) -> Target:
        target = await self._target(target_id)
        await self._check_patch(patch)
        changes = await self._apply_patch(target, patch)
        if changes:
            await target.save()
            await self._event("target_updated", target, actor, {"changed": sorted(changes)})
        return (await self.get_targets([target.id]))[0]

    async def _check_patch(self, patch: TargetPatch) -> None:
        """What a patch needs from the database, checked once per call (not per target)."""
        if patch.os_type is not None:
            await self._check_os_type(_clean_os_type(patch.os_type))

    async def _apply_patch(self, target: Target, patch: TargetPatch) -> set[str]:
        """Validate and set the patch's fields (after `_check_patch`); returns those that changed."""
        changes: dict[str, Any] = {}
        if patch.name is not None:
            changes["name"] = _clean_name(patch.name)
        if patch.os_type is not None:
            changes["os_type"] = _clean_os_type(patch.os_type)
        if patch.environment is not None:
            changes["environment"] = _clean_environment(patch.environment)
        if patch.status is not None:
            changes["status"] = _clean_status(patch.status)
        if patch.description is not None:
            changes["description"] = _clean_description(patch.description)
        for name in ("location", "data_center", "region"):
            value = getattr(patch, name)
            if value is not None:
                changes[name] = _clean_place(value, name)
        tags = list(target.tags or [])
        if patch.tags is not None:
            tags = _clean_tags(patch.tags)
        if patch.add_tags:
            tags = _clean_tags([*tags, *patch.add_tags])
        if patch.remove_tags:
            gone = {t.strip().lower() for t in patch.remove_tags}
            tags = [t for t in tags if t.lower() not in gone]
        if tags != list(target.tags or []):
            changes["tags"] = tags
            await self._set_tags(target, tags)
        changed = {k for k, v in changes.items() if getattr(target, k) != v}
        for key, value in changes.items():
            setattr(target, key, value)
        return changed

    async def bulk_update(
        self, target_ids: Sequence[str], patch: TargetPatch, *, actor: str | None = None
    ) -> tuple[list[Target], list[str]]:
        """Apply one patch to many targets; returns (updated targets, unknown ids)."""
        ids = list(dict.fromkeys(str(i) for i in target_ids))
        if not ids:
            raise ValidationError("give at least one target id", field="targetIds")
        if len(ids) > 1000:
            raise ValidationError("at most 1000 targets per bulk update", field="targetIds")
        if patch.name is not None:
            raise ValidationError("names are not bulk-updatable", field="name")
        await self._check_patch(patch)
        found = await self.get_targets(ids)
        for target in found:
            changes = await self._apply_patch(target, patch)
            if changes:
                await target.save()
                await self._event("target_updated", target, actor, {"changed": sorted(changes)})
        known = {t.id for t in found}
        return await self.get_targets([t.id for t in found]), [i for i in ids if i not in known]

    async def delete_target(self, target_id: str, *, actor: str | None = None) -> Target:
        """Soft delete (legacy ``is_active=false``): history stays readable, the host is freed."""
        target = await self._target(target_id)
        target.is_active = False
        await target.save()
        await self._event("target_deleted", target, actor, {})
        log.info("target deleted", target_id=target.id, actor=actor)
        return target

    # -- communication methods -----------------------------------------------------------------

    async def add_method(
        self, target_id: str, new: NewMethod, *, actor: str | None = None
    ) -> tuple[Target, str]:
        target = await self._target(target_id)
        if len(target.methods) >= MAX_METHODS:
            raise ValidationError(f"at most {MAX_METHODS} communication methods", field="methods")
        planned = await self.plan_method(new, "method", len(target.methods) + 1)
        await self._lock()
        if planned.type != "sqlite":
            await self._check_hosts([planned.host], except_target=target.id)
        has_primary = any(m.is_primary and m.is_active for m in target.methods)
        planned.is_primary = bool(new.is_primary) or not has_primary
        if planned.is_primary:
            await CommunicationMethod.filter(target_id=target.id).update(is_primary=False)
        entry = await self._store_method(target, planned)
        await self._event("target_updated", target, actor, {"changed": ["methods"], "methodAdded": entry})
        return (await self.get_targets([target.id]))[0], entry["id"]

    async def update_method(
        self, target_id: str, method_id: str, patch: MethodPatch, *, actor: str | None = None
    ) -> Target:
        """Change a method. A credential without its secret (or with legacy's placeholder) keeps the stored one."""
        target = await self._target(target_id)
        method = self._method(target, method_id)
        host = method.host
        if patch.host is not None:
            host = (
                _validate_sqlite_path(patch.host, "method.host")
                if method.type == "sqlite"
                else normalize_host(patch.host, "method.host")
            )
        port = (
            validate_port(patch.port, method.type, "method.port") if patch.port is not None else method.port
        )
        config = (
            _validate_config(patch.config, method.type, "method.config")
            if patch.config is not None
            else method.config
        )
        priority = method.priority
        if patch.priority is not None:
            if not 1 <= patch.priority <= 1000:
                raise ValidationError("priority must be between 1 and 1000", field="method.priority")
            priority = patch.priority
        if patch.config is not None:
            check_winrm_security(method.type, config, "method.config")
        is_active = method.is_active if patch.is_active is None else patch.is_active
        if not is_active and not any(m.is_active for m in target.methods if m.id != method.id):
            raise ValidationError("a target needs at least one active communication method", field="isActive")
        self._require_secret_to_move(method, host, port, config, patch.credential)
        if patch.credential is not None:
            await self._replace_credential(method, patch.credential)
        if is_active and method.type != "sqlite" and (host != method.host or not method.is_active):
            await self._lock()
            await self._check_hosts([host], except_target=target.id)
        moved = host != method.host or port != method.port
        method.host, method.port, method.config = host, port, config
        method.priority, method.is_active = priority, is_active
        await method.save()
        if moved:  # a new address has a different host key: trust starts over
            await KnownHostKey.filter(method_id=method.id).delete()
        if method.is_primary and not is_active:
            await self._promote(target, exclude=method.id)
        await self._event("target_updated", target, actor, {"changed": ["methods"], "methodId": method.id})
        return (await self.get_targets([target.id]))[0]

    @staticmethod
    def _require_secret_to_move(
        method: CommunicationMethod, host: str, port: int, config: dict[str, Any], new: NewCredential | None
    ) -> None:
        """Re-pointing a method that holds a secret needs the secret again (review H2): else
        ``targets:write`` could send the stored password/token to a host of its choosing."""
        current = active_credential(method)
        if current is None:
            return
        changed = [
            name
            for name, old, now in (("host", method.host, host), ("port", method.port, port))
            if old != now
        ]
        changed += [
            f"config.{key}"
            for key in endpoint_changes(
                method.type, method.config or {}, config, METHOD_CONFIG_DEFAULTS.get(method.type, {})
            )
        ]
        if not changed:
            return
        if new is not None and any(
            v not in (None, "", SECRET_PLACEHOLDER) for v in (new.password, new.private_key)
        ):
            return
        secret_field = (
            "privateKey" if (new.type if new is not None else current.type) == "ssh_key" else "password"
        )
        raise ValidationError(
            f"changing {', '.join(changed)} of a method that holds a secret needs the secret again: "
            f"send the credential's {secret_field} with the change",
            field=f"method.credential.{secret_field}",
        )

    async def _replace_credential(self, method: CommunicationMethod, new: NewCredential) -> None:
        current = active_credential(method)
        secret_given = any(v not in (None, "", SECRET_PLACEHOLDER) for v in (new.password, new.private_key))
        if not secret_given:
            if current is None or current.type != new.type:
                # asking to keep a secret that is not there (or of another type) is an error
                validate_credential(
                    NewCredential(new.type, new.username, None, None, None), method.type, "method.credential"
                )
                return
            username = (new.username or "").strip()
            if not username and new.type in ("password", "ssh_key"):
                raise ValidationError("username is required", field="method.credential.username")
            if len(username) > 255:
                raise ValidationError(
                    "username is longer than 255 characters", field="method.credential.username"
                )
            current.username = username
            await current.save()
            return
        if new.passphrase == SECRET_PLACEHOLDER:
            keep = self.decrypt(current) if current is not None and current.type == "ssh_key" else {}
            new = NewCredential(new.type, new.username, new.password, new.private_key, keep.get("passphrase"))
        secret = await self.check_credential(new, method.type, "method.credential")
        await Credential.filter(method_id=method.id).delete()
        cred_id = str(new_uuid7())
        await Credential.create(
            id=cred_id,
            method=method,
            type=new.type,
            username=new.username.strip(),
            secret_encrypted=self._encrypt_secret(cred_id, secret),
        )

    async def _promote(self, target: Target, *, exclude: str) -> str | None:
        rest = sorted(
            (m for m in target.methods if m.id != exclude and m.is_active), key=lambda m: (m.priority, m.id)
        )
        await CommunicationMethod.filter(target_id=target.id).update(is_primary=False)
        if not rest:
            return None
        await CommunicationMethod.filter(id=rest[0].id).update(is_primary=True)
        return rest[0].id

    async def remove_method(
        self, target_id: str, method_id: str, *, actor: str | None = None
    ) -> tuple[Target, str | None]:
        """Hard delete (as legacy). Refuses the last method; removing the primary promotes the next."""
        target = await self._target(target_id)
        method = self._method(target, method_id)
        others = [m for m in target.methods if m.id != method.id]
        if not others:
            raise LastMethod("a target keeps at least one communication method: add another first")
        if not any(m.is_active for m in others):
            raise LastMethod("this is the target's last active communication method")
        promoted = None
        if method.is_primary:
            promoted = await self._promote(target, exclude=method.id)
        await KnownHostKey.filter(method_id=method.id).delete()
        await method.delete()
        await self._event(
            "target_updated",
            target,
            actor,
            {"changed": ["methods"], "methodRemoved": method.id, "promoted": promoted},
        )
        return (await self.get_targets([target.id]))[0], promoted

    async def set_primary(self, target_id: str, method_id: str, *, actor: str | None = None) -> Target:
        target = await self._target(target_id)
        method = self._method(target, method_id)
        if not method.is_active:
            raise ValidationError("an inactive method cannot be primary", field="methodId")
        await CommunicationMethod.filter(target_id=target.id).update(is_primary=False)
        await CommunicationMethod.filter(id=method.id).update(is_primary=True)
        await self._event(
            "target_updated", target, actor, {"changed": ["primaryMethod"], "methodId": method.id}
        )
        return (await self.get_targets([target.id]))[0]

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    async def get_targets(ids: Sequence[str], *, include_inactive: bool = False) -> list[Target]:
        return await get_targets(ids, include_inactive=include_inactive)

    @staticmethod
    async def active_target_ids(ids: Sequence[str]) -> list[str]:
        return await active_target_ids(ids)

    @staticmethod
    async def get_by(*, serial: str | None = None, uuid_text: str | None = None) -> Target | None:
        query = Target.filter(is_active=True)
        if serial is not None:
            if not storable(Target, "serial", serial.strip()):
                return None  # no target has such a serial (review FUZZ-1)
            query = query.filter(serial=serial.strip())
        else:
            try:
                query = query.filter(uuid=uuid.UUID(str(uuid_text)))
            except ValueError:
                return None
        row = await query.first()
        if row is None:
            return None
        found = await get_targets([row.id])
        return found[0] if found else None

    @staticmethod
    def _filtered(query: TargetQuery) -> Any:
        """Active targets matching the filter. A value no row can hold (longer than its column, or
        with a NUL) matches nothing rather than reaching the ORM's validation (review FUZZ-1)."""
        base = Target.filter(is_active=True)
        nothing = Target.filter(id__in=[])
        if query.search:
            term = query.search.strip()
            if not searchable(term):
                return nothing
            host_match = Subquery(CommunicationMethod.filter(host__icontains=term).values("target_id"))
            base = base.filter(
                Q(name__icontains=term)
                | Q(serial__icontains=term)
                | Q(description__icontains=term)
                | Q(location__icontains=term)
                | Q(id__in=host_match)
            )
        if len(query.tags or []) > MAX_FILTER_TAGS:
            raise ValidationError(f"at most {MAX_FILTER_TAGS} tags in a filter", field="tags")
        exact: list[tuple[Any, str, str | None]] = [
            (Target, "os_type", query.os_type and query.os_type.strip().lower()),
            (Target, "environment", query.environment and query.environment.strip().lower()),
            (Target, "status", query.status),
            (Target, "health_status", query.health),
            (Target, "location", query.location and query.location.strip()),
            (CommunicationMethod, "type", query.method_type),
            *((TargetTag, "tag", tag.strip().lower()) for tag in query.tags or []),
        ]
        if any(value and not storable(model, name, value) for model, name, value in exact):
            return nothing
        if query.os_type:
            base = base.filter(os_type=query.os_type.strip().lower())
        if query.environment:
            base = base.filter(environment=query.environment.strip().lower())
        if query.status:
            base = base.filter(status=query.status)
        if query.health:
            base = base.filter(health_status=query.health)
        if query.location:
            base = base.filter(location__iexact=query.location.strip())
        if query.method_type:
            base = base.filter(
                id__in=Subquery(
                    CommunicationMethod.filter(type=query.method_type, is_active=True).values("target_id")
                )
            )
        for tag in query.tags or []:
            base = base.filter(id__in=Subquery(TargetTag.filter(tag=tag.strip().lower()).values("target_id")))
        return base

    @classmethod
    async def list_targets(
        cls, query: TargetQuery, *, first: int, after: str | None
    ) -> tuple[list[Target], bool, int]:
        """Keyset paging on (sort column, id); ``after`` is the key of the last row seen."""
        if query.sort_field not in SORT_FIELDS:
            raise ValidationError(f"cannot sort by {query.sort_field}", field="sort")
        base = cls._filtered(query)
        total = await base.count()
        col = query.sort_field
        page = base
        if after:
            if col == "id":
                if not storable(Target, "id", after):
                    raise ValidationError("invalid cursor", field="after")
                page = base.filter(id__lt=after) if query.descending else base.filter(id__gt=after)
            else:
                try:
                    raw_value, after_id = json.loads(after)
                    value: Any = datetime.fromisoformat(raw_value) if col.endswith("_at") else str(raw_value)
                except (ValueError, TypeError):
                    raise ValidationError("invalid cursor", field="after") from None
                if not (storable(Target, col, value) and storable(Target, "id", str(after_id))):
                    raise ValidationError("invalid cursor", field="after")
                op = "lt" if query.descending else "gt"
                page = base.filter(
                    Q(**{f"{col}__{op}": value}) | (Q(**{col: value}) & Q(**{f"id__{op}": str(after_id)}))
                )
        order = [f"-{col}", "-id"] if query.descending else [col, "id"]
        if col == "id":
            order = order[:1]
        rows = await page.order_by(*order).limit(first + 1).prefetch_related("methods__credentials")
        return rows[:first], len(rows) > first, total

    @staticmethod
    def cursor_key(row: Target, sort_field: str) -> str:
        if sort_field == "id":
            return row.id
        value = getattr(row, sort_field)
        return json.dumps([value.isoformat() if isinstance(value, datetime) else value, row.id])

    @classmethod
    async def statistics(cls, query: TargetQuery) -> dict[str, Any]:
        """Counts of (filtered) active targets by OS, environment, health and status, and of their
        active communication methods by type: GROUP BY in the database, one query per breakdown."""

        async def count(rows_of: Any, key: str) -> dict[str, int]:
            rows = await rows_of.annotate(n=Count("id")).group_by(key).values(key, "n")
            return {str(r[key]): int(r["n"]) for r in rows}

        base = cls._filtered(query)  # querysets are cloned by each call below, never changed
        by_status = await count(base, "status")
        methods = CommunicationMethod.filter(is_active=True, target_id__in=Subquery(base.values("id")))
        return {
            "total": sum(by_status.values()),
            "deleted": await Target.filter(is_active=False).count(),
            "by_os_type": await count(base, "os_type"),
            "by_environment": await count(base, "environment"),
            "by_health": await count(base, "health_status"),
            "by_status": by_status,
            "by_method_type": await count(methods, "type"),
        }

    # -- device types --------------------------------------------------------------------------

    @staticmethod
    async def device_types(
        category: str | None = None, *, include_inactive: bool = False
    ) -> list[DeviceType]:
        query = DeviceType.all()
        if not include_inactive:
            query = query.filter(is_active=True)
        if category:
            if not storable(DeviceType, "category", category):
                return []  # no such category (review FUZZ-3)
            query = query.filter(category=category)
        return await query.order_by("category", "label")

    @staticmethod
    async def device_type_categories() -> list[DeviceTypeCategory]:
        return await DeviceTypeCategory.filter(is_active=True).order_by("sort_order", "value")

    @staticmethod
    def _check_device_type_fields(dt: DeviceTypeData) -> None:
        if dt.label is not None and not 1 <= len(dt.label.strip()) <= 100:
            raise ValidationError("label must be 1-100 characters", field="label")
        if dt.category is not None and not storable(DeviceTypeCategory, "value", dt.category):
            raise ValidationError(f"unknown category {dt.category[:60]!r}", field="category")
        if dt.description is not None and len(dt.description) > 2000:
            raise ValidationError("description is longer than 2000 characters", field="description")
        for i, mt in enumerate(dt.communication_methods or []):
            if mt not in METHOD_PORTS:
                raise ValidationError(f"unknown method type {mt!r}", field=f"communicationMethods[{i}]")

    async def create_device_type(self, dt: DeviceTypeData, *, actor: str | None = None) -> DeviceType:
        value = _clean_os_type(dt.value, "value")
        self._check_device_type_fields(dt)
        if not dt.label:
            raise ValidationError("label is required", field="label")
        if not await DeviceTypeCategory.filter(value=dt.category or "", is_active=True).exists():
            raise ValidationError(f"unknown category {dt.category!r}", field="category")
        existing = await DeviceType.get_or_none(value=value)
        if existing is not None and existing.is_active:
            raise ValidationError(f"device type {value!r} already exists", field="value")
        if existing is not None:  # re-creating a deleted custom type revives it
            await existing.delete()
        return await DeviceType.create(
            value=value,
            label=dt.label.strip(),
            category=dt.category,
            description=dt.description,
            communication_methods=list(dt.communication_methods or []),
            is_system=False,
            created_by=actor,
        )

    async def update_device_type(self, value: str, dt: DeviceTypeData) -> DeviceType:
        row = (
            await DeviceType.get_or_none(value=value, is_active=True)
            if storable(DeviceType, "value", value)
            else None
        )
        if row is None:
            raise NotFoundError(f"device type {value!r} not found", id=value)
        if row.is_system:
            raise ValidationError("system device types cannot be changed", field="value")
        self._check_device_type_fields(dt)
        if dt.category is not None:
            if not await DeviceTypeCategory.filter(value=dt.category, is_active=True).exists():
                raise ValidationError(f"unknown category {dt.category!r}", field="category")
            row.category = dt.category
        if dt.label is not None:
            row.label = dt.label.strip()
        if dt.description is not None:
            row.description = dt.description
        if dt.communication_methods is not None:
            row.communication_methods = list(dt.communication_methods)
        await row.save()
        return row

    async def delete_device_type(self, value: str) -> None:
        row = (
            await DeviceType.get_or_none(value=value, is_active=True)
            if storable(DeviceType, "value", value)
            else None
        )
        if row is None:
            raise NotFoundError(f"device type {value!r} not found", id=value)
        if row.is_system:
            raise ValidationError("system device types cannot be deleted", field="value")
        used = await Target.filter(os_type=value, is_active=True).count()
        if used:
            raise ValidationError(f"{used} active target(s) still use device type {value!r}", field="value")
        row.is_active = False
        await row.save()

    # -- the vault -----------------------------------------------------------------------------

    def decrypt(self, credential: Credential) -> dict[str, Any]:
        return json.loads(self.keyring.decrypt(credential.secret_encrypted, aad=credential.id.encode()))

    async def issue_grant(
        self,
        target_ids: Sequence[str],
        purpose: str,
        *,
        ttl_seconds: int | None = None,
        methods: dict[str, str] | None = None,
    ) -> IssuedGrant:
        """A signed, expiring grant to fetch these targets' credentials (NotFoundError if one is missing)."""
        ids = list(dict.fromkeys(str(i) for i in target_ids))
        if len(ids) > self.settings.max_grant_targets:
            raise ValidationError(
                f"at most {self.settings.max_grant_targets} targets per grant", field="targetIds"
            )
        found = await grant_targets(ids)  # a grant names methods, never secrets
        by_id = {t.id: t for t in found}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFoundError(f"target {missing[0]} not found", id=missing[0])
        listed: list[tuple[GrantTarget, GrantMethod]] = []
        for target in found:
            chosen = grant_method(target, (methods or {}).get(target.id))
            if chosen is None:
                raise NotFoundError(f"target {target.id} has no usable communication method", id=target.id)
            listed.append((target, chosen))
        issued = time.time()
        expires = issued + (ttl_seconds or self.settings.grant_ttl_seconds)
        claims: dict[str, Any] = {
            "tid": ids,
            "iat": int(issued),
            "exp": int(expires),
            "pur": purpose,
            "jti": secrets.token_hex(8),
        }
        if methods:
            claims["m"] = methods
        grant = await self.grants.sign(claims)
        log.info("connection grant issued", grant_id=claims["jti"], purpose=purpose, targets=len(ids))
        if self._grants_issued is not None:
            self._grants_issued.labels(purpose).inc()
        return IssuedGrant(
            grant=grant,
            resolver_url=self.settings.resolver_url,
            expires_at=datetime.fromtimestamp(int(expires), UTC),
            targets=listed,
        )

    async def resolve_many(
        self, grant: str, target_ids: Sequence[str]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Decrypted credentials for many targets of one grant, in a few queries.

        Returns (answers by target id, refusal message by target id): a target the grant does
        not cover, that is gone or has no usable credential is refused on its own; an invalid
        grant refuses them all (GrantRejected). The engine asks once per batch, not per target.
        """
        claims = await self.grants.verify(grant)
        wanted = list(dict.fromkeys(str(t) for t in target_ids))
        covered = set(claims.target_ids)
        refused = {
            tid: "the connection grant does not cover this target" for tid in wanted if tid not in covered
        }
        # Only what answering needs: four columns of the targets (no model with a dozen parsed
        # datetimes per row), their active methods with credentials, then the host keys.
        by_id = {
            t.id: t
            for t in await Target.filter(id__in=[t for t in wanted if t in covered], is_active=True).only(
                "id", "serial", "name", "environment"
            )
        }
        methods: dict[str, list[CommunicationMethod]] = {}
        if by_id:
            for m in await CommunicationMethod.filter(
                target_id__in=list(by_id), is_active=True
            ).prefetch_related("credentials"):
                methods.setdefault(m.target_id, []).append(m)  # type: ignore[attr-defined]
        chosen: dict[str, tuple[Target, CommunicationMethod, Credential]] = {}
        for tid in wanted:
            if tid in refused:
                continue
            target = by_id.get(tid)
            if target is None:
                refused[tid] = "target not available"
                continue
            method_id = claims.methods.get(tid)
            active = methods.get(tid, [])
            method = (
                next((m for m in active if m.id == method_id), None) if method_id else best_method(active)
            )
            credential = active_credential(method) if method is not None else None
            if method is None or credential is None:
                refused[tid] = "target has no credential for its communication method"
                continue
            if method.type == "winrm":  # rows written before the L5 rule are refused, not served
                problem = winrm_insecurity(method.config or {})
                if problem is not None:
                    refused[tid] = problem[1]
                    continue
            chosen[tid] = (target, method, credential)
        for tid, why in (
            await self._denied_addresses([m for _, m, _ in chosen.values()], list(chosen))
        ).items():
            refused[tid] = why
            del chosen[tid]
        ssh = [(target, method) for target, method, _ in chosen.values() if method.type == "ssh"]
        known = await self._known_hosts_many(ssh)
        answers: dict[str, dict[str, Any]] = {}
        for tid, (_target, method, credential) in chosen.items():
            host_keys = known.get(method.id)
            if isinstance(host_keys, GrantRejected):
                refused[tid] = host_keys.message
                continue
            if method.type == "ssh" and not isinstance(host_keys, str):
                # never an SSH credential without the host key to verify (review H3)
                refused[tid] = "no verified SSH host key for this target"
                continue
            try:
                secret = self.decrypt(credential)
            except DecryptionError:
                log.error(
                    "credential does not decrypt (key ring mismatch?)",
                    target_id=tid,
                    credential_id=credential.id,
                )
                refused[tid] = "credential unavailable"
                continue
            answer: dict[str, Any] = {
                "username": credential.username,
                "password": secret.get("password"),
                "privateKey": secret.get("privateKey"),
                "passphrase": secret.get("passphrase"),
            }
            if method.type == "winrm":
                # rows written before a setting existed get its default
                cfg = {**METHOD_CONFIG_DEFAULTS["winrm"], **(method.config or {})}
                answer["transport"] = str(cfg["transport"])
                answer["scheme"] = str(cfg["scheme"])
                answer["serverCertValidation"] = str(cfg["server_cert_validation"])
                # the engine refuses basic over http / unvalidated TLS unless told the method
                # opted in (L5); rows that break the rule were refused above
                answer["allowInsecure"] = bool(
                    cfg.get("allow_insecure_basic") or cfg.get("allow_unverified_tls")
                )
            if isinstance(host_keys, str):
                answer["knownHosts"] = host_keys
            answers[tid] = answer
        log.info(
            "credentials resolved",
            grant_id=claims.grant_id,
            purpose=claims.purpose,
            targets=len(answers),
            refused=len(refused),
            target_ids=sorted(answers),
        )
        return answers, refused

    async def _denied_addresses(
        self, methods: Sequence[CommunicationMethod], keys: Sequence[str]
    ) -> dict[str, str]:
        """By key: why the method's address may not be connected to (network policy, M11)."""
        limit = asyncio.Semaphore(16)
        out: dict[str, str] = {}

        async def one(key: str, method: CommunicationMethod) -> None:
            if method.type == "sqlite":
                return
            async with limit:
                try:
                    await self.netpolicy.check(method.host, method.port)
                except AddressDenied as exc:
                    out[key] = exc.message

        await asyncio.gather(*(one(k, m) for k, m in zip(keys, methods, strict=True)))
        return out

    # -- SSH host keys -------------------------------------------------------------------------

    def strict_host_keys(self, environment: str) -> bool:
        return environment in self.settings.strict_environments

    async def _known_hosts_many(
        self, pairs: Sequence[tuple[Target, CommunicationMethod]]
    ) -> dict[str, str | GrantRejected]:
        """By method id: the known_hosts text the engine must verify against, or the refusal
        (strict environment, or the key could not be read: never a credential without a key).

        Trust on first use: with no key recorded, fetch the server's key now (a bounded number at
        once) and record it, unless the target's environment is strict, then refuse until an
        operator runs acceptHostKey. Recorded keys come from one query.
        """
        if not pairs:
            return {}
        rows = await KnownHostKey.filter(method_id__in=[m.id for _, m in pairs])
        recorded = {(r.method_id, r.host, r.port): r for r in rows}
        out: dict[str, str | GrantRejected] = {}
        unknown: list[tuple[Target, CommunicationMethod]] = []
        for target, method in pairs:
            row = recorded.get((method.id, method.host, method.port))
            if row is not None:
                out[method.id] = known_hosts_line(method.host, method.port, row.key)
            elif self.strict_host_keys(target.environment):
                out[method.id] = GrantRejected(
                    f"host key of {method.host}:{method.port} is not known and {target.environment} "
                    "requires strict host key checking: accept it with acceptHostKey"
                )
            else:
                unknown.append((target, method))
        limit = asyncio.Semaphore(32)

        async def first_use(target: Target, method: CommunicationMethod) -> None:
            async with limit:
                try:
                    key = await self._fetch_host_key(method)
                except (HostKeyProblem, AddressDenied) as exc:
                    # Fail closed (review H3): no key, no credential. The engine would otherwise
                    # connect unchecked, and whoever answers there gets the password.
                    log.warning(
                        "host key not readable for trust on first use",
                        target_id=target.id,
                        reason=exc.message,
                    )
                    out[method.id] = GrantRejected(
                        f"{exc.message}; the SSH host key must be known before the credential is "
                        "released (it is read on first use, or run acceptHostKey)"
                    )
                    return
            async with in_transaction():
                row, _ = await self._record_host_key(target, method, key, "tofu", None)
            out[method.id] = known_hosts_line(method.host, method.port, row.key)

        await asyncio.gather(*(first_use(t, m) for t, m in unknown))
        return out

    async def _fetch_host_key(self, method: CommunicationMethod) -> asyncssh.SSHKey:
        """The server's key, read from the address the network policy checked (M11)."""
        address = await self.netpolicy.check(method.host, method.port)
        return await fetch_host_key(address, method.port, self.settings.host_key_timeout_seconds)

    def learn_host_keys_soon(self, target_ids: Sequence[str]) -> None:
        """Record, in the background, the host keys of these targets' SSH methods that have none
        yet (trust on first use ahead of the first run; never in strict environments). Call it
        after the transaction that created or re-pointed the methods has committed."""
        if not self.settings.learn_host_keys_on_create or not target_ids:
            return
        self._learn_pending.update(target_ids)
        if self._learner is None or self._learner.done():
            self._learner = asyncio.create_task(self._learn_host_keys(), name="targets-learn-host-keys")

    async def _learn_host_keys(self) -> None:
        while self._learn_pending:
            ids = sorted(self._learn_pending)[:200]
            self._learn_pending.difference_update(ids)
            try:
                pairs = [
                    (target, method)
                    for target in await self.get_targets(ids)
                    if not self.strict_host_keys(target.environment)
                    for method in target.methods
                    if method.is_active and method.type == "ssh"
                ]
                await self._known_hosts_many(pairs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("learning host keys failed", targets=len(ids))

    async def stop_background(self) -> None:
        if self._learner is not None:
            self._learner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._learner
            self._learner = None

    async def _record_host_key(
        self, target: Target, method: CommunicationMethod, key: asyncssh.SSHKey, how: str, actor: str | None
    ) -> tuple[KnownHostKey, str | None]:
        """Trust `key` for the method (recording it, or replacing the recorded one); returns the
        row and the fingerprint it replaced. A concurrent first use that won keeps its key."""
        line = key.export_public_key("openssh").decode().strip()
        fingerprint = key.get_fingerprint("sha256")
        row = await KnownHostKey.get_or_none(method_id=method.id, host=method.host, port=method.port)
        previous = row.fingerprint if row is not None else None
        if row is None:
            try:
                row = await KnownHostKey.create(
                    target=target,
                    method_id=method.id,
                    host=method.host,
                    port=method.port,
                    key=line,
                    fingerprint=fingerprint,
                    trusted_by=how,
                    actor=actor,
                )
            except IntegrityError:  # a concurrent first use recorded it: theirs stands
                return await KnownHostKey.get(method_id=method.id, host=method.host, port=method.port), None
        else:
            row.key, row.fingerprint, row.trusted_by, row.actor = line, fingerprint, how, actor
            await row.save()
        await self._event(
            "host_key_trusted",
            target,
            actor,
            {"methodId": method.id, "fingerprint": fingerprint, "previous": previous, "how": how},
        )
        log.info(
            "host key trusted",
            target_id=target.id,
            method_id=method.id,
            fingerprint=fingerprint,
            previous=previous,
            how=how,
        )
        return row, previous

    async def accept_host_key(
        self, target_id: str, method_id: str, fingerprint: str | None, *, actor: str | None = None
    ) -> tuple[KnownHostKey, str | None]:
        """Fetch the key the server presents now and trust it (replacing a recorded one).

        With ``fingerprint`` the key must be the one the operator verified out of band.
        """
        target = await self._target(target_id)
        method = self._method(target, method_id)
        if method.type != "ssh":
            raise ValidationError("host keys exist for ssh methods only", field="methodId")
        try:
            key = await self._fetch_host_key(method)
        except AddressDenied as exc:
            raise HostKeyProblem(exc.message) from None
        presented = key.get_fingerprint("sha256")
        if fingerprint and fingerprint.strip() != presented:
            raise HostKeyProblem(
                f"the server presents {presented}, not the fingerprint you confirmed ({fingerprint.strip()})"
            )
        return await self._record_host_key(target, method, key, "accepted", actor)

    # -- key rotation --------------------------------------------------------------------------

    async def reencrypt(self) -> dict[str, int]:
        """Re-encrypt every credential and grant key not under the active key (rotation step 2)."""
        done = {"credentials": 0, "grant_keys": 0, "already_current": 0}
        for cred in await Credential.all():
            if self.keyring.key_id_of(cred.secret_encrypted) == self.keyring.active:
                done["already_current"] += 1
                continue
            plain = self.keyring.decrypt(cred.secret_encrypted, aad=cred.id.encode())
            cred.secret_encrypted = self.keyring.encrypt(plain, aad=cred.id.encode())
            await cred.save(update_fields=["secret_encrypted"])
            done["credentials"] += 1
        for gk in await GrantKey.all():
            if self.keyring.key_id_of(gk.key_encrypted) == self.keyring.active:
                done["already_current"] += 1
                continue
            aad = f"grant-key:{gk.kid}".encode()
            gk.key_encrypted = self.keyring.encrypt(self.keyring.decrypt(gk.key_encrypted, aad=aad), aad=aad)
            await gk.save(update_fields=["key_encrypted"])
            done["grant_keys"] += 1
        log.info("credentials re-encrypted", active_key=self.keyring.active, **done)
        return done
