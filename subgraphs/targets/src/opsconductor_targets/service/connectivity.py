"""Connection tests: SSH and WinRM on the engine, every other type by a local probe.

Why two paths: the engine owns SSH/WinRM sessions (pooled, credentials fetched by grant inside
the actor), while databases, HTTP, SMTP, SNMP and TCP services have short async client checks
that need no engine. Both give the same ``ConnectionTestOutcome``. Saved methods decrypt their
credential here, just for the probe (``Vault.decrypt``); nothing is logged or kept.
``ConnectionTester`` is built once in ``app.py`` with the engine (None when there is none).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsconductor_shared.errors import DomainError
from opsconductor_shared.logging import get_logger
from opsconductor_targets.errors import AddressDenied
from opsconductor_targets.models import CommunicationMethod, Target
from opsconductor_targets.service.grants import GrantSigner, IssuedGrant, issue_grant
from opsconductor_targets.service.netpolicy import NetPolicy, sqlite_path_allowed
from opsconductor_targets.service.probes import (
    ProbeResult,
    ProbeSecret,
    ProbeTarget,
    method_timeout,
    run_probe,
)
from opsconductor_targets.service.reads import active_credential
from opsconductor_targets.service.validation import PlannedMethod
from opsconductor_targets.service.vault import Vault
from opsconductor_targets.settings import Settings

if TYPE_CHECKING:
    from opsconductor_ray.client import EngineClient

log = get_logger("opsconductor.targets.connectivity")

ENGINE_TYPES = frozenset({"ssh", "winrm"})


@dataclass
class ConnectionTestOutcome:
    ok: bool
    latency_ms: float | None
    message: str
    method_type: str | None
    method_id: str | None = None


def _secret_from(cred_type: str, username: str, secret: dict[str, Any] | None) -> ProbeSecret:
    secret = secret or {}
    return ProbeSecret(
        type=cred_type,
        username=username or "",
        password=secret.get("password"),
        private_key=secret.get("privateKey"),
        passphrase=secret.get("passphrase"),
    )


class SharedTestGrant:
    """One connection-test grant for the SSH/WinRM methods of many targets (bulk tests, the
    health checker), instead of one grant per target. Issued when first needed, and again when
    what is left of its `test_grant_ttl_seconds` would not cover a whole test; if it cannot be
    issued for all of them (a target deleted meanwhile), each test takes a grant of its own as
    a single test does."""

    def __init__(
        self,
        tester: ConnectionTester,
        pairs: list[tuple[Target, CommunicationMethod | None]],
    ) -> None:
        self.tester = tester
        self.methods = {t.id: m.id for t, m in pairs if m is not None and m.type in ENGINE_TYPES}
        self._issued: IssuedGrant | None = None
        self._failed = False
        self._lock = asyncio.Lock()

    async def for_target(self, target_id: str, method_id: str) -> IssuedGrant | None:
        """The shared grant if it names this target's method, else None (take your own)."""
        if self._failed or self.methods.get(target_id) != method_id:
            return None
        async with self._lock:
            needed = self.tester.settings.test_timeout_seconds + 5
            if self._issued is None or self._issued.expires_at.timestamp() - time.time() < needed:
                try:
                    self._issued = await self.tester.test_grant(self.methods)
                except DomainError as exc:
                    log.info("no shared connection-test grant; one per target", reason=exc.message)
                    self._failed = True
                    return None
            return self._issued


class ConnectionTester:
    """Connection tests of saved and unsaved methods (the engine for SSH/WinRM, else a probe)."""

    def __init__(
        self,
        *,
        settings: Settings,
        netpolicy: NetPolicy,
        vault: Vault,
        grants: GrantSigner,
        engine: EngineClient | None,
    ) -> None:
        self.settings = settings
        self.netpolicy = netpolicy
        self.vault = vault
        self.grants = grants
        self.engine = engine

    async def test_grant(self, methods: dict[str, str]) -> IssuedGrant:
        """A short-lived grant for these targets' methods (target id -> method id)."""
        return await issue_grant(
            grants=self.grants,
            settings=self.settings,
            target_ids=list(methods),
            purpose="connection-test",
            ttl_seconds=self.settings.test_grant_ttl_seconds,
            methods=methods,
        )

    async def guarded_probe(self, target: ProbeTarget, timeout: float) -> ProbeResult:  # noqa: ASYNC109
        """``run_probe`` behind the network policy (netpolicy.py, review M11): the host is resolved
        and every address checked first (bounded by ``timeout`` too), then the probe connects to the
        checked address. sqlite file checks are confined to ``sqlite_probe_directory``."""
        if target.type == "sqlite":
            why = sqlite_path_allowed(
                str(target.config.get("database_path") or target.host), self.settings.sqlite_probe_directory
            )
            if why is not None:
                return ProbeResult(False, None, why)
            return await run_probe(target, timeout)
        try:
            async with asyncio.timeout(timeout):
                address = await self.netpolicy.check(target.host, target.port)
        except AddressDenied as exc:
            log.info("probe refused by the network policy", method=target.type)
            return ProbeResult(False, None, exc.message)
        except TimeoutError:
            return ProbeResult(False, None, f"timed out after {timeout:g}s")
        return await run_probe(dataclasses.replace(target, address=address), timeout)

    async def test_saved_method(
        self, target: Target, method: CommunicationMethod, shared: SharedTestGrant | None = None
    ) -> ConnectionTestOutcome:
        """Test one saved method of a loaded target (methods and credentials prefetched); SSH/WinRM
        through the engine, with ``shared``'s grant when it covers the method."""
        cap = self.settings.test_timeout_seconds
        if method.type in ENGINE_TYPES:
            if self.engine is None:
                return ConnectionTestOutcome(
                    False, None, "execution engine not available", method.type, method.id
                )
            try:  # the engine would connect there with the credential: same policy (M11)
                await self.netpolicy.check(method.host, method.port)
            except AddressDenied as exc:
                return ConnectionTestOutcome(False, None, exc.message, method.type, method.id)
            issued = await shared.for_target(target.id, method.id) if shared is not None else None
            return await self._on_engine(self.engine, target, method, issued)
        credential = active_credential(method)
        secret = None
        if credential is not None:
            try:
                secret = _secret_from(credential.type, credential.username, self.vault.decrypt(credential))
            except Exception:
                log.error("credential does not decrypt", target_id=target.id, credential_id=credential.id)
                return ConnectionTestOutcome(False, None, "credential unavailable", method.type, method.id)
        timeout = method_timeout(method.config or {}, self.settings.probe_default_timeout_seconds, cap)
        result = await self.guarded_probe(
            ProbeTarget(method.type, method.host, method.port, method.config or {}, secret), timeout
        )
        return ConnectionTestOutcome(result.ok, result.latency_ms, result.message, method.type, method.id)

    async def test_planned_method(self, planned: PlannedMethod) -> ConnectionTestOutcome:
        """Test an unsaved, validated method with its inline credential (``testMethodConfig``).

        SSH/WinRM get a TCP + banner check only: the engine takes credentials through grants of
        saved targets, and sending a password to a host whose key was never recorded is not done.
        """
        cap = self.settings.test_timeout_seconds
        secret = (
            _secret_from(planned.credential.type, planned.credential.username, planned.secret)
            if planned.credential is not None
            else None
        )
        timeout = method_timeout(planned.config, self.settings.probe_default_timeout_seconds, cap)
        result = await self.guarded_probe(
            ProbeTarget(planned.type, planned.host, planned.port, planned.config, secret), timeout
        )
        message = result.message
        if planned.type in ENGINE_TYPES:
            message += (
                " (unsaved SSH/WinRM configs get a port and banner check; save the target to test login)"
            )
        return ConnectionTestOutcome(result.ok, result.latency_ms, message, planned.type, None)

    async def _on_engine(
        self,
        engine: EngineClient,
        target: Target,
        method: CommunicationMethod,
        issued: IssuedGrant | None = None,
    ) -> ConnectionTestOutcome:
        from opsconductor_ray.protocol import CredentialRef, TargetSpec  # deferred: the engine is optional

        if issued is None:
            issued = await self.test_grant({target.id: method.id})
        spec = TargetSpec(
            target_id=target.id, name=target.name, host=method.host, port=method.port, method=method.type
        )
        timeout = self.settings.test_timeout_seconds
        try:
            result = await asyncio.wait_for(
                engine.test_connection(
                    spec, CredentialRef(resolver_url=issued.resolver_url, grant=issued.grant)
                ),
                timeout,
            )
        except TimeoutError:
            return ConnectionTestOutcome(
                False, None, f"connection test timed out after {timeout:g}s", method.type, method.id
            )
        except Exception as exc:
            log.warning(
                "connection test failed in the engine", target_id=target.id, error_type=type(exc).__name__
            )
            return ConnectionTestOutcome(
                False, None, f"execution engine error: {type(exc).__name__}: {exc}", method.type, method.id
            )
        return ConnectionTestOutcome(
            bool(result.ok), result.latency_ms, str(result.message), method.type, method.id
        )
