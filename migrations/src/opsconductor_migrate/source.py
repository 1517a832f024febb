"""Reading the legacy PostgreSQL database (read-only: one REPEATABLE READ transaction)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

__all__ = ["LEGACY_TABLES", "Source"]

# every table of LEGACY.md §1, in import order
LEGACY_TABLES = (
    "users",
    "user_sessions",
    "system_settings",
    "universal_targets",
    "target_communication_methods",
    "target_credentials",
    "jobs",
    "job_actions",
    "job_targets",
    "job_executions",
    "job_execution_results",
    "job_execution_branches",
    "job_action_results",
    "job_execution_logs",
    "job_schedules",
    "schedule_executions",
    "notification_templates",
    "notification_logs",
    "alert_rules",
    "alert_logs",
    "analytics_alert_rules",
    "discovery_jobs",
    "discovered_devices",
    "discovery_templates",
    "discovery_schedules",
    "device_types",
    "device_type_categories",
    "device_type_templates",
    "device_type_usage",
    "performance_metrics",
    "system_health_snapshots",
    "report_templates",
    "generated_reports",
    "celery_task_history",
    "celery_metrics_snapshots",
)


JSON_COLUMNS = {"config", "action_parameters", "action_config", "log_details", "setting_value"}


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class Source:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None
        self.present: set[str] = set()
        self.columns: dict[str, set[str]] = {}

    async def open(self) -> None:
        conn = self.conn = await asyncpg.connect(self.dsn)
        self.tx = conn.transaction(isolation="repeatable_read", readonly=True)
        await self.tx.start()
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        )
        for r in rows:
            self.columns.setdefault(r["table_name"], set()).add(r["column_name"])
        self.present = set(self.columns)

    async def close(self) -> None:
        if self.conn is not None:
            await self.tx.rollback()
            await self.conn.close()

    async def rows(self, table: str) -> list[dict[str, Any]] | None:
        """Every row of a legacy table, ordered by id (None: the table is not in this database)."""
        assert self.conn is not None
        if table not in self.present:
            return None
        order = " ORDER BY id" if "id" in self.columns[table] else ""
        # table names come from LEGACY_TABLES only, never from input
        records = await self.conn.fetch(f'SELECT * FROM "{table}"{order}')  # noqa: S608
        return [{k: _json(v) if k in JSON_COLUMNS else v for k, v in r.items()} for r in records]
