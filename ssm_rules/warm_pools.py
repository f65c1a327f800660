"""SageMaker managed warm pools for chains of on-demand training jobs.

A training job whose ``ResourceConfig.KeepAlivePeriodInSeconds`` is above 0 keeps its
instances for that long after it ended; the next training job that matches it runs on them
and skips the provisioning part of its start-up. AWS's "Matching training jobs": the same
``RoleArn``, ``ResourceConfig`` InstanceCount, InstanceType, VolumeKmsKeyId and
VolumeSizeInGB, ``VpcConfig`` SecurityGroupIds and Subnets, EnableInterContainerTrafficEncryption
and EnableNetworkIsolation. "Each subsequent training job must also specify a
KeepAlivePeriodInSeconds value", and warm pools "cannot be used with spot instances" or
heterogeneous clusters. A retained pool is billed (``WarmPoolStatus``
ResourceRetainedBillableTimeInSeconds x InstanceCount) until a matching job takes it
(Status Reused, ReusedByJob), it expires (Terminated), or UpdateTrainingJob sets its
KeepAlivePeriodInSeconds to 0.

So a job keeps a pool when a matching job follows it in the DAG, and a job that can take a
pool asks for one too (then ends it at once if nothing follows). Planning (:func:`plan_pools`)
is pure, over the planned requests and the DAG's edges; :class:`WarmPools` carries it out
during the run: the keep-alive each job is sent with, the fallback when the account's warm
pool quota (0 by default) refuses it, which pool a job reused, and ending the pools that no
job will take.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any

from ssm_rules.backends.base import (
    JobRequest,
    JobState,
    JobStatus,
    JobType,
    WarmPoolQuotaError,
)
from ssm_rules.spec import TaskSpec

# Long enough to cover a successor's staging and one status round, short enough that a pool
# no job takes costs little (and ssm_rules ends those itself): a few minutes.
DEFAULT_KEEP_ALIVE_MINS = 5
KEEP_ALIVE = "KeepAlivePeriodInSeconds"


@dataclass(frozen=True)
class PoolKey:
    """What two training requests must share for the second to run on the first's pool."""

    role_arn: str
    instance_type: str
    instance_count: int
    volume_size_gb: int
    volume_kms_key: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    network_isolation: bool
    inter_container_encryption: bool


def pool_key(job_type: JobType, body: Mapping[str, Any]) -> PoolKey | None:
    """The request's pool, or None when it can have none (processing, spot, heterogeneous)."""
    if job_type is not JobType.TRAINING or body.get("EnableManagedSpotTraining"):
        return None
    resources = body.get("ResourceConfig") or {}
    if resources.get("InstanceGroups"):
        return None
    vpc = body.get("VpcConfig") or {}
    return PoolKey(
        role_arn=str(body.get("RoleArn", "")),
        instance_type=str(resources.get("InstanceType", "")),
        instance_count=int(resources.get("InstanceCount", 1)),
        volume_size_gb=int(resources.get("VolumeSizeInGB", 0)),
        volume_kms_key=str(resources.get("VolumeKmsKeyId", "")),
        subnets=tuple(sorted(vpc.get("Subnets") or ())),
        security_groups=tuple(sorted(vpc.get("SecurityGroupIds") or ())),
        network_isolation=bool(body.get("EnableNetworkIsolation", False)),
        inter_container_encryption=bool(body.get("EnableInterContainerTrafficEncryption", False)),
    )


@dataclass(frozen=True)
class PlannedPool:
    """One planned job, as the pool planning sees it."""

    task: str  # TaskSpec.task_id
    key: PoolKey | None
    keep_alive_mins: int | None = None  # resources keep_alive_mins as written


@dataclass(frozen=True)
class PoolPlan:
    keep_alive_seconds: int
    successors: frozenset[str] = frozenset()  # matching jobs that wait for this one


def plan_pools(
    jobs: Sequence[PlannedPool], edges: Iterable[tuple[str, str]]
) -> dict[str, PoolPlan]:
    """Task → its keep-alive and matching successors. ``edges``: (producer, consumer) tasks.

    Two jobs are linked when one waits for the other and their pools match, and neither
    says ``keep_alive_mins=0``. A linked job keeps its pool ``keep_alive_mins`` minutes
    (DEFAULT_KEEP_ALIVE_MINS when not given); an unlinked one only when it says so."""
    by_task = {j.task: j for j in jobs}

    def linkable(job: PlannedPool | None) -> bool:
        return job is not None and job.key is not None and job.keep_alive_mins != 0

    successors: dict[str, set[str]] = {j.task: set() for j in jobs}
    linked: set[str] = set()
    for producer, consumer in edges:
        a, b = by_task.get(producer), by_task.get(consumer)
        if a is None or b is None or not (linkable(a) and linkable(b)) or a.key != b.key:
            continue
        successors[producer].add(consumer)
        linked.update((producer, consumer))
    plan: dict[str, PoolPlan] = {}
    for job in jobs:
        if job.key is None:
            mins = 0
        elif job.keep_alive_mins is not None:
            mins = job.keep_alive_mins
        else:
            mins = DEFAULT_KEEP_ALIVE_MINS if job.task in linked else 0
        plan[job.task] = PoolPlan(mins * 60, frozenset(successors[job.task]))
    return plan


def plan_of_jobs(
    checked: Sequence[tuple[Sequence[Any], TaskSpec, JobRequest]],
) -> dict[str, PoolPlan]:
    """:func:`plan_pools` of the planned SageMaker jobs: (their Snakemake jobs, spec, request
    as checked), the edges read off Snakemake's DAG. A group's one job (ssm_rules.group) has
    its members as Snakemake jobs: it waits for what any member waits for outside the group,
    and what waits for any member from outside follows it."""
    from ssm_rules._snakemake_internals import dependency_edges

    task_of = {job: spec.task_id for jobs, spec, _ in checked for job in jobs}
    edges = {
        (task_of[a], task_of[b])
        for a, b in dependency_edges(list(task_of))
        if task_of[a] != task_of[b]  # within a group: one job
    }
    pools = [
        PlannedPool(spec.task_id, pool_key(req.job_type, req.body), spec.instance.keep_alive_mins)
        for _, spec, req in checked
    ]
    return plan_pools(pools, sorted(edges))


def still_to_follow(successors: frozenset[str], ended: AbstractSet[str]) -> frozenset[str]:
    """The matching successors of a pool that may still take it: those whose job has not
    ended yet (a successor that ended took this pool, another one, or none)."""
    return successors - ended


def with_keep_alive(spec: TaskSpec, seconds: int) -> TaskSpec:
    return replace(spec, instance=replace(spec.instance, keep_alive_seconds=seconds))


def without_keep_alive(request: JobRequest) -> JobRequest:
    body = copy.deepcopy(request.body)
    body.get("ResourceConfig", {}).pop(KEEP_ALIVE, None)
    return JobRequest(request.job_type, body)


def keep_alive_of(request: JobRequest) -> int:
    return int((request.body.get("ResourceConfig") or {}).get(KEEP_ALIVE) or 0)


def described_keep_alive(extra: Mapping[str, Any]) -> int:
    """The keep-alive a DescribeTrainingJob document says its job was created with (a job
    created with one has a WarmPoolStatus once it ended, even if its ResourceConfig is
    not in the document)."""
    seconds = int((extra.get("ResourceConfig") or {}).get(KEEP_ALIVE) or 0)
    return seconds or (1 if extra.get("WarmPoolStatus") else 0)


def retained_seconds(extra: Mapping[str, Any]) -> float:
    """ResourceRetainedBillableTimeInSeconds of a DescribeTrainingJob document (per instance)."""
    pool = extra.get("WarmPoolStatus") or {}
    return float(pool.get("ResourceRetainedBillableTimeInSeconds") or 0)


def retainable_seconds(extra: Mapping[str, Any]) -> float:
    """At most how many more seconds (per instance) the pool of an ended job can be billed:
    the rest of its keep-alive, unless a job took it or it was ended already."""
    pool = extra.get("WarmPoolStatus") or {}
    if pool.get("Status") in ("Reused", "Terminated"):
        return 0.0
    keep_alive = int((extra.get("ResourceConfig") or {}).get(KEEP_ALIVE) or 0)
    return max(0.0, keep_alive - retained_seconds(extra))


# --- the run ---------------------------------------------------------------------------------


@dataclass
class OpenPool:
    """A job that ended with a pool that a matching successor may still take."""

    name: str
    spec: TaskSpec
    successors: frozenset[str]  # the matching jobs that may take it
    counted: float = 0.0  # retained seconds already counted in the cost


@dataclass
class WarmPools:
    """The warm pools of one run. ``backend`` has ``warm_pool(name)`` (the WarmPoolStatus of a
    training job, from DescribeTrainingJob) and ``end_warm_pool(name)`` (UpdateTrainingJob with
    KeepAlivePeriodInSeconds 0). ``bill(spec, seconds)`` adds retained seconds (per instance)
    to the run's cost; ``closed(name)`` says that the pool of job ``name`` is billed no more
    (taken, ended or expired). Thread-safe: jobs end in Snakemake's status thread."""

    plan: dict[str, PoolPlan]
    backend: Any
    log: Any  # a logger: info / warning
    bill: Callable[[TaskSpec, float], None] = lambda spec, seconds: None
    closed: Callable[[str], None] = lambda name: None
    _refused: dict[str, str] = field(default_factory=dict)  # instance type → SageMaker's error
    _sent: dict[str, int] = field(default_factory=dict)  # job name → keep-alive it was sent with
    _open: dict[str, OpenPool] = field(default_factory=dict)  # by job name
    _done: set[str] = field(default_factory=set)  # tasks whose training job ended
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, spec: TaskSpec) -> TaskSpec:
        """The spec with the keep-alive its request is sent with."""
        place = self.plan.get(spec.task_id)
        seconds = place.keep_alive_seconds if place is not None else 0
        if spec.instance.spot or spec.instance.instance_type in self._refused:
            seconds = 0
        return with_keep_alive(spec, seconds)

    def submit(self, submit: Callable[[JobRequest], None], request: JobRequest) -> JobRequest:
        """Create the job; if the warm pool quota refuses its keep-alive, create it without
        (said once per instance type): a pool saves start-up, never worth failing the job.
        Returns the request as created."""
        try:
            submit(request)
        except WarmPoolQuotaError as e:
            itype = str(request.body["ResourceConfig"]["InstanceType"])
            with self._lock:
                first = itype not in self._refused
                self._refused.setdefault(itype, str(e))
            if first:
                self.log.warning(
                    f"SageMaker refused a warm pool for {itype} ({e}); the jobs on {itype} run "
                    "without keep-alive, each paying its start-up. To keep instances warm, "
                    f"raise the Service Quotas quota '{itype} for training warm pool usage' "
                    "(0 by default)"
                )
            request = without_keep_alive(request)
            submit(request)
        with self._lock:
            self._sent[request.name] = keep_alive_of(request)
        return request

    def ended(self, spec: TaskSpec, status: JobStatus) -> None:
        """A training job ended: learn which pool it reused, end the pools nothing will take,
        and keep its own open while a matching successor may follow. Never raises: a pool is
        a saving, and the status thread must go on."""
        try:
            self._ended(spec, status)
        except Exception as e:  # noqa: BLE001 — see docstring
            self.log.warning(f"warm pools: could not check after job {status.name}: {e!r}")

    def _ended(self, spec: TaskSpec, status: JobStatus) -> None:
        with self._lock:
            sent = self._sent.pop(status.name, None)
            if sent is None:  # created by an earlier client, re-attached: its description says
                sent = described_keep_alive(status.extra)
            self._done.add(spec.task_id)
            done = frozenset(self._done)
            takers = [p for p in self._open.values() if spec.task_id in p.successors]
        for pool in takers:
            state = self.backend.warm_pool(pool.name) or {}
            if state.get("ReusedByJob") == status.name:
                self.log.info(
                    f"{spec.label}: job {status.name} ran on the warm pool of job "
                    f"{pool.name} ({pool.spec.label}): no instance start-up"
                )
                self._close(pool, state)
            elif state.get("Status") != "Available":
                self._close(pool, state)  # expired, or taken by a job of another client
            elif not still_to_follow(pool.successors, done):
                self._end(pool)
        if not sent:
            return
        place = self.plan.get(spec.task_id)
        # a job that did not complete has no successor to come (Snakemake runs none), though
        # SageMaker keeps a pool after an algorithm error
        completed = place is not None and status.state is JobState.COMPLETED
        pool = OpenPool(status.name, spec, place.successors if completed else frozenset())
        pool.counted = retained_seconds(status.extra)  # settled with the job already
        with self._lock:
            self._open[status.name] = pool
        if not still_to_follow(pool.successors, done):  # its instances would idle, billed
            self._end(pool, status.extra.get("WarmPoolStatus"))

    def end_all(self) -> None:
        """The run is over (or cancelled): end every pool still open."""
        with self._lock:
            pools = list(self._open.values())
        for pool in pools:
            try:
                self._end(pool)
            except Exception as e:  # noqa: BLE001 — say which pool may still be billed
                self.log.warning(
                    f"could not end the warm pool of job {pool.name} ({e!r}); it ends by "
                    f"itself after its keep-alive, or: aws sagemaker update-training-job "
                    f"--training-job-name {pool.name} --resource-config KeepAlivePeriodInSeconds=0"
                )

    def _end(self, pool: OpenPool, state: Mapping[str, Any] | None = None) -> None:
        """UpdateTrainingJob KeepAlivePeriodInSeconds=0 if the pool is still Available
        (``state``: its WarmPoolStatus if just described)."""
        with self._lock:  # two successors ending at once: one ends it
            if self._open.get(pool.name) is not pool:
                return
        if state is None:
            state = self.backend.warm_pool(pool.name) or {}
        if not state.get("Status"):
            return  # no status yet (SageMaker sets it as the job ends): again at end_all
        if state.get("Status") == "Available":
            with self._lock:
                if self._open.pop(pool.name, None) is not pool:
                    return
            self.backend.end_warm_pool(pool.name)
            self.log.info(
                f"{pool.spec.label}: ended the warm pool of job {pool.name}: no matching "
                "job follows"
            )
            state = self.backend.warm_pool(pool.name) or state
        self._close(pool, state)

    def _close(self, pool: OpenPool, state: Mapping[str, Any]) -> None:
        with self._lock:
            if self._open.get(pool.name) is pool:
                del self._open[pool.name]
        retained = retained_seconds({"WarmPoolStatus": dict(state)})
        if retained > pool.counted:
            self.bill(pool.spec, retained - pool.counted)
            pool.counted = retained
        self.closed(pool.name)
