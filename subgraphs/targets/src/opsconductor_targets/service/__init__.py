"""Targets domain logic (no strawberry). ``from opsconductor_targets import service; service.x(...)``.

Modules: ``catalog`` (static catalogues, seeding), ``validation`` (input DTOs, pure rules),
``targets`` / ``methods`` / ``device_types`` (writes, in the caller's transaction), ``reads``,
``grants`` (connection grants and the credential resolver), ``host_keys`` (trust on first use),
``vault`` (secrets at rest), ``connectivity`` / ``probes`` / ``netpolicy`` (connection tests and
the network policy), ``health`` (checks and the periodic checker). Stateful collaborators are
built in ``app.py`` and held in :class:`Deps`.
"""

from __future__ import annotations

from opsconductor_targets.errors import (
    AddressDenied,
    GrantRejected,
    HostAlreadyInUse,
    HostKeyProblem,
    LastMethod,
)
from opsconductor_targets.service.catalog import (
    DEVICE_CATEGORIES,
    DEVICE_TYPES,
    METHOD_CONFIG_DEFAULTS,
    METHOD_CONFIG_SPEC,
    METHOD_PORTS,
    SORT_FIELDS,
    seed_device_types,
)
from opsconductor_targets.service.connectivity import ConnectionTester, ConnectionTestOutcome, SharedTestGrant
from opsconductor_targets.service.deps import Deps
from opsconductor_targets.service.device_types import (
    create_device_type,
    delete_device_type,
    device_type_categories,
    device_types,
    update_device_type,
)
from opsconductor_targets.service.grants import (
    GrantClaims,
    GrantSigner,
    IssuedGrant,
    issue_grant,
    resolve_many,
)
from opsconductor_targets.service.health import (
    HealthMonitor,
    HealthOutcome,
    check_target_health,
    test_connection,
)
from opsconductor_targets.service.host_keys import HostKeys, accept_host_key, fetch_host_key, known_hosts_line
from opsconductor_targets.service.methods import add_method, remove_method, set_primary, update_method
from opsconductor_targets.service.netpolicy import NetPolicy
from opsconductor_targets.service.reads import (
    active_target_ids,
    cursor_key,
    get_by,
    get_targets,
    list_targets,
    statistics,
)
from opsconductor_targets.service.targets import (
    bulk_update,
    create_target,
    delete_target,
    startup,
    update_target,
)
from opsconductor_targets.service.validation import (
    DeviceTypeData,
    MethodPatch,
    NewCredential,
    NewMethod,
    NewTarget,
    PlannedMethod,
    PlannedTarget,
    TargetPatch,
    TargetQuery,
    normalize_host,
    plan_method,
    validate_credential,
    validate_method,
    validate_new_target,
    validate_port,
)
from opsconductor_targets.service.vault import Vault, load_keyring, reencrypt

__all__ = [
    "DEVICE_CATEGORIES",
    "DEVICE_TYPES",
    "METHOD_CONFIG_DEFAULTS",
    "METHOD_CONFIG_SPEC",
    "METHOD_PORTS",
    "SORT_FIELDS",
    "AddressDenied",
    "ConnectionTestOutcome",
    "ConnectionTester",
    "Deps",
    "DeviceTypeData",
    "GrantClaims",
    "GrantRejected",
    "GrantSigner",
    "HealthMonitor",
    "HealthOutcome",
    "HostAlreadyInUse",
    "HostKeyProblem",
    "HostKeys",
    "IssuedGrant",
    "LastMethod",
    "MethodPatch",
    "NetPolicy",
    "NewCredential",
    "NewMethod",
    "NewTarget",
    "PlannedMethod",
    "PlannedTarget",
    "SharedTestGrant",
    "TargetPatch",
    "TargetQuery",
    "Vault",
    "accept_host_key",
    "active_target_ids",
    "add_method",
    "bulk_update",
    "check_target_health",
    "create_device_type",
    "create_target",
    "cursor_key",
    "delete_device_type",
    "delete_target",
    "device_type_categories",
    "device_types",
    "fetch_host_key",
    "get_by",
    "get_targets",
    "issue_grant",
    "known_hosts_line",
    "list_targets",
    "load_keyring",
    "normalize_host",
    "plan_method",
    "reencrypt",
    "remove_method",
    "resolve_many",
    "seed_device_types",
    "set_primary",
    "startup",
    "statistics",
    "test_connection",
    "update_device_type",
    "update_method",
    "update_target",
    "validate_credential",
    "validate_method",
    "validate_new_target",
    "validate_port",
]
