"""Static catalogues: method types, ports, config defaults and rules, credential types, the
device-type catalogue (seeded), limits, sort fields."""

from __future__ import annotations

import contextlib
from typing import Any

from tortoise.exceptions import IntegrityError

from opsconductor_targets.models import DeviceType, DeviceTypeCategory
from opsconductor_targets.service.exposure import WINRM_DEFAULTS

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
