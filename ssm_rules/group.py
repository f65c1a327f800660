"""A Snakemake ``group:`` of job rules → ONE SageMaker job (a TaskSpec with members).

A job pays SageMaker's start-up (minutes: instances, image pull, channel downloads) once, so
a group's members run one after the other inside one container, in dependency order. Each
member sees the job exactly as it would alone:

- its inputs from outside the group are channels of the one job, named ``ssm_<i>_<name>``
  (``ssm_`` is refused in users' input names, so these never meet a member's own names);
  before the member runs, the launcher links its usual channel directory
  (``/opt/ml/input/data/<name>``) to it, and unlinks it afterwards;
- an input another member produces is no channel: the launcher hands the producer's
  in-job output (file, model/output directory as a tarball, state folder) to the
  consumer's input path before the consumer starts;
- its outputs keep their in-job paths, so the union of the members' outputs is the job's
  outputs, and ``staging.promote_outputs`` puts each where it would be had the member run
  alone. A job has one SM_MODEL_DIR, one SM_OUTPUT_DATA_DIR, one CheckpointConfig and one
  TensorBoardOutputConfig: two members declaring the same kind are refused;
- its code, script, hyperparameters, environment, args, set-up and ``snakemake`` object
  travel in the task description (version 2), its code in a sub-directory of the bundle.

Members must agree on what SageMaker fixes per job (job type, instance type and count,
image); the rest combines: MaxRuntime is the sum of the members' (each had its own limit),
spot only when every member allows it, the largest volume. In the warm pool planning
(ssm_rules.warm_pools) the group is one job: the jobs that follow any of its members follow it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobType
from ssm_rules.rules import JobOptions
from ssm_rules.spec import (
    MAX_PROCESSING_INPUTS,
    MAX_PROCESSING_RUNTIME_SECONDS,
    MAX_RUNTIME_SECONDS,
    MAX_TRAINING_CHANNELS,
    Channel,
    Instance,
    OutputKind,
    SpecError,
    TaskSpec,
)
from worker_toolkit import contract as C

MEMBERS_DIR = "ssm_members"  # the members' code, one sub-directory per distinct code
REQUIREMENTS = "requirements.txt"
# the outputs a job holds only one of (SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, CheckpointConfig,
# TensorBoardOutputConfig)
SINGLE_KINDS = (OutputKind.MODEL, OutputKind.OUTPUT_DATA, OutputKind.STATE, OutputKind.TENSORBOARD)


@dataclass(frozen=True)
class Handoff:
    """An input of a member that another member of the group produces: ``how`` turns the
    producer's in-job output at ``source`` into what the consumer reads at ``target``."""

    how: str  # "copy" (a file) | "tar" (a model/output directory) | "tree" (a folder)
    source: str
    target: str


@dataclass(frozen=True)
class Link:
    """A member's channel directory, pointing at the group job's channel."""

    path: str  # where the member reads it (its channel directory, as alone)
    target: str  # the group job's channel directory


@dataclass(frozen=True)
class GroupMember:
    spec: TaskSpec  # the member's own spec, as if it ran alone
    code_dir: str  # its code inside the bundle (relative to the bundle root)
    links: tuple[Link, ...]
    handoffs: tuple[Handoff, ...]


def _code_key(spec: TaskSpec) -> tuple[object, ...]:
    return (spec.source_dir, spec.dependencies, spec.script_path)


def _label(spec: TaskSpec) -> str:
    wildcards = ", ".join(f"{k}={v}" for k, v in spec.wildcards)
    return f"rule {spec.rule}" + (f" ({wildcards})" if wildcards else "")


def _err(group: str, message: str) -> SpecError:
    return SpecError(f"group {group}: {message}")


def _agree(
    group: str, specs: Sequence[TaskSpec], what: str, values: list[object], fix: str
) -> None:
    if len(set(map(repr, values))) > 1:
        listed = ", ".join(f"{_label(s)}: {v}" for s, v in zip(specs, values, strict=True))
        raise _err(
            group,
            f"its rules run as one SageMaker job, so they must agree on {what}; they differ "
            f"({listed}): {fix}",
        )


def _check_agreement(group: str, specs: Sequence[TaskSpec]) -> None:
    move = "give them the same, or take the odd rule out of the group"
    _agree(group, specs, "job_type", [str(s.job_type) for s in specs], move)
    _agree(group, specs, "instance_type", [s.instance.instance_type for s in specs], move)
    _agree(group, specs, "instance_count", [s.instance.count for s in specs], move)
    image = [
        (s.options.framework, s.options.framework_version, s.options.py_version,
         s.options.image_uri, s.dockerfile)
        for s in specs
    ]  # fmt: skip
    _agree(
        group,
        specs,
        "the image (job(framework, framework_version, py_version, image_uri, dockerfile))",
        image,
        move,
    )
    # a job keeps one warm pool (ssm_rules.warm_pools): those members that say how long agree
    told = [s for s in specs if s.instance.keep_alive_mins is not None]
    _agree(
        group,
        told,
        "resources keep_alive_mins (the one job's warm pool)",
        [s.instance.keep_alive_mins for s in told],
        "give them the same, or set it on one rule only",
    )
    for kind in SINGLE_KINDS:
        having = [s for s in specs if any(o.kind is kind for o in s.outputs)]
        if len(having) > 1:
            raise _err(
                group,
                f"{' and '.join(_label(s) for s in having)} both declare a {kind}(...) output, "
                f"but one SageMaker job has one {kind} (its rules run as one job): let one "
                "rule write it, or put these rules in different groups",
            )
    for s in specs:
        if s.distribution_hps:
            raise _err(
                group,
                f"{_label(s)} sets job(distribution=...), which starts the framework's "
                "launcher around the job's one entry point: take it out of the group",
            )


def _producer_outputs(specs: Sequence[TaskSpec]) -> dict[str, tuple[int, OutputKind, str]]:
    """What the group's members produce: URI (a state: its prefix) → (member, kind, path)."""
    made: dict[str, tuple[int, OutputKind, str]] = {}
    for i, s in enumerate(specs):
        for o in s.outputs:
            uri = s.state_prefix if o.kind is OutputKind.STATE and s.state_prefix else o.uri
            made[uri] = (i, o.kind, o.job_path)
    return made


def _handoff(ch: Channel, kind: OutputKind, source: str) -> Handoff:
    target = ch.packed_path or ch.job_path  # unpacked(...): the launcher extracts it as usual
    if kind is OutputKind.FILE:
        return Handoff("copy", source, target)
    if kind in (OutputKind.MODEL, OutputKind.OUTPUT_DATA):
        return Handoff("tar", source, target)
    return Handoff("tree", source, target)  # state, tensorboard: the folder's files


def _channel_dir(spec: TaskSpec, name: str) -> str:
    base = C.INPUT_DATA_DIR if spec.job_type is JobType.TRAINING else C.PROCESSING_INPUT_DIR
    return f"{base}/{name}"


def _members(group: str, specs: Sequence[TaskSpec]) -> tuple[list[GroupMember], list[Channel]]:
    made = _producer_outputs(specs)
    code_dirs: dict[tuple[object, ...], str] = {}
    # members reading the same data share its channel: SageMaker downloads it once
    shared: dict[tuple[object, ...], Channel] = {}
    members: list[GroupMember] = []
    channels: list[Channel] = []
    for i, s in enumerate(specs):
        code_dir = code_dirs.setdefault(_code_key(s), f"{MEMBERS_DIR}/{len(code_dirs)}")
        links: list[Link] = []
        handoffs: list[Handoff] = []
        for ch in s.channels:
            inside = [made[p.uri] for p in ch.parts if p.uri in made]
            if ch.parts and inside:
                raise _err(
                    group,
                    f"{_label(s)}: input {ch.name!r} is a sharded list of files another rule "
                    "of the group produces; inside one job there is nothing to shard: "
                    "drop sharded() or take the rule out of the group",
                )
            producer = made.get(ch.uri or "")
            if producer is not None and producer[0] != i:
                handoffs.append(_handoff(ch, producer[1], producer[2]))
                continue
            own_dir = _channel_dir(s, ch.name)
            source = (ch.uri, ch.local_path, ch.parts, ch.sharded, ch.is_prefix)
            if source in shared:
                links.append(Link(own_dir, _channel_dir(s, shared[source].name)))
                continue
            name = f"ssm_{i}_{ch.name}"
            if len(name) > 64:
                raise _err(
                    group,
                    f"{_label(s)}: input name {ch.name!r} is too long to be a channel of the "
                    "group's job (SageMaker allows 64 characters with our prefix "
                    f"{name[: -len(ch.name)]!r}): shorten it",
                )
            group_dir = _channel_dir(s, name)
            arrives = ch.packed_path or ch.job_path  # unpacked(...): the member extracts it
            channel = replace(
                ch, name=name, job_path=group_dir + arrives[len(own_dir) :], packed_path=None
            )
            shared[source] = channel
            channels.append(channel)
            links.append(Link(own_dir, group_dir))
        members.append(GroupMember(s, code_dir, tuple(links), tuple(handoffs)))
    return members, channels


def _check_handoffs_on_one_host(
    group: str, specs: Sequence[TaskSpec], members: list[GroupMember]
) -> None:
    """A member's outputs are on the host that wrote them; alone, a consumer would get them
    on every instance by a channel. Inside one job of several instances, no."""
    count = specs[0].instance.count
    for m in members:
        if m.handoffs and count > 1:
            raise _err(
                group,
                f"{_label(m.spec)} reads what another rule of the group writes, and the job has "
                f"instance_count={count}: inside one job an output is only on the instance that "
                "wrote it; use instance_count=1 or take the rule out of the group",
            )


def _check_channel_count(group: str, spec0: TaskSpec, channels: list[Channel], state: bool) -> None:
    if spec0.job_type is JobType.TRAINING:
        limit = MAX_TRAINING_CHANNELS - 1  # the task description arrives as channel ssm_task
    else:
        limit = MAX_PROCESSING_INPUTS - 2 - int(state)
    if len(channels) > limit:
        raise _err(
            group,
            f"its rules read {len(channels)} inputs from outside the group, but its one "
            f"SageMaker {spec0.job_type} job takes at most {limit}: put related files in one "
            "directory, or split the group",
        )


def _requirements(group: str, specs: Sequence[TaskSpec]) -> Path | None:
    """The one requirements.txt the job installs (SageMaker's framework images install the
    bundle root's only): members' files must be the same text, which goes to the root."""
    found: dict[str, Path] = {}
    for s in specs:
        path = s.source_dir / REQUIREMENTS if s.source_dir is not None else None
        if path is not None and path.is_file():
            found.setdefault(path.read_text(errors="replace"), path)
    if len(found) > 1:
        raise _err(
            group,
            f"its rules' code has different {REQUIREMENTS} files "
            f"({', '.join(map(str, found.values()))}), but one job installs one: make them "
            "the same, or split the group",
        )
    return next(iter(found.values()), None)


def _instance(specs: Sequence[TaskSpec]) -> Instance:
    limit = (
        MAX_RUNTIME_SECONDS
        if specs[0].job_type is JobType.TRAINING
        else MAX_PROCESSING_RUNTIME_SECONDS
    )
    run = min(limit, sum(s.instance.max_run_seconds for s in specs))
    # one member asking for on-demand means it must not be interrupted: the whole job is
    spot = all(s.instance.spot for s in specs)
    wait = None
    if spot:
        wait = min(
            limit, sum(s.instance.max_wait_seconds or s.instance.max_run_seconds for s in specs)
        )
    first = specs[0].instance
    return Instance(
        instance_type=first.instance_type,
        count=first.count,
        spot=spot,
        max_run_seconds=run,
        max_wait_seconds=max(wait, run) if wait is not None else None,
        volume_gb=max(s.instance.volume_gb for s in specs),
        spot_retries=max(s.instance.spot_retries for s in specs),
        # what its members say (they agree); the keep-alive sent is the run's plan's
        keep_alive_mins=next(
            (s.instance.keep_alive_mins for s in specs if s.instance.keep_alive_mins is not None),
            None,
        ),
    )


def _options(group: str, specs: Sequence[TaskSpec], state: TaskSpec | None) -> JobOptions:
    """The job's options: the image's (they agree), every member's tags and metrics. The
    environment, args and set-up are each member's own (the launcher sets them)."""
    tags: dict[str, str] = {}
    metrics: dict[str, str] = {}
    for s in specs:
        for into, items, what in (
            (tags, s.options.tags, "tag"),
            (metrics, s.options.metric_definitions, "metric"),
        ):
            for k, v in items.items():
                if into.setdefault(k, v) != v:
                    raise _err(
                        group,
                        f"{what} {k!r} is {into[k]!r} in one rule and {v!r} in {_label(s)}, but "
                        "its rules run as one job with one set: give them the same value",
                    )
    first = specs[0].options
    return JobOptions(
        framework=first.framework,
        framework_version=first.framework_version,
        py_version=first.py_version,
        image_uri=first.image_uri,
        metric_definitions=metrics,
        tags=tags,
        clean_state=bool(state and state.clean_state),
        dockerfile=first.dockerfile,
    )


def group_spec(group: str, specs: Sequence[TaskSpec]) -> TaskSpec:
    """The one job of a group whose members (in dependency order) are ``specs``. Refuses,
    naming the group, the rules and the values, what one job cannot hold."""
    assert specs, "a group has members"
    _check_agreement(group, specs)
    members, channels = _members(group, specs)
    _check_handoffs_on_one_host(group, specs, members)
    state = next((s for s in specs if s.state_prefix), None)
    _check_channel_count(group, specs[0], channels, state is not None)
    _requirements(group, specs)
    wildcards: list[tuple[str, str]] = []
    for s in specs:
        wildcards += [w for w in s.wildcards if w not in wildcards]
    digest = hashlib.sha256("\n".join(s.task_id for s in specs).encode()).hexdigest()[:12]
    return TaskSpec(
        rule=group,
        task_id=f"group.{specs[0].task_id[:180]}.{digest}",
        job_type=specs[0].job_type,
        kind="group",
        program=None,
        command=None,
        source_dir=None,
        dependencies=(),
        script_path=None,
        channels=tuple(channels),
        outputs=tuple(o for s in specs for o in s.outputs),
        state_prefix=state.state_prefix if state else None,
        clean_state=bool(state and state.clean_state),
        instance=_instance(specs),
        hyperparameters=(),
        options=_options(group, specs, state),
        logs=tuple(uri for s in specs for uri in s.logs),
        dockerfile=specs[0].dockerfile,
        wildcards=tuple(wildcards),
        members=tuple(members),
    )


def requirements_file(spec: TaskSpec) -> Path | None:
    """The requirements.txt a group job's bundle holds at its root (checked by group_spec)."""
    return _requirements(spec.rule, [m.spec for m in spec.members])


def members_in_order(group_job: Any) -> list[Any]:
    """A Snakemake GroupJob's jobs in dependency order (its ``toposorted`` levels, which the
    DAG fixes when it forms the groups; by job id within a level)."""
    return [j for level in group_job.toposorted for j in sorted(level, key=lambda j: j.jobid)]
