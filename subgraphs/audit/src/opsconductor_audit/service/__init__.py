"""The audit domain: the chain (append, verify, checkpoints), ingest, search, exports,
retention, compliance reports and the legacy import.

Schema code calls ``service.x(...)``; the collaborators live in :class:`Deps` (built in app.py).
Extending (alerting, notifications, health): add modules here (``service/alerting/``,
``service/health.py``), their collaborators to :class:`Deps`, and subscribe rule evaluation to
``Deps.ingestor.listeners`` (called with every committed batch of chained events).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsconductor_audit.service import health
from opsconductor_audit.service.alerting import Alerting
from opsconductor_audit.service.canonical import (
    GENESIS,
    Verification,
    canonical,
    chain_hash,
    checkpoint_statement,
    verify_records,
)
from opsconductor_audit.service.chain import (
    Draft,
    append,
    checkpoint_record,
    ensure_head,
    head,
    last_checkpoint,
    record_of,
    take_checkpoint,
    verify_chain,
)
from opsconductor_audit.service.ingest import Ingestor
from opsconductor_audit.service.mapping import OUTCOMES, RULES, SEVERITIES, SUBJECT_TYPES, draft_of
from opsconductor_audit.service.own import record, record_chain_broken
from opsconductor_audit.service.search import (
    AuditQuery,
    Page,
    get_event,
    load_events,
    page,
    statistics,
    user_trail,
)
from opsconductor_audit.service.signing import Signer


@dataclass
class Deps:
    """The audit service's collaborators."""

    signer: Signer
    ingestor: Ingestor
    files_dir: Path
    alerting: Alerting
    """Alert rules on the committed events (``ingestor.listeners``), alerts, notifications."""
    health: health.HealthMonitor
    """systemHealth: every service's /ready, the router, the database, Redis and Ray."""


__all__ = [
    "GENESIS",
    "OUTCOMES",
    "RULES",
    "SEVERITIES",
    "SUBJECT_TYPES",
    "Alerting",
    "AuditQuery",
    "Deps",
    "Draft",
    "Ingestor",
    "Page",
    "Signer",
    "Verification",
    "append",
    "canonical",
    "chain_hash",
    "checkpoint_record",
    "checkpoint_statement",
    "draft_of",
    "ensure_head",
    "get_event",
    "head",
    "health",
    "last_checkpoint",
    "load_events",
    "page",
    "record",
    "record_chain_broken",
    "record_of",
    "statistics",
    "take_checkpoint",
    "user_trail",
    "verify_chain",
    "verify_records",
]
