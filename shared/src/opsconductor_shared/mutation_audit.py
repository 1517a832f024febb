"""Every mutation of every subgraph is audited: ``<service>.mutation`` on the service's event stream.

A field extension on each root mutation field (outermost, so permission denials are seen too)
records, after the resolver ran: the operation (the field name), its outcome (SUCCESS; FAILURE for
an error member of the result union or an unexpected error; DENIED for FORBIDDEN/UNAUTHENTICATED
or a permission-denied member), the error code or type, the caller, the client's IP (the
router's vouched-for ``x-opsc-client-ip``, else the socket peer), user agent and the correlation
id (the envelope's). Never an argument: inputs carry passwords and secrets.

The event goes through the service's outbox in its own short transaction after the resolver's
(the resolver's commit is not held up; a crash between the two loses the record, the domain
events of the mutation itself are unaffected).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import strawberry
from strawberry.extensions import FieldExtension

from opsconductor_shared.client_ip import client_ip
from opsconductor_shared.errors import Error
from opsconductor_shared.events import EventEnvelope, record_event
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.audit.mutations")

MUTATION_EVENT = "mutation"
DENIED_CODES = frozenset({"FORBIDDEN", "UNAUTHENTICATED"})
DENIED_TYPES = frozenset({"PermissionDenied", "InvalidCredentials", "AccountLocked", "AccountDisabled"})


def _outcome_of_value(value: Any) -> tuple[str, str | None]:
    if isinstance(value, Error):
        name = type(value).__name__
        return ("DENIED" if name in DENIED_TYPES else "FAILURE"), name
    return "SUCCESS", None


def _outcome_of_error(exc: BaseException) -> tuple[str, str]:
    extensions: Any = getattr(exc, "extensions", None)
    code: object = None
    if isinstance(extensions, dict):
        code = cast(dict[str, object], extensions).get("code")
    if code is None:
        code = cast(object, getattr(exc, "code", None))
    code_text = str(code) if code else type(exc).__name__
    return ("DENIED" if code_text in DENIED_CODES else "FAILURE"), code_text


class AuditedMutation(FieldExtension):
    """Records ``<service>.mutation`` after the field resolved (see the module docstring)."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        return next_(source, info, **kwargs)  # every mutation is async; a sync one is not audited

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        try:
            value = await next_(source, info, **kwargs)
        except Exception as exc:
            outcome, code = _outcome_of_error(exc)
            await _record(info, outcome, code)
            raise
        outcome, code = _outcome_of_value(value)
        await _record(info, outcome, code)
        return value


async def _record(info: strawberry.Info, outcome: str, code: str | None) -> None:
    context: Any = info.context
    runtime: Any = getattr(context, "runtime", None)
    outbox = getattr(runtime, "outbox_model", None)
    if runtime is None or outbox is None:
        return
    identity: Any = getattr(context, "identity", None)
    request: Any = getattr(context, "request", None)
    ip: str | None = None
    agent: str | None = None
    if request is not None:
        settings: Any = runtime.settings
        secret: Any = getattr(settings, "client_ip_secret", None)
        headers: Any = request.headers
        peer: Any = request.client.host if request.client else None
        ip = client_ip(
            headers,
            peer,
            trusted_proxies=str(getattr(settings, "trusted_proxies", "") or ""),
            secret=secret.get_secret_value() if secret is not None else None,
        )
        agent = headers.get("user-agent")
    data: dict[str, Any] = {
        "operation": info.field_name,
        "outcome": outcome,
        "ip": ip,
        "userAgent": agent[:512] if isinstance(agent, str) else None,
        "actorKind": getattr(identity, "kind", None),
        "actorName": getattr(identity, "username", None),
    }
    if code is not None:
        data["error"] = code
    envelope = EventEnvelope(
        type=f"{runtime.name}.{MUTATION_EVENT}",
        source=str(runtime.name),
        actor=getattr(identity, "subject", None),
        data=data,
    )
    try:
        await record_event(outbox, envelope)
    except Exception as exc:  # the mutation's own result stands; the gap is logged
        log.warning("mutation audit record failed", operation=info.field_name, error=type(exc).__name__)


def audit_mutations(mutation: type | None) -> None:
    """Add :class:`AuditedMutation` (outermost) to every field of the root mutation type."""
    if mutation is None:
        return
    definition: Any = getattr(mutation, "__strawberry_definition__", None)
    if definition is None:
        return
    for field in definition.fields:
        if not any(isinstance(e, AuditedMutation) for e in field.extensions):
            field.extensions.append(AuditedMutation())
