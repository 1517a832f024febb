"""The targets service's collaborators, built once in ``app.py`` (``runtime.deps``). The engine
client (None without an engine) is the ``ConnectionTester``'s."""

from __future__ import annotations

from dataclasses import dataclass

from opsconductor_targets.service.connectivity import ConnectionTester
from opsconductor_targets.service.grants import GrantSigner
from opsconductor_targets.service.health import HealthMonitor
from opsconductor_targets.service.host_keys import HostKeys
from opsconductor_targets.service.netpolicy import NetPolicy
from opsconductor_targets.service.vault import Vault
from opsconductor_targets.settings import Settings


@dataclass
class Deps:
    settings: Settings
    vault: Vault
    grants: GrantSigner
    netpolicy: NetPolicy
    host_keys: HostKeys
    tester: ConnectionTester
    health: HealthMonitor
