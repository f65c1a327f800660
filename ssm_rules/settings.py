"""``--sagemaker-*`` settings (also profile keys ``sagemaker-*``), validated before any call."""

# No "from __future__ import annotations": Snakemake builds the CLI from the real field types.
import functools
from dataclasses import dataclass, field
from typing import Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from ssm_rules.backends.registry import BACKENDS  # the names only: no backend is imported

DEFAULT_INSTANCE_TYPE = "ml.m5.large"
# AWS publishes no rate for CreateTrainingJob / CreateProcessingJob; users report SageMaker's
# control plane throttling at about 2 requests per second per account (ListTrainingJobs),
# and every Create of a run shares that account with whatever else runs there: 2 per second
# keeps a burst of submissions clear of throttling, and 50 jobs still go out in 25 s.
DEFAULT_MAX_SUBMIT_RATE = 2.0


def _meta(help: str, **extra: object) -> dict:
    return {"help": help, "env_var": False, "required": False, **extra}


def comma_list(value: str) -> tuple[str, ...]:
    """``"a, b,,c"`` → ``("a", "b", "c")``: the ids of a comma-separated setting."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _ids(help: str) -> dict:
    # Snakemake hands the option's string to parse_func and turns the value back into one
    # with unparse_func (snakemake_interface_common's plugin registry requires both).
    return _meta(help, parse_func=comma_list, unparse_func=",".join)


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    backend: str = field(
        default="local",
        metadata=_meta(
            "Where jobs run: 'local' runs each SageMaker request on this machine "
            "(no AWS, no Docker); 'aws' submits it to Amazon SageMaker.",
            choices=BACKENDS,  # argparse refuses another value, naming the choices
        ),
    )
    region: Optional[str] = field(
        default=None, metadata=_meta("AWS region (default: the boto3 session's region).")
    )
    role: Optional[str] = field(
        default=None,
        metadata=_meta(
            "IAM role the jobs run as: an ARN or a role name in this account, used as it is "
            "(default: a role ssm_rules creates with least privilege, see --sagemaker-role-name)."
        ),
    )
    role_name: Optional[str] = field(
        default=None,
        metadata=_meta(
            "Name of the role ssm_rules creates and keeps to what the workflow needs when "
            "--sagemaker-role is not given (default ssm-rules-<region>)."
        ),
    )
    bucket: Optional[str] = field(
        default=None,
        metadata=_meta(
            "S3 bucket for code, inputs and staging (default sagemaker-{region}-{account})."
        ),
    )
    prefix: str = field(
        default="ssm-rules",
        metadata=_meta("Key prefix in the bucket for everything ssm_rules writes."),
    )
    instance_type: str = field(
        default=DEFAULT_INSTANCE_TYPE,
        metadata=_meta("Instance type of rules that set no instance_type resource."),
    )
    poll_interval: Optional[int] = field(
        default=None,
        metadata=_meta(
            "Seconds between status rounds (default: Snakemake's --seconds-between-status-checks)."
        ),
    )
    max_submit_rate: float = field(
        default=DEFAULT_MAX_SUBMIT_RATE,
        metadata=_meta(
            "At most this many Create*Job calls per second (aws backend; 0: no limit). "
            "SageMaker throttles job creation per account and region."
        ),
    )
    kms_key: Optional[str] = field(
        default=None, metadata=_meta("KMS key id or ARN for job volumes and outputs.")
    )
    subnets: Optional[tuple] = field(
        default=None, metadata=_ids("Comma-separated VPC subnet ids for the jobs.")
    )
    security_group_ids: Optional[tuple] = field(
        default=None, metadata=_ids("Comma-separated security group ids for the jobs.")
    )
    local_root: str = field(
        default=".ssm_rules",
        metadata=_meta("Local backend: directory for job sandboxes and staged objects."),
    )
    local_skip_requirements: bool = field(
        default=False,
        metadata=_meta(
            "Local backend: do not pip-install the jobs' requirements.txt (offline work); a "
            "cached environment of earlier runs is still used. Also SSM_LOCAL_SKIP_REQUIREMENTS=1."
        ),
    )
    detach: bool = field(
        default=False,
        metadata=_meta(
            "On Ctrl-C, leave submitted jobs running instead of stopping them "
            "(the next run re-attaches to them)."
        ),
    )
    max_cost: Optional[float] = field(
        default=None,
        metadata=_meta(
            "Budget in USD (on-demand prices): a plan whose worst case exceeds it is refused "
            "before any job, and no job starts that could take the run's spend past it."
        ),
    )

    def __post_init__(self) -> None:
        # Snakemake builds the chosen executor's settings before the DAG, for -n too: the
        # one hook that early (a dry run never creates the executor itself)
        from ssm_rules._snakemake_internals import guard_missing_scripts, install_dry_run_check
        from ssm_rules.plan import check_dry_run

        guard_missing_scripts()
        install_dry_run_check(functools.partial(check_dry_run, self))
        if self.backend not in BACKENDS:
            raise WorkflowError(
                f"--sagemaker-backend {self.backend!r} is not a backend: write 'local' "
                "(run here) or 'aws' (run on SageMaker)"
            )
        from ssm_rules.instance_types import instance_type_problem

        problem = instance_type_problem(self.instance_type)
        if problem:
            raise WorkflowError(f"--sagemaker-instance-type {problem}")
        from ssm_rules.aws_names import bucket_name_problem, region_problem

        for option, problem in (
            ("--sagemaker-region", self.region and region_problem(self.region)),
            ("--sagemaker-bucket", self.bucket and bucket_name_problem(self.bucket)),
        ):
            if problem:
                raise WorkflowError(f"{option}: {problem}")
        if self.poll_interval is not None and self.poll_interval < 0:
            raise WorkflowError(
                f"--sagemaker-poll-interval {self.poll_interval} is negative: write seconds >= 0"
            )
        if not self.max_submit_rate >= 0:
            raise WorkflowError(
                f"--sagemaker-max-submit-rate {self.max_submit_rate:g} is negative: write "
                "Create calls per second > 0, or 0 for no limit"
            )
        if self.max_cost is not None and not self.max_cost > 0:
            raise WorkflowError(
                f"--sagemaker-max-cost {self.max_cost:g} is not a budget: write USD > 0"
            )
        # constructed in Python rather than from the command line: the same ids
        if isinstance(self.subnets, str):
            self.subnets = comma_list(self.subnets)
        if isinstance(self.security_group_ids, str):
            self.security_group_ids = comma_list(self.security_group_ids)
        if self.prefix.startswith("/") or self.prefix.endswith("/"):
            self.prefix = self.prefix.strip("/")

    @property
    def subnet_list(self) -> list[str]:
        return list(self.subnets or ())

    @property
    def security_group_list(self) -> list[str]:
        return list(self.security_group_ids or ())
