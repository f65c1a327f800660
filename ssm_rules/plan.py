"""The SageMaker plan of a run: every job checked as it will be sent, its cost bounded.

The real run (before its first job) and ``snakemake -n`` refuse the same rules with the same
checks: under ``-n`` the rule checks run offline from a hook on Snakemake's DAG (installed by
the executor settings), and the logger plugin ``snakemake_logger_plugin_sagemaker`` (named
in both profiles) builds and validates every request, prices it and prints the plan.

Worst case of a job = on-demand price x MaxRuntimeInSeconds x InstanceCount: SageMaker bills
each instance for at most MaxRuntimeInSeconds (the training/processing time, never the spot
wait), and a spot job is never billed more than on-demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules._snakemake_internals import declared_resources, needrun_jobs, runs_here_by_rule
from ssm_rules.backends.base import JobType
from ssm_rules.backends.context import RunContext
from ssm_rules.group import group_spec, members_in_order
from ssm_rules.jobview import JobView, view_of
from ssm_rules.placing import placement
from ssm_rules.pricing import Prices
from ssm_rules.requests import build_request
from ssm_rules.settings import ExecutorSettings
from ssm_rules.spec import Instance, TaskSpec, build_spec
from ssm_rules.warm_pools import plan_of_jobs, with_keep_alive


def spec_of(
    view: JobView, settings: ExecutorSettings, workflow: Any, plan: bool = False
) -> TaskSpec:
    return build_spec(
        view,
        backend=settings.backend,
        default_instance_type=settings.instance_type,
        plan=plan,
        # names given to --resources limit how many jobs run at once: a rule may use them
        declared_resources=declared_resources(workflow),
    )


def plan_errors(
    dag: Any,
    check: Callable[[Any, JobView], None],
    jobs: Iterable[Any] | None = None,
    check_group: Callable[[Any, TaskSpec], None] | None = None,
    spec: Callable[[JobView], TaskSpec] | None = None,
) -> dict[str, str]:
    """Rule name → the error of its first job that ``check(job, view)`` refuses, over the
    needrun jobs (or ``jobs``) that are to be SageMaker jobs (not ``localrules``, not
    bodiless). With ``spec`` (a job's TaskSpec), each ``group:`` of them, which runs as one
    job, is checked too (ssm_rules.group: its members must agree), and ``check_group(group
    job, member specs)`` gets those that pass: "group <name>" → its error."""
    workflow = dag.workflow
    errors: dict[str, str] = {}
    jobs = list(needrun_jobs(dag) if jobs is None else jobs)
    for job in jobs:
        if runs_here_by_rule(workflow, job.rule) or job.rule.name in errors:
            continue
        try:
            view = view_of(job)
            local_files = any(i.flags.get("local") for i in (*view.inputs, *view.outputs))
            if local_files and view.body not in ("shell", "script"):
                continue  # a run: rule with local() files: Snakemake runs it here, as it must
            # A job with a local() file is never handed to the executor (Snakemake runs it
            # here, Job.is_local without a shared FS): build_spec refuses it
            check(job, view)
        except WorkflowError as e:
            errors[job.rule.name] = str(e)
    if spec is not None:
        errors.update(_group_errors(dag, jobs, errors, spec, check_group))
    return errors


def _group_errors(
    dag: Any,
    jobs: list[Any],
    errors: dict[str, str],
    spec: Callable[[JobView], TaskSpec],
    check_group: Callable[[Any, TaskSpec], None] | None,
) -> dict[str, str]:
    found: dict[str, str] = {}
    seen: set[int] = set()
    for job in jobs:
        group = dag.get_job_group(job)
        if group is None or id(group) in seen or f"group {group.groupid}" in found:
            continue
        seen.add(id(group))
        members = members_in_order(group)
        if any(m.rule.name in errors for m in members):
            continue  # its rules' own errors say it already
        try:
            specs = [spec(view_of(m)) for m in members]
            combined = group_spec(group.groupid, specs)
            if check_group is not None:
                check_group(group, combined)
        except WorkflowError as e:
            found[f"group {group.groupid}"] = str(e)
    return found


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

    def spec(view: JobView) -> TaskSpec:
        return spec_of(view, settings, workflow, plan=True)

    errors = plan_errors(dag, lambda job, view: spec(view), spec=spec)
    if errors:
        raise refusal(errors, dry_run=True)


@dataclass(frozen=True)
class PlannedJob:
    """One SageMaker job the run will start, as checked."""

    spec: TaskSpec
    image: str
    wildcards: dict[str, str]
    reason: str  # Snakemake's reason to run it
    request: Any = None  # the Create*Job request as it will be sent (JobRequest)

    @property
    def rule(self) -> str:
        return self.spec.rule

    @property
    def instance_hours(self) -> float:
        return worst_instance_hours(self.spec)


def worst_instance_hours(spec: TaskSpec) -> float:
    """Worst case: every instance runs for MaxRuntimeInSeconds, then idles in its warm pool
    (billed) for the whole keep-alive, no job taking it."""
    inst = spec.instance
    return (inst.max_run_seconds + inst.keep_alive_seconds) * inst.count / 3600


def worst_cost(spec: TaskSpec, prices: Prices) -> float | None:
    price = prices.price(spec.job_type, spec.instance.instance_type)
    return None if price is None else price * worst_instance_hours(spec)


def check_jobs(
    dag: Any,
    ctx: RunContext,
    settings: ExecutorSettings,
    jobs: Iterable[Any] | None = None,
    reason: Callable[[Any], str] = lambda job: "",
) -> list[PlannedJob]:
    """Every job to submit (``jobs``, default the DAG's needrun jobs), its spec built and
    its request validated as the run sends it (its image resolved, the identity tags of the
    submit); nothing is uploaded. All rules' errors at once, none submitted."""
    from ssm_rules.identity import identity, identity_tags

    # (its Snakemake jobs: one, or a group's members; spec; placement; request)
    checked: list[tuple[list[Any], TaskSpec, Any, Any]] = []

    def plan(jobs: list[Any], spec: TaskSpec) -> None:
        tags = identity_tags(spec, identity(spec, "", {}))  # as long as the real ones
        place = placement(ctx, spec, tags=tags, plan=True)
        request = build_request(spec, place)
        ctx.validate(request)
        checked.append((jobs, spec, place, request))

    def check(job: Any, view: JobView) -> None:
        spec = spec_of(view, settings, dag.workflow, plan=True)
        if dag.get_job_group(job) is None:  # a group's member: its group's job is planned
            plan([job], spec)

    def check_group(group: Any, spec: TaskSpec) -> None:
        plan(members_in_order(group), spec)

    errors = plan_errors(
        dag,
        check,
        jobs,
        check_group=check_group,
        spec=lambda view: spec_of(view, settings, dag.workflow, plan=True),
    )
    if errors:
        raise refusal(errors)
    # the warm pools of the chains among them: the keep-alive each request is sent with
    pools = plan_of_jobs([(jobs, spec, request) for jobs, spec, _, request in checked])
    planned = []
    for jobs, spec, place, _ in checked:
        spec = with_keep_alive(spec, pools[spec.task_id].keep_alive_seconds)
        request = build_request(spec, place)
        planned.append(
            PlannedJob(spec, place.image_uri, dict(spec.wildcards), reason(jobs[0]), request)
        )
    return planned


def check_budget(planned: list[PlannedJob], prices: Prices, max_cost: float | None) -> None:
    """Refuse a plan whose worst case exceeds ``--sagemaker-max-cost``, or that cannot be
    priced (a budget that cannot be checked must not pass silently)."""
    if max_cost is None or not planned:
        return
    unpriced = sorted(
        {
            f"{p.spec.job_type} on {p.spec.instance.instance_type}"
            for p in planned
            if worst_cost(p.spec, prices) is None
        }
    )
    if unpriced:
        why = prices.unavailable or "not in the AWS Price List"
        raise WorkflowError(
            f"nothing was submitted: --sagemaker-max-cost {max_cost:g} cannot be checked: no "
            f"on-demand price for {', '.join(unpriced)} ({why}); run once with AWS credentials "
            "to fetch the price list, or leave out --sagemaker-max-cost"
        )
    by_rule: dict[str, float] = {}
    for p in planned:
        by_rule[p.rule] = by_rule.get(p.rule, 0.0) + (worst_cost(p.spec, prices) or 0.0)
    total = sum(by_rule.values())
    if total > max_cost:
        costliest = sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        raise WorkflowError(
            f"nothing was submitted: the plan's worst case is ${total:.2f}, over "
            f"--sagemaker-max-cost {max_cost:g}; costliest rules: "
            + ", ".join(f"{rule} ${cost:.2f}" for rule, cost in costliest)
            + ". Lower their max_run_mins / instance_count, or raise --sagemaker-max-cost"
        )


# --- printing ---------------------------------------------------------------------------


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _money(cost: float | None, hours: float) -> str:
    if cost is None:
        return f"{hours:.2f} inst-h" if hours >= 0.01 or hours == 0 else "<0.01 inst-h"
    return f"${cost:.2f}" if cost >= 0.01 or cost == 0 else "<$0.01"


def _expected(spec: TaskSpec, prices: Prices, median: float | None) -> str:
    if median is None:
        return "-"
    hours = median * spec.instance.count / 3600
    price = prices.price(spec.job_type, spec.instance.instance_type)
    cost = _money(None if price is None else price * hours, hours)
    return f"{cost} ({median:.0f}s)"


def _spot(inst: Instance) -> str:
    """yes, no, or "no, keep-alive 5m00s": on-demand with a warm pool (ssm_rules.warm_pools)."""
    if inst.spot:
        return "yes"
    return (
        f"no, keep-alive {_duration(inst.keep_alive_seconds)}" if inst.keep_alive_seconds else "no"
    )


def render(
    planned: list[PlannedJob],
    prices: Prices,
    backend: str,
    region: str,
    skipped: int,
    local: int,
    median_seconds: Callable[[TaskSpec], float | None] = lambda spec: None,
) -> list[str]:
    """The plan as lines: a row per job, then the totals. ``median_seconds``: billable seconds
    per instance of earlier jobs like it (ssm_rules.history), for the expected cost."""
    would = "would cost" if backend == "local" else "worst case"
    head = ["rule", "wildcards", "type", "instances", "spot", "max run/wait", "volume"]
    head += ["image", would, "expected", "reason"]
    rows = [head]
    total_cost, total_hours, all_priced = 0.0, 0.0, True
    for p in planned:
        inst = p.spec.instance
        cost = worst_cost(p.spec, prices)
        all_priced = all_priced and cost is not None
        total_cost += cost or 0.0
        total_hours += p.instance_hours
        rows.append(
            [
                p.rule,
                ",".join(f"{k}={v}" for k, v in p.wildcards.items()) or "-",
                "training" if p.spec.job_type is JobType.TRAINING else "processing",
                f"{inst.count} x {inst.instance_type}",
                _spot(inst),
                f"{_duration(inst.max_run_seconds)}/{_duration(inst.max_wait_seconds)}",
                f"{inst.volume_gb} GB",
                p.image,
                _money(cost, p.instance_hours),
                _expected(p.spec, prices, median_seconds(p.spec)),
                p.reason or "-",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    if prices.table is not None:
        source = f"on-demand prices of {prices.table.region}, {prices.table.fetched.isoformat()}"
    else:
        source = f"no prices: {prices.unavailable}; instance-hours instead"
    lines = [f"SageMaker plan ({backend} backend, region {region}; {source}):"]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]
        lines.append("  " + "  ".join(cells))
    hours = f"{total_hours:.2f} instance-hours"
    if all_priced and planned:
        total = f"${total_cost:.2f} ({hours})"
    elif prices.table is not None and planned:
        total = f"{hours} (some instance types have no price)"
    else:
        total = hours
    lines.append(
        f"SageMaker plan total: {len(planned)} job(s) to run, {would} {total}; "
        f"{skipped} job(s) complete, skipped; {local} local job(s) run on this machine"
    )
    return lines
