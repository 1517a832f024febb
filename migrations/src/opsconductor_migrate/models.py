"""The migration's own database (``migrate``: ``.data/migrate.sqlite`` by default, or
``OPSC_MIGRATE_DATABASE_URL``): legacy rows no service has a feature for yet, kept verbatim.

System settings, notification templates and logs, alert rules and logs, device-type extras,
discovery data, analytics and Celery history go here, one row per legacy row, until the service
that will own them exists and imports them from this archive.
"""

from __future__ import annotations

from tortoise import fields, models


class LegacyArchive(models.Model):
    id = fields.CharField(max_length=120, primary_key=True)  # "<table>:<legacy id>"
    table = fields.CharField(max_length=60, db_index=True)
    legacy_id = fields.CharField(max_length=60)
    data = fields.JSONField()
    checksum = fields.CharField(max_length=64)  # sha256 of the canonical JSON of data
    imported_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "legacy_archive"
