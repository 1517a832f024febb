"""Models for the outbox tests: the shared abstract bases made concrete, as every service does."""

from __future__ import annotations

from opsconductor_shared.events import OutboxBase, ProcessedEventBase


class Outbox(OutboxBase):
    class Meta:
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:
        table = "processed_events"
