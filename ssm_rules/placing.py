"""Where a job's things are: the :class:`~ssm_rules.requests.Placement` of a TaskSpec in a run.

Shared by the real submission and by the plan (``snakemake -n`` and the check before the first
job), so that both build exactly the request SageMaker would receive.
"""

from __future__ import annotations

import secrets

from ssm_rules.backends.base import JobType
from ssm_rules.backends.context import RunContext
from ssm_rules.images import image_uri
from ssm_rules.requests import Placement, job_name
from ssm_rules.spec import TaskSpec


def placement(
    ctx: RunContext,
    spec: TaskSpec,
    code_uri: str = "",
    channel_uris: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    plan: bool = False,
    image: str | None = None,
) -> Placement:
    """``plan=True`` (checking the plan): nothing is staged yet, so URIs are stand-ins of the
    right shape (a storage input keeps its own: the role must read it) and nothing is
    listed. ``image``: the job's image when the caller resolved it (job(dockerfile=...))."""
    channel_uris = channel_uris or {}
    restore_state = False
    if (
        not plan
        and spec.job_type is JobType.PROCESSING
        and spec.state_prefix
        and not spec.clean_state
    ):
        restore_state = bool(ctx.store(spec.state_prefix).list(spec.state_prefix))
    return Placement(
        job_name=job_name(spec.rule, spec.wildcards, token=secrets.token_hex(3)),
        code_uri=code_uri or ctx.root + "code/0/sourcedir.tar.gz",
        channel_uris={c.name: channel_uris.get(c.name) or c.uri or ctx.root for c in spec.channels},
        jobs_uri=ctx.jobs_uri,
        image_uri=image or image_of(ctx, spec),
        role_arn=ctx.role_arn,
        region=ctx.region,
        kms_key=ctx.kms_key,
        subnets=ctx.subnets,
        security_groups=ctx.security_groups,
        identity_tags=tags or {},
        restore_state=restore_state,
    )


def image_of(ctx: RunContext, spec: TaskSpec) -> str:
    """The image the job runs on: its framework's (or image_uri), or the one
    job(dockerfile=...) builds on top of it, named by the context's hash."""
    from ssm_rules import docker_images

    base = image_uri(
        spec.options, spec.rule, ctx.region, spec.instance.instance_type, spec.job_type
    )
    if spec.dockerfile is None:
        return base
    context = docker_images.context_of(spec.dockerfile, base)
    return docker_images.image_uri(ctx.account, ctx.region, spec.rule, context)
