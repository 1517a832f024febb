"""Jobs domain logic: validate a definition, resolve its targets, store, version, plan, delete.

No strawberry here. Functions write; the resolver owns the transaction. Targets are checked
and resolved through a :class:`TargetDirectory` (the targets subgraph in production, held in
:class:`Deps`) *before* the resolver opens its transaction, so no database transaction waits on
another service.

A definition moves through three shapes: a ``JobDraft`` (what the caller sent), a ``ValidJob``
(checked, defaults applied; its steps and policy are the run plan's ``Step`` / ``Policy``; also
what a version snapshot stores) and, for a run, a ``Plan``: a ``runplan.RunPlan`` (parameters
substituted, targets resolved) with the dangerous-command findings beside it.

Modules: ``definition`` (the shapes, snapshots), ``validation`` (limits, ``validate_job``),
``directory`` (the targets subgraph), ``planning`` (render, scan, ``plan_job``), ``store``
(writes and reads), ``render`` / ``danger`` / ``paramguard`` (pure: quoting, dangerous-command
rules, checks on parameter values).
"""

from opsconductor_jobs.service.definition import (
    JobDraft,
    PolicyDraft,
    ScriptDraft,
    SelectorDraft,
    StepDraft,
    TransferDraft,
    ValidJob,
    draft_from_valid,
    load_policy,
    load_step,
    valid_from_model,
)
from opsconductor_jobs.service.deps import Deps
from opsconductor_jobs.service.directory import (
    TargetDirectory,
    TargetsSubgraph,
    check_targets,
    resolve_targets,
)
from opsconductor_jobs.service.planning import (
    Plan,
    check_definition,
    check_rendered,
    danger_texts,
    find_dangerous,
    plan_job,
    preview_dangerous,
    render_step,
    scan_in_thread,
)
from opsconductor_jobs.service.render import ParameterDef
from opsconductor_jobs.service.store import (
    JobPage,
    create_job,
    delete_job,
    ensure_counters,
    get_job,
    job_versions,
    list_jobs,
    live_job,
    update_job,
)
from opsconductor_jobs.service.validation import (
    COMMAND_MAX_BYTES,
    SCRIPT_MAX_BYTES,
    validate_job,
)

__all__ = [
    "COMMAND_MAX_BYTES",
    "SCRIPT_MAX_BYTES",
    "Deps",
    "JobDraft",
    "JobPage",
    "ParameterDef",
    "Plan",
    "PolicyDraft",
    "ScriptDraft",
    "SelectorDraft",
    "StepDraft",
    "TargetDirectory",
    "TargetsSubgraph",
    "TransferDraft",
    "ValidJob",
    "check_definition",
    "check_rendered",
    "check_targets",
    "create_job",
    "danger_texts",
    "delete_job",
    "draft_from_valid",
    "ensure_counters",
    "find_dangerous",
    "get_job",
    "job_versions",
    "list_jobs",
    "live_job",
    "load_policy",
    "load_step",
    "plan_job",
    "preview_dangerous",
    "render_step",
    "resolve_targets",
    "scan_in_thread",
    "update_job",
    "valid_from_model",
    "validate_job",
]
