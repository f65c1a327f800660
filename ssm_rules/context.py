"""Everything a run needs to know about where jobs go, resolved once from the settings.

The executor only sees a :class:`RunContext`: a backend, the root URI under which code,
inputs and job outputs are staged, and how to reach any URI. ``local`` keeps all of it on
this disk; ``aws`` (backends/aws) resolves region, account, role and bucket.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def store(self, uri: str) -> ObjectStore:
        return store_for(uri, self.s3)

    @property
    def jobs_uri(self) -> str:
        return self.root + "jobs"


def local_context(settings: ExecutorSettings, workdir: Path) -> RunContext:
    from ssm_rules.backends.local.service import LocalBackend

    root = (workdir / settings.local_root).resolve()
    return RunContext(
        backend_name="local",
        backend=LocalBackend(root / "jobs", skip_requirements=settings.local_skip_requirements),
        root=file_uri(root / "store", directory=True),
        region=settings.region or os.environ.get("AWS_DEFAULT_REGION") or LOCAL_REGION,
        role_arn=LOCAL_ROLE,
    )


def make_context(settings: ExecutorSettings, workdir: Path, logger: Any = None) -> RunContext:
    if settings.backend == "local":
        return local_context(settings, workdir)
    from ssm_rules.backends.aws.context import aws_context

    return aws_context(settings, logger)
