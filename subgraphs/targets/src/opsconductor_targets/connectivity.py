"""Connection tests: SSH and WinRM on the engine, every other type by a local probe.

Why two paths: the engine owns SSH/WinRM sessions (pooled, credentials fetched by grant inside
the actor), while databases, HTTP, SMTP, SNMP and TCP services have short async client checks
that need no engine. Both give the same ``ConnectionTestOutcome``. Saved methods decrypt their
credential here, just for the probe (``TargetService.decrypt``); nothing is logged or kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from opsconductor_shared.errors import DomainError
from opsconductor_shared.logging import get_logger
from opsconductor_targets.models import CommunicationMethod, Target
from opsconductor_targets.netpolicy import AddressDenied, sqlite_path_allowed
from opsconductor_targets.probes import ProbeResult, ProbeSecret, ProbeTarget, method_timeout, run_probe
from opsconductor_targets.queries import active_credential
from opsconductor_targets.service import ConnectionTestOutcome, IssuedGrant, PlannedMethod, TargetService

log = get_logger("opsconductor.targets.connectivity")

ENGINE_TYPES = frozenset({"ssh", "winrm"})


def _secret_from(cred_type: str, username: str, secret: dict[str, Any] | None) -> ProbeSecret:
    secret = secret or {}
    return ProbeSecret(
        type=cred_type,
        username=username or "",
        password=secret.get("password"),
        private_key=secret.get("privateKey"),
        passphrase=secret.get("passphrase"),
    )


async def guarded_probe(svc: TargetService, target: ProbeTarget, timeout: float) -> ProbeResult:  # noqa: ASYNC109
    """``run_probe`` behind the network policy (netpolicy.py, review M11): the host is resolved
    and every address checked first (bounded by ``timeout`` too), then the probe connects to the
    checked address. sqlite file checks are confined to ``sqlite_probe_directory``."""
    if target.type == "sqlite":
        why = sqlite_path_allowed(
            str(target.config.get("database_path") or target.host), svc.settings.sqlite_probe_directory
        )
        if why is not None:
            return ProbeResult(False, None, why)
        return await run_probe(target, timeout)
    try:
        async with asyncio.timeout(timeout):
            address = await svc.netpolicy.check(target.host, target.port)
    except AddressDenied as exc:
        log.info("probe refused by the network policy", method=target.type)
        return ProbeResult(False, None, exc.message)
    except TimeoutError:
        return ProbeResult(False, None, f"timed out after {timeout:g}s")
    return await run_probe(dataclasses.replace(target, address=address), timeout)


class SharedTestGrant:
    """One connection-test grant for the SSH/WinRM methods of many targets (bulk tests, the
    health checker), instead of one grant per target. Issued when first needed, and again when
    what is left of its `test_grant_ttl_seconds` would not cover a whole test; if it cannot be
    issued for all of them (a target deleted meanwhile), each test takes a grant of its own as
    a single test does."""

    def __init__(self, svc: TargetService, pairs: list[tuple[Target, CommunicationMethod | None]]) -> None:
        self.svc = svc
        self.methods = {t.id: m.id for t, m in pairs if m is not None and m.type in ENGINE_TYPES}
        self._issued: IssuedGrant | None = None
        self._failed = False
        self._lock = asyncio.Lock()

    async def for_target(self, target_id: str, method_id: str) -> IssuedGrant | None:
        """The shared grant if it names this target's method, else None (take your own)."""
        if self._failed or self.methods.get(target_id) != method_id:
            return None
        settings = self.svc.settings
        async with self._lock:
            needed = settings.test_timeout_seconds + 5
            if self._issued is None or self._issued.expires_at.timestamp() - time.time() < needed:
                try:
                    self._issued = await self.svc.issue_grant(
                        list(self.methods),
                        "connection-test",
                        ttl_seconds=settings.test_grant_ttl_seconds,
                        methods=self.methods,
                    )
                except DomainError as exc:
                    log.info("no shared connection-test grant; one per target", reason=exc.message)
                    self._failed = True
                    return None
            return self._issued


async def test_saved_method(
    svc: TargetService,
    engine: Any,
    target: Target,
    method: CommunicationMethod,
    shared: SharedTestGrant | None = None,
) -> ConnectionTestOutcome:
    """Test one saved method of a loaded target (methods and credentials prefetched); SSH/WinRM
    through the engine, with ``shared``'s grant when it covers the method."""
    cap = svc.settings.test_timeout_seconds
    if method.type in ENGINE_TYPES:
        if engine is None:
            return ConnectionTestOutcome(
                False, None, "execution engine not available", method.type, method.id
            )
        try:  # the engine would connect there with the credential: same policy (M11)
            await svc.netpolicy.check(method.host, method.port)
        except AddressDenied as exc:
            return ConnectionTestOutcome(False, None, exc.message, method.type, method.id)
        issued = await shared.for_target(target.id, method.id) if shared is not None else None
        return await _on_engine(svc, engine, target, method, issued)
    credential = active_credential(method)
    secret = None
    if credential is not None:
        try:
            secret = _secret_from(credential.type, credential.username, svc.decrypt(credential))
        except Exception:
            log.error("credential does not decrypt", target_id=target.id, credential_id=credential.id)
            return ConnectionTestOutcome(False, None, "credential unavailable", method.type, method.id)
    timeout = method_timeout(method.config or {}, svc.settings.probe_default_timeout_seconds, cap)
    result = await guarded_probe(
        svc, ProbeTarget(method.type, method.host, method.port, method.config or {}, secret), timeout
    )
    return ConnectionTestOutcome(result.ok, result.latency_ms, result.message, method.type, method.id)


async def test_planned_method(svc: TargetService, planned: PlannedMethod) -> ConnectionTestOutcome:
    """Test an unsaved, validated method with its inline credential (``testMethodConfig``).

    SSH/WinRM get a TCP + banner check only: the engine takes credentials through grants of
    saved targets, and sending a password to a host whose key was never recorded is not done.
    """
    cap = svc.settings.test_timeout_seconds
    secret = (
        _secret_from(planned.credential.type, planned.credential.username, planned.secret)
        if planned.credential is not None
        else None
    )
    timeout = method_timeout(planned.config, svc.settings.probe_default_timeout_seconds, cap)
    result = await guarded_probe(
        svc, ProbeTarget(planned.type, planned.host, planned.port, planned.config, secret), timeout
    )
    message = result.message
    if planned.type in ENGINE_TYPES:
        message += " (unsaved SSH/WinRM configs get a port and banner check; save the target to test login)"
    return ConnectionTestOutcome(result.ok, result.latency_ms, message, planned.type, None)


async def _on_engine(
    svc: TargetService,
    engine: Any,
    target: Target,
    method: CommunicationMethod,
    issued: IssuedGrant | None = None,
) -> ConnectionTestOutcome:
    from opsconductor_ray.protocol import CredentialRef, TargetSpec  # deferred: the engine is optional

    if issued is None:
        issued = await svc.issue_grant(
            [target.id],
            "connection-test",
            ttl_seconds=svc.settings.test_grant_ttl_seconds,
            methods={target.id: method.id},
        )
    spec = TargetSpec(
        target_id=target.id, name=target.name, host=method.host, port=method.port, method=method.type
    )
    timeout = svc.settings.test_timeout_seconds
    try:
        result = await asyncio.wait_for(
            engine.test_connection(spec, CredentialRef(resolver_url=issued.resolver_url, grant=issued.grant)),
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
