"""The plan check: every job a run will submit, validated before any is, in a run and in a
dry run (``-n``) alike, so that a typo in the last rule never surfaces hours into the run.

The executor adds the request check (image resolved, botocore's model) and the storage
bucket; a dry run stays offline: no AWS call, only what the rules say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules._snakemake_internals import runs_here_by_rule
from ssm_rules.jobview import JobView, view_of
from ssm_rules.settings import ExecutorSettings
from ssm_rules.spec import TaskSpec, build_spec


def spec_of(
    view: JobView, settings: ExecutorSettings, workflow: Any, plan: bool = False
) -> TaskSpec:
    return build_spec(
        view,
        backend=settings.backend,
        default_instance_type=settings.instance_type,
        plan=plan,
        # names given to --resources limit how many jobs run at once: a rule may use them
        declared_resources=frozenset(workflow.global_resources),
    )


def plan_errors(dag: Any, check: Callable[[JobView], None]) -> dict[str, str]:
    """Rule name → the error of its first job that ``check`` refuses, over the needrun jobs
    that are to be SageMaker jobs (not ``localrules``, not bodiless)."""
    workflow = dag.workflow
    errors: dict[str, str] = {}
    for job in dag.needrun_jobs():
        if runs_here_by_rule(workflow, job.rule) or job.rule.name in errors:
            continue
        try:
            view = view_of(job)
            local_files = any(i.flags.get("local") for i in (*view.inputs, *view.outputs))
            if local_files and view.body not in ("shell", "script"):
                continue  # a run: rule with local() files: Snakemake runs it here, as it must
            # A job with a local() file is never handed to the executor (Snakemake runs it
            # here, Job.is_local without a shared FS): build_spec refuses it
            check(view)
        except WorkflowError as e:
            errors[job.rule.name] = str(e)
    return errors


def refusal(errors: dict[str, str], dry_run: bool = False) -> WorkflowError:
    what = "this plan cannot run" if dry_run else "nothing was submitted"
    return WorkflowError(
        f"{what}: {len(errors)} rule(s) cannot run as SageMaker jobs:\n"
        + "\n".join(errors.values())
    )


def check_dry_run(settings: ExecutorSettings, dag: Any) -> None:
    """``snakemake -n`` with the sagemaker executor: the rules' checks, offline (no AWS
    call: a dry run must work without credentials)."""
    workflow = dag.workflow
    storage = workflow.storage_settings
    if settings.backend == "aws" and storage.default_storage_prefix:
        from ssm_rules.backends.aws.context import storage_prefix_problem

        problem = storage_prefix_problem(storage.default_storage_prefix)
        if problem:
            raise WorkflowError(problem)

    def check(view: JobView) -> None:
        spec_of(view, settings, workflow, plan=True)

    errors = plan_errors(dag, check)
    if errors:
        raise refusal(errors, dry_run=True)
