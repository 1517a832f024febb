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
from opsconductor_audit.service.exports import checkpoint_of, export_events, get_export, prune_exports
from opsconductor_audit.service.ingest import Ingestor
from opsconductor_audit.service.legacy import LegacyAuditImport, import_legacy_audit_log
from opsconductor_audit.service.mapping import OUTCOMES, RULES, SEVERITIES, SUBJECT_TYPES, draft_of
from opsconductor_audit.service.own import record, record_chain_broken
from opsconductor_audit.service.reports import KINDS, create_report
from opsconductor_audit.service.retention import Policy, RetentionResult, apply_retention
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
    "KINDS",
    "OUTCOMES",
    "RULES",
    "SEVERITIES",
    "SUBJECT_TYPES",
    "Alerting",
    "AuditQuery",
    "Deps",
    "Draft",
    "Ingestor",
    "LegacyAuditImport",
    "Page",
    "Policy",
    "RetentionResult",
    "Signer",
    "Verification",
    "append",
    "apply_retention",
    "canonical",
    "chain_hash",
    "checkpoint_of",
    "checkpoint_record",
    "checkpoint_statement",
    "create_report",
    "draft_of",
    "ensure_head",
    "export_events",
    "get_event",
    "get_export",
    "head",
    "health",
    "import_legacy_audit_log",
    "last_checkpoint",
    "load_events",
    "page",
    "prune_exports",
    "record",
    "record_chain_broken",
    "record_of",
    "statistics",
    "take_checkpoint",
    "user_trail",
    "verify_chain",
    "verify_records",
]
