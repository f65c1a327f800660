"""The one place that leans on Snakemake internals (guarded by tests/test_snakemake_internals.py).

Under ``--default-storage-provider`` Snakemake rewrites every relative path to a storage
object, except paths already flagged ``path_modified`` (``PathModifier.modify`` returns
them untouched). ``local()`` would keep the path too, but a job with a ``local()`` file is
always run on the local machine when there is no shared file system, never submitted.
"""

from __future__ import annotations

import logging
from typing import Any


def keep_local_path(path: Any) -> Any:
    from snakemake.io import flag
    from snakemake.path_modifier import PATH_MODIFIER_FLAG

    return flag(path, PATH_MODIFIER_FLAG, True)


def named_list(kind: str, items: list[tuple[str | None, Any]]) -> Any:
    """A Snakemake Namedlist (what ``{input}``, ``{input.x}`` format from) holding in-job paths,
    with the job's names: a name given to several items becomes a slice, so ``{input.x}`` of
    a multi-file input is the space-joined paths, as in Snakemake."""
    from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params

    cls = {"input": InputFiles, "output": OutputFiles, "log": Log, "params": Params}[kind]
    nl = cls()
    spans: dict[str, list[int]] = {}
    for i, (name, value) in enumerate(items):
        nl.append(value)
        if name is not None:
            spans.setdefault(name, []).append(i)
    for name, idx in spans.items():
        if len(idx) == 1:
            nl._set_name(name, idx[0])
        else:
            nl._set_name(name, idx[0], idx[-1] + 1)
    return nl


def is_forced(workflow: Any, job: Any) -> bool:
    """Whether the user forced this job (``-F``, ``--forcerun``, ``-f``): then a finished
    SageMaker job of the same identity must not be reused in its place."""
    try:
        return bool(workflow.dag.reason(job).forced)
    except AttributeError:  # an interface without reasons: reusing nothing is the safe side
        return True


def preemptible_retries(job: Any) -> int | None:
    """``--preemptible-retries`` when the rule is among ``--preemptible-rules``, else None."""
    settings = job.rule.workflow.remote_execution_settings
    rules = getattr(settings, "preemptible_rules", None)
    if rules is not None and rules.is_preemptible(job.rule.name):
        return settings.preemptible_retries
    return None


def named_items(namedlist: Any) -> tuple[tuple[str | None, Any], ...]:
    """``(name or None, item)`` of a Snakemake Namedlist (job.input, job.output, job.params):
    its names live in the private ``_names`` (name → (start, end))."""
    names: dict[int, str] = {}
    for name, (start, end) in namedlist._names.items():
        for i in range(start, end if end is not None else start + 1):
            names[i] = name
    return tuple((names.get(i), value) for i, value in enumerate(namedlist))


class _NoEmptyShellCommand(logging.Filter):
    """Drops the ``Shell command: None`` record of a job without a ``shell:`` body."""

    def filter(self, record: logging.LogRecord) -> bool:
        from snakemake_interface_logger_plugins.common import LogEvent

        empty = getattr(record, "shellcmd", "") is None
        return not (getattr(record, "event", None) == LogEvent.SHELLCMD and empty)


def hide_empty_shell_commands() -> None:
    """Every job Snakemake hands an executor is printed by ``Job.log_info``, which logs
    ``f"Shell command: {self.shellcmd}"`` (LogEvent.SHELLCMD) even for a ``script:`` rule,
    whose shellcmd is None; with ``--printshellcmds`` (Snakemake's default) the line is shown.
    A filter on Snakemake's logger drops just those records (idempotent)."""
    from snakemake.logging import logger

    if not any(isinstance(f, _NoEmptyShellCommand) for f in logger.filters):
        logger.addFilter(_NoEmptyShellCommand())
