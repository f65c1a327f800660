"""The one place that leans on Snakemake internals (guarded by tests/test_snakemake_internals.py).

Under ``--default-storage-provider`` Snakemake rewrites every relative path to a storage
object, except paths already flagged ``path_modified`` (``PathModifier.modify`` returns
them untouched). ``local()`` would keep the path too, but a job with a ``local()`` file is
always run on the local machine when there is no shared file system, never submitted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


def job_reason(job: Any) -> str:
    """Snakemake's reason to run the job ("Missing output files: ...")."""
    try:
        return str(job.dag.reason(job))
    except (AttributeError, KeyError):
        return ""


def dry_run_target() -> tuple[Any, str | None, Any] | None:
    """``(workflow, executor name, executor settings)`` of the ``snakemake -n`` in progress,
    read off the call stack, or None outside one.

    Snakemake 9 runs a dry run with its own "dryrun" executor: ours is never instantiated and
    the Workflow gets no executor settings (``Workflow.execute(executor_settings=None)``).
    The settings parsed from the command line stay a local of ``DAGApi.execute_workflow``,
    and the workflow is ``self`` of ``Workflow.execute``, both callers of the log call that
    the plan hook intercepts (a logging filter runs in the caller's thread).
    """
    import sys

    from snakemake.workflow import Workflow

    workflow, executor, settings = None, None, None
    frame = sys._getframe(1)
    while frame is not None:
        local = frame.f_locals
        if workflow is None and isinstance(local.get("self"), Workflow):
            workflow = local["self"]
        if frame.f_code.co_name == "execute_workflow" and "pseudo_executor" in local:
            executor, settings = local.get("executor"), local.get("executor_settings")
            break
        frame = frame.f_back
    if workflow is None or executor is None:
        return None
    return workflow, executor, settings


@contextlib.contextmanager
def executed_by(workflow: Any, executor: str) -> Iterator[None]:
    """Within: the workflow decides as if ``executor`` ran it. In a dry run Snakemake's own
    "dryrun" executor is local, so ``job.is_local`` is true of every job; swapping the plugin
    back for the plan makes localrules and ``local()`` files decide exactly as in the run."""
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    saved = workflow._executor_plugin  # behind the read-only property ``executor_plugin``
    workflow._executor_plugin = ExecutorPluginRegistry().get_plugin(executor)
    try:
        yield
    finally:
        workflow._executor_plugin = saved
