"""The one place that leans on Snakemake internals (guarded by tests/test_snakemake_internals.py).

Everything ssm_rules reads of Snakemake beyond the executor/storage/logger plugin interfaces
(``snakemake_interface_*``) is read here: rule bodies, job params and wildcards, the DAG's
needrun jobs, private attributes of Workflow and Namedlist, ``snakemake.*`` imports.

Under ``--default-storage-provider`` Snakemake rewrites every relative path to a storage
object, except paths already flagged ``path_modified`` (``PathModifier.modify`` returns
them untouched). ``local()`` would keep the path too, but a job with a ``local()`` file is
always run on the local machine when there is no shared file system, never submitted.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def keep_local_path(path: Any) -> Any:
    from snakemake.path_modifier import PATH_MODIFIER_FLAG

    return flagged(path, PATH_MODIFIER_FLAG, True)


def flagged(path: Any, name: str, value: Any = True) -> Any:
    """``path`` with a flag Snakemake carries into the job (``snakemake.io.flag``: the flags
    of a Snakefile's ``temp()``, ``directory()``, ... are a free-form dict on the path)."""
    from snakemake.io import flag

    return flag(path, name, value)


def directory_output(path: str) -> Any:
    """Snakefile's ``directory(path)``, from Python code (``snakemake.io.directory``)."""
    from snakemake.io import directory

    return directory(path)


@dataclass(frozen=True)
class RuleBody:
    """What a rule runs: ``kind`` is shell | script | notebook | wrapper | none | run."""

    kind: str
    shell_template: str | None  # the shell: command before formatting
    script: str | None  # the script: path, its wildcards formatted for this job


def rule_body(job: Any) -> RuleBody:
    """The body of a single job's rule (``Rule.shellcmd``/``script``/``notebook``/``wrapper``,
    ``norun`` for a rule without one); the executor interface gives only the rule's name."""
    rule = job.rule
    if rule.shellcmd is not None:
        kind = "shell"
    elif rule.script is not None:
        kind = "script"
    elif rule.notebook is not None:
        kind = "notebook"
    elif rule.wrapper is not None:
        kind = "wrapper"
    elif getattr(rule, "norun", False):
        kind = "none"
    else:
        kind = "run"
    script = None
    if rule.script is not None:
        script = (
            str(job.format_wildcards(rule.script)) if "{" in str(rule.script) else str(rule.script)
        )
    return RuleBody(kind, rule.shellcmd, script)


def file_flags(f: Any) -> dict[str, Any]:
    """The flags Snakefile helpers put on a file (``_IOFile.flags``: ``temp``, ``directory``,
    ``local``, ours from ssm_rules.rules)."""
    return dict(getattr(f, "flags", {}) or {})


def storage_uri(f: Any) -> str | None:
    """The URI of a storage file (``_IOFile.storage_object.query``: ``s3://...``), None for a
    plain local file."""
    if getattr(f, "is_storage", False):
        return str(f.storage_object.query)
    return None


def job_wildcards(job: Any) -> dict[str, str]:
    """The job's wildcard values (``Job.wildcards_dict``)."""
    return dict(job.wildcards_dict)


def job_params(job: Any) -> tuple[tuple[str | None, Any], ...]:
    """The job's ``params:``, named (``Job.params``, a Namedlist)."""
    return named_items(job.params)


def needrun_jobs(dag: Any) -> list[Any]:
    """The jobs this run executes (``DAG.needrun_jobs()``)."""
    return list(dag.needrun_jobs())


def needrun_in_order(dag: Any) -> list[Any]:
    """The jobs this run executes, each after what it waits for (``DAG.toposorted``)."""
    return [job for level in dag.toposorted(set(dag.needrun_jobs())) for job in level]


def all_jobs(dag: Any) -> list[Any]:
    """Every job of the DAG, to run or already done (``DAG.jobs``)."""
    return list(dag.jobs)


def declared_resources(workflow: Any) -> frozenset[str]:
    """The names given to ``--resources`` (``Workflow.global_resources``)."""
    return frozenset(workflow.global_resources)


def snakemake_logger() -> Any:
    """Snakemake's logger (``snakemake.logging.logger``), to filter what it prints."""
    from snakemake.logging import logger

    return logger


def user_config_dir() -> Path:
    """Where Snakemake looks for ``--profile NAME`` after the working directory (the
    platformdirs lookup of ``snakemake.common.get_appdirs``)."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir)


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
    """Whether the user forced this job to run again (``-F``, ``-R``/``--forcerun`` of its
    rule or of one of its files, ``-f`` of a target): then a finished SageMaker job of the
    same identity must not be reused in its place.

    Not Snakemake's ``dag.reason(job).forced``: ``--rerun-incomplete`` puts the incomplete
    files into the same ``dag.forcefiles`` (``DAG.check_incomplete``), and a job rerun only
    because a killed client left its outputs incomplete must reuse the SageMaker job that
    completed, not pay for a second one. So the user's part is rebuilt here the way
    ``Workflow._prepare_dag`` builds it from ``dag_settings``."""
    try:
        dag = workflow.dag
        if job.rule in dag.forcerules and job not in dag.omitforce:
            return True  # -F (every rule), -R/--forcerun RULE, -f of a rule target
        if any(
            spec.rulename == job.rule.name and spec.wildcards_dict == dict(job.wildcards_dict)
            for spec in workflow.dag_settings.target_jobs
        ):
            return True  # --target-jobs: Snakemake forces their outputs (DAG.init)
        return not _user_forced_files(workflow).isdisjoint(job.output)
    except AttributeError:  # an interface without these: reusing nothing is the safe side
        return True


def _user_forced_files(workflow: Any) -> set[Any]:
    """The files of ``--forcerun FILE`` and, with ``-f``, every target file, as Snakemake
    names them in ``dag.forcefiles`` (relative to the working directory, then under the
    default storage provider)."""
    settings = workflow.dag_settings
    modify = workflow.modifier.path_modifier.apply_default_storage
    files: set[Any] = set(workflow.dag.targetfiles) if settings.forcetargets else set()
    for item in settings.forcerun:
        if workflow.is_rule(item):
            continue
        if not settings.target_files_omit_workdir_adjustment and not (
            os.path.isabs(item) or item.startswith("root://")
        ):
            item = os.path.relpath(item)
        files.add(modify(item))
    return files


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


def producer_flags(job: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Input path → (producing rule, flags of that rule's output), from the DAG.

    A flag set by a helper in the producing rule (``model(...)``, ``state(...)``) does not
    always survive into the consumer's input: ``rules.train.output.state`` or a plain string
    carry none in Snakemake 9. The producer's own output file does. ``dag.dependencies[job]``
    maps each producer job (run this time or not) to the files it gives this job.
    """
    deps = job.dag.dependencies.get(job, {})
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for producer, files in deps.items():
        for out in producer.output:
            if str(out) in files:
                found[str(out)] = (producer.rule.name, file_flags(out))
    return found


def dependency_edges(jobs: list[Any]) -> list[tuple[Any, Any]]:
    """(producer, consumer) for each pair of ``jobs`` where the consumer waits for the
    producer's output: ``dag.dependencies[consumer]`` maps each of its producer jobs to the
    files it gives."""
    wanted = set(jobs)
    return [
        (producer, job)
        for job in jobs
        for producer in job.dag.dependencies.get(job, {})
        if producer in wanted
    ]


def forget_storage_folders(job: Any) -> None:
    """A ``directory()`` output in storage that a remote job created: snakemake-storage-plugin-s3
    caches ``is_dir()`` on its storage object the first time it looks (before the job, when
    the folder is empty), so after the job Snakemake would report it missing. Forget that."""
    for f in job.output:
        if getattr(f, "is_storage", False) and (getattr(f, "flags", None) or {}).get("directory"):
            obj = f.storage_object
            if hasattr(obj, "_is_dir"):
                obj._is_dir = None


def guard_missing_scripts() -> None:
    """Snakemake 9's DAG check of ``script:`` bodies (``dag.ScriptProcessor``, run for ``-n``
    too, before any executor exists) means to say "Script ... not accessible", but reading
    the file first raises a bare FileNotFoundError: a 30-line traceback. Turn it into a
    WorkflowError naming the rule, the path and the fix. Idempotent."""
    import snakemake.api  # noqa: F401 — first: snakemake.dag alone is a circular import
    from snakemake.dag import ScriptProcessor
    from snakemake_interface_common.exceptions import WorkflowError

    original = ScriptProcessor.process_job
    if getattr(original, "_ssm_guarded", False):
        return

    def process_job(self: Any, job: Any) -> None:
        try:
            original(self, job)
        except FileNotFoundError as e:
            raise WorkflowError(
                f"rule {job.rule.name}: script {str(job.rule.script)!r} does not exist "
                f"(looked at {e.filename!r}): give its path relative to the Snakefile"
            ) from None

    process_job._ssm_guarded = True  # type: ignore[attr-defined]
    ScriptProcessor.process_job = process_job  # type: ignore[method-assign]


_dry_run_check: list[Any] = []  # the check of the latest settings (one per CLI process)
_dry_run_executor: list[str] = []  # the executor whose settings a dry run builds itself


def install_dry_run_check(check: Any) -> None:
    """Run ``check(dag)`` when a dry run (``-n``) has built its DAG. Snakemake never creates
    the chosen executor for ``-n`` (its "dryrun" executor plans instead, and gets no executor
    settings), so the executor's plan check cannot run there; the DAG processors do run
    (``DAG.postprocess``), once the needrun jobs are known: ScriptProcessor's pass is the hook.
    Installing again only replaces the check."""
    _dry_run_check[:] = [check]
    _patch_script_processor()


def build_settings_in_dry_runs(executor: str) -> None:
    """Snakemake 9.21 to 9.26 build no settings of the chosen executor for ``-n`` at all
    (``args_to_api`` builds the dryrun executor's), so the settings' own hooks
    (:func:`install_dry_run_check`, :func:`guard_missing_scripts`) would never be installed.
    Called when the plugin is imported by the ``snakemake`` command: a dry run of
    ``executor`` builds its settings from the command line (:func:`dry_run_target`) at the
    DAG's first processor pass, before any script is read. A no-op elsewhere, and on the
    releases that build the settings themselves."""
    import sys

    if "snakemake.cli" not in sys.modules:  # not the snakemake command: nothing to hook
        return
    _dry_run_executor[:] = [executor]
    _patch_script_processor()


def _patch_script_processor() -> None:
    import snakemake.api  # noqa: F401 — first: snakemake.dag alone is a circular import
    from snakemake.dag import DAGProcessorBase, ScriptProcessor

    if "process" in ScriptProcessor.__dict__:
        return

    def process(self: Any) -> None:
        try:
            dry = bool(self.dag.workflow.dryrun)
        except AttributeError:  # a DAG built without an executor (--list, --dag, ...)
            dry = False
        if dry and not _dry_run_check and _dry_run_executor:
            # building the settings installs their check (ExecutorSettings.__post_init__)
            dry_run_target()
        DAGProcessorBase.process(self)
        if type(self) is not ScriptProcessor:  # NotebookProcessor inherits it: once per pass
            return
        if dry and _dry_run_check:
            _dry_run_check[0](self.dag)

    ScriptProcessor.process = process  # type: ignore[method-assign]


def runs_here_by_rule(workflow: Any, rule: Any) -> bool:
    """Listed in ``localrules`` (or bodiless, or a template rule): what ``Workflow.is_local``
    says under a remote executor. Under ``-n`` that method answers True for every rule (the
    dryrun executor is local), so read the rule's own attributes, as it does."""
    return rule.group is None and (
        rule.name in workflow._localrules
        or getattr(rule, "norun", False)
        or getattr(rule, "is_template_engine", False)
    )


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
    logger = snakemake_logger()
    if not any(isinstance(f, _NoEmptyShellCommand) for f in logger.filters):
        logger.addFilter(_NoEmptyShellCommand())


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
    The workflow is ``self`` of ``Workflow.execute``, a caller of the log call that the plan
    hook intercepts (a logging filter runs in the caller's thread). Where the executor the
    user asked for is depends on the release:

    - up to 9.20, ``DAGApi.execute_workflow`` swaps in the dryrun executor itself and keeps
      the one asked for, and its parsed settings, as its locals ``executor`` and
      ``executor_settings`` (beside ``pseudo_executor``);
    - from 9.21, ``snakemake.cli.args_to_api`` overwrites ``args.executor`` with "dryrun"
      before anything is parsed: the one asked for (on the command line or in a profile) is
      what the same parser makes of the same command line, and its settings are parsed from
      ``args``, which holds every plugin's options whatever the executor.
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
        if frame.f_code.co_name == "args_to_api" and getattr(local.get("args"), "dryrun", False):
            if not _asked:  # once: the DAG's processor pass and the plan hook both ask
                _asked.append(_asked_executor(local["args"], local["parser"], frame.f_back))
            executor, settings = _asked[0]
            break
        frame = frame.f_back
    if workflow is None or executor is None:
        return None
    return workflow, executor, settings


_asked: list[tuple[str | None, Any]] = []  # what _asked_executor found (one per CLI process)


def _asked_executor(args: Any, parser: Any, caller: Any) -> tuple[str | None, Any]:
    """The executor a ``snakemake -n`` was given, and its settings (Snakemake >= 9.21)."""
    import sys

    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    argv = caller.f_locals.get("argv") if caller is not None else None
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:  # as snakemake.cli.parse_args: explicit targets after "--"
        argv = argv[: argv.index("--")]
    try:
        executor = parser.parse_args(argv).executor
    except SystemExit:  # it parsed once: not expected; no plan rather than no run
        return None, None
    registry = ExecutorPluginRegistry()
    if executor is None or not registry.is_installed(executor):
        return executor, None
    return executor, registry.get_plugin(executor).get_settings(args)


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
