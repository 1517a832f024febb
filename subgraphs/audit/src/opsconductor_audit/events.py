"""Event names: what audit consumes (every ``opsc.events.<source>`` stream, all types) and the
``audit.*`` types of its own actions, appended to the chain directly (not through the bus).

Audit publishes nothing on the bus yet; the outbox exists for the alerting half (``Outbox``).
"""

from __future__ import annotations

SOURCE = "audit"

EXPORTED = "audit.exported"
REPORT_CREATED = "audit.report_created"
CHAIN_VERIFIED = "audit.chain_verified"
CHAIN_BROKEN = "audit.chain_broken"
RETENTION_ARCHIVED = "audit.retention_archived"
LEGACY_IMPORTED = "audit.legacy_imported"
LEGACY_ENTRY = "legacy.audit_entry"
"""The type prefix of imported legacy entries is ``legacy.<event_type>``; this is the fallback."""
