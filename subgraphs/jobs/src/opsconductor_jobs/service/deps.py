"""The jobs service's collaborators, built once in ``app.py`` and held in ``runtime.deps``."""

from __future__ import annotations

from dataclasses import dataclass

from opsconductor_jobs.service import danger
from opsconductor_jobs.service.directory import TargetDirectory


@dataclass(frozen=True)
class Deps:
    targets: TargetDirectory
    """The targets subgraph (``TargetsSubgraph``): existence, selector matches, Windows targets."""
    rules: tuple[danger.Rule, ...]
    """The dangerous-command rules as configured (built-in minus disabled, plus site rules)."""
    scan_timeout_seconds: float
    """Bound of one request's rendering + dangerous-command scan (review C1)."""
