"""``--sagemaker-*`` settings (also profile keys ``sagemaker-*``), validated before any call."""

# No "from __future__ import annotations": Snakemake builds the CLI from the real field types.
import re
from dataclasses import dataclass, field
from typing import Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

BACKENDS = ("local", "aws")
DEFAULT_INSTANCE_TYPE = "ml.m5.large"


def _meta(help: str, **extra: object) -> dict:
    return {"help": help, "env_var": False, "required": False, **extra}


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    backend: str = field(
        default="local",
        metadata=_meta(
            "Where jobs run: 'local' runs each SageMaker request on this machine "
            "(no AWS, no Docker); 'aws' submits it to Amazon SageMaker."
        ),
    )
    region: Optional[str] = field(
        default=None, metadata=_meta("AWS region (default: the boto3 session's region).")
    )
    role: Optional[str] = field(
        default=None,
        metadata=_meta("IAM role the jobs run as: an ARN or a role name in this account."),
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
    kms_key: Optional[str] = field(
        default=None, metadata=_meta("KMS key id or ARN for job volumes and outputs.")
    )
    subnets: Optional[str] = field(
        default=None, metadata=_meta("Comma-separated VPC subnet ids for the jobs.")
    )
    security_group_ids: Optional[str] = field(
        default=None, metadata=_meta("Comma-separated security group ids for the jobs.")
    )
    local_root: str = field(
        default=".ssm_rules",
        metadata=_meta("Local backend: directory for job sandboxes and staged objects."),
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
        if self.backend not in BACKENDS:
            raise WorkflowError(
                f"--sagemaker-backend {self.backend!r} is not a backend: write 'local' "
                "(run here) or 'aws' (run on SageMaker)"
            )
        if not re.fullmatch(r"ml\.[a-z0-9]+\.[a-z0-9]+", self.instance_type or ""):
            raise WorkflowError(
                f"--sagemaker-instance-type {self.instance_type!r} is not an instance type: "
                f"write one like {DEFAULT_INSTANCE_TYPE!r}"
            )
        if self.poll_interval is not None and self.poll_interval < 0:
            raise WorkflowError(
                f"--sagemaker-poll-interval {self.poll_interval} is negative: write seconds >= 0"
            )
        if self.max_cost is not None and not self.max_cost > 0:
            raise WorkflowError(
                f"--sagemaker-max-cost {self.max_cost:g} is not a budget: write USD > 0"
            )
        if self.prefix.startswith("/") or self.prefix.endswith("/"):
            self.prefix = self.prefix.strip("/")

    @property
    def subnet_list(self) -> list[str]:
        return [s for s in (self.subnets or "").split(",") if s]

    @property
    def security_group_list(self) -> list[str]:
        return [s for s in (self.security_group_ids or "").split(",") if s]
