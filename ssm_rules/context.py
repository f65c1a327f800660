"""Everything a run needs to know about where jobs go, resolved once from the settings.

The executor only sees a :class:`RunContext`: a backend, the root URI under which code,
inputs and job outputs are staged, and how to reach any URI. ``local`` keeps all of it on
this disk; ``aws`` (backends/aws) resolves region, account, role and bucket.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.base import Backend, JobRequest
from ssm_rules.objects import ObjectStore, S3Objects, file_uri, store_for
from ssm_rules.settings import ExecutorSettings

LOCAL_REGION = "us-east-1"
LOCAL_ROLE = "arn:aws:iam::000000000000:role/ssm-rules-local"


@dataclass
class RunContext:
    backend_name: str
    backend: Backend
    root: str  # URI prefix ending with "/": code/, inputs/, jobs/ live under it
    region: str
    role_arn: str
    kms_key: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    s3: S3Objects | None = None
    validate: Callable[[JobRequest], None] = field(default=lambda request: None)
    # given every (TaskSpec, request) of the plan before any is sent: makes the jobs' role
    # able to do what they need (aws: the managed role), or says what the user's role lacks
    authorize: Callable[[list[tuple[Any, JobRequest]]], None] = field(default=lambda plan: None)
    account: str = "000000000000"
    # makes sure image ``uri`` exists, built from a Docker context, before a job uses it:
    # (rule, context, uri, log line sink)
    build_image: Callable[[str, Any, str, Callable[[str], None]], None] = field(
        default=lambda rule, context, uri, log: None
    )

    def store(self, uri: str) -> ObjectStore:
        return store_for(uri, self.s3)

    @property
    def jobs_uri(self) -> str:
        return self.root + "jobs"


def local_context(settings: ExecutorSettings, workdir: Path, logger: Any = None) -> RunContext:
    from ssm_rules.aws_names import region_problem
    from ssm_rules.backends.aws.validation import RequestValidator
    from ssm_rules.backends.local.service import LocalBackend

    region = settings.region or os.environ.get("AWS_DEFAULT_REGION") or LOCAL_REGION
    problem = region_problem(region)
    if problem:  # the region picks the job's framework image, as on SageMaker
        where = "--sagemaker-region" if settings.region else "AWS_DEFAULT_REGION"
        raise WorkflowError(f"{where}: {problem}")
    root = (workdir / settings.local_root).resolve()
    return RunContext(
        build_image=_local_image,
        backend_name="local",
        backend=LocalBackend(root / "jobs", skip_requirements=settings.local_skip_requirements),
        root=file_uri(root / "store", directory=True),
        region=region,
        role_arn=LOCAL_ROLE,
        validate=_as_on_sagemaker(RequestValidator(warn=logger.warning if logger else None)),
    )


def _as_on_sagemaker(validate: Callable[[JobRequest], None]) -> Callable[[JobRequest], None]:
    """The same check of the request as on the aws backend (what SageMaker would refuse is
    refused here too, not run), with the local store's file:// URIs standing for the s3://
    URIs SageMaker requires."""

    def check(request: JobRequest) -> None:
        validate(replace(request, body=_file_uris_as_s3(request.body)))

    return check


def _file_uris_as_s3(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("file://"):
        return "s3://ssm-rules-local/" + value[len("file://") :].lstrip("/")
    if isinstance(value, dict):
        return {k: _file_uris_as_s3(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_file_uris_as_s3(v) for v in value]
    return value


def make_context(settings: ExecutorSettings, workdir: Path, logger: Any = None) -> RunContext:
    if settings.backend == "local":
        return local_context(settings, workdir, logger)
    from ssm_rules.backends.aws.context import aws_context

    return aws_context(settings, logger)


def _local_image(rule: str, context: Any, uri: str, log: Callable[[str], None]) -> None:
    """The local backend runs every job on this machine's Python: say so, once per rule."""
    if rule in _SAID:
        return
    _SAID.add(rule)
    log(
        f"local backend: rule {rule} runs on this machine's Python, not in the image built "
        f"from {context.directory} (the local backend does not run containers)"
    )


_SAID: set[str] = set()
