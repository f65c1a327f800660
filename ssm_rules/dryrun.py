"""``snakemake -n`` with ``--executor sagemaker``: the real run's checks, and the plan printed.

Installed by the logger plugin (``snakemake_logger_plugin_sagemaker``) as a filter on
Snakemake's logger. Snakemake logs the DAG's job counts (event RUN_INFO) once the DAG is
built and before the dry-run executor lists the jobs; a logging filter runs in the caller's
thread, so the filter sees the finished DAG, and an error it raises leaves ``snakemake -n``
the way any WorkflowError does: printed, exit status 1, nothing listed as if it would run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ssm_rules._snakemake_internals import (
    all_jobs,
    dry_run_target,
    executed_by,
    job_reason,
    needrun_in_order,
    snakemake_logger,
)
from ssm_rules.backends.context import RunContext
from ssm_rules.backends.registry import run_context
from ssm_rules.history import History
from ssm_rules.plan import check_budget, check_jobs, render
from ssm_rules.pricing import Prices, load
from ssm_rules.settings import ExecutorSettings

EXECUTOR = "sagemaker"


def run_prices(ctx: RunContext) -> Prices:
    """The aws backend refreshes a week-old price list; the local backend costs nothing and
    calls no AWS API: it prices "would cost" from the cache alone."""
    return load(ctx.region, refresh=ctx.backend_name == "aws")


def plan_context(settings: ExecutorSettings, workdir: Path, logger: Any) -> RunContext:
    """The run's context. On AWS a dry run makes read-only calls only (STS, never a bucket
    created); without credentials the checks that need none still run and fail as in the real
    run (region, role, VPC settings), and the rest is said to be unchecked."""
    if settings.backend == "local":
        return run_context(settings, workdir)
    from ssm_rules import aws_clients
    from ssm_rules.backends.aws import context as aws
    from ssm_rules.backends.aws.service import AwsBackend
    from ssm_rules.backends.aws.validation import RequestValidator

    region = aws.resolve_region(settings)
    # None: the run makes (or reuses) the role of least privilege under this name
    role = aws.require_role(settings) or settings.role_name or f"ssm-rules-{region}"
    aws.require_network(settings)
    identity = None
    try:
        aws.require_credentials(region)
        identity = aws.caller_identity(region)
    except aws.AwsSetupError as e:
        logger.warning(f"SageMaker plan: the account, role and bucket are not checked: {e}")
    account = identity.account if identity else "000000000000"
    if identity is not None:
        role_arn = aws.role_arn(role, identity)
    else:
        role_arn = role if role.startswith("arn:") else f"arn:aws:iam::{account}:role/{role}"
    bucket = settings.bucket or aws.default_bucket(region, account)
    if identity is not None:  # another account's bucket fails here as in the run
        s3 = aws_clients.client("s3", region)
        if aws.ensure_bucket(s3, bucket, region, account, create=False):
            logger.info(f"SageMaker plan: bucket {bucket} does not exist yet; the run creates it")
    return RunContext(
        backend_name="aws",
        backend=AwsBackend.for_region(region, logger=logger),
        root=aws.root_uri(bucket, settings.prefix),
        region=region,
        role_arn=role_arn,
        kms_key=settings.kms_key,
        subnets=tuple(settings.subnet_list),
        security_groups=tuple(settings.security_group_list),
        validate=RequestValidator(warn=logger.warning),
        account=account,
    )


def plan_workflow(workflow: Any, settings: ExecutorSettings, logger: Any) -> None:
    """Check every job to run as the real run does, print the plan, hold the budget."""
    ctx = plan_context(settings, Path.cwd(), logger)
    dag = workflow.dag
    # in the order they can run: what each waits for is listed above it
    needrun = needrun_in_order(dag)
    planned = check_jobs(dag, ctx, settings, jobs=needrun, reason=job_reason)
    prices = run_prices(ctx)
    local = sum(1 for job in needrun if job.is_local)
    skipped = len(all_jobs(dag)) - len(needrun)
    history = History(ctx.backend, ctx.backend_name)
    lines = render(
        planned, prices, ctx.backend_name, ctx.region, skipped, local, history.median_seconds
    )
    for line in lines:
        logger.info(line)
    if ctx.backend_name == "aws" and not settings.role and planned:
        for line in role_policy_lines(ctx, settings, planned):
            logger.info(line)
    check_budget(planned, prices, settings.max_cost)


def role_policy_lines(ctx: RunContext, settings: ExecutorSettings, planned: list[Any]) -> list[str]:
    """The policy the run gives the role it manages (no --sagemaker-role), as it will be
    written: what the plan's jobs read and write, and nothing else."""
    import json

    from ssm_rules.backends.aws import iam

    partition = ctx.role_arn.split(":")[1] or "aws"
    base = iam.Access(ctx.region, ctx.account, partition, frozenset(), frozenset({ctx.root}))
    listed = [p.uri for job in planned for ch in job.spec.channels for p in ch.parts if p.uri]
    access = iam.access_of([job.request.body for job in planned], base, listed)
    name = ctx.role_arn.split(":role/", 1)[-1]
    document = json.dumps(iam.policy_document(access), indent=2)
    return [f"SageMaker role {name} (managed by ssm_rules) gets this policy:", document]


class PlanFilter(logging.Filter):
    """Acts once, on the first RUN_INFO record of a dry run with our executor."""

    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def filter(self, record: logging.LogRecord) -> bool:
        from snakemake_interface_logger_plugins.common import LogEvent

        if self.done or getattr(record, "event", None) != LogEvent.RUN_INFO:
            return True
        self.done = True  # before planning: the plan's own log lines pass straight through
        target = dry_run_target()
        if target is None:
            return True
        workflow, executor, settings = target
        if executor != EXECUTOR:
            return True
        if not isinstance(settings, ExecutorSettings):
            settings = ExecutorSettings()
        with executed_by(workflow, EXECUTOR):
            plan_workflow(workflow, settings, logging.getLogger("snakemake.logging"))
        return True


def install() -> None:
    logger = snakemake_logger()
    if not any(isinstance(f, PlanFilter) for f in logger.filters):
        logger.addFilter(PlanFilter())
