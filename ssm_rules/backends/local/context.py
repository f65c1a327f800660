"""The local backend's run context: every job runs on this machine, everything it reads and
writes is kept under ``--sagemaker-local-root`` (jobs/ and a file:// store)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.base import JobRequest
from ssm_rules.backends.context import RunContext
from ssm_rules.objects import file_uri
from ssm_rules.settings import ExecutorSettings

LOCAL_REGION = "us-east-1"
LOCAL_ROLE = "arn:aws:iam::000000000000:role/ssm-rules-local"


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
