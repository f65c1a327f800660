"""What a run knows about where its jobs go, resolved once from the settings.

The executor only sees a :class:`RunContext`: a backend, the root URI under which code,
inputs and job outputs are staged, and how to reach any URI. Each backend package makes one
(``local/context.py``, ``aws/context.py``); ``registry.run_context`` picks it by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ssm_rules.backends.base import Backend, JobRequest
from ssm_rules.objects import ObjectStore, S3Objects, store_for


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
