"""What a backend is: it takes a SageMaker request and reports typed job statuses.

Both backends implement :class:`Backend`. The request body is exactly the keyword
arguments of ``CreateTrainingJob`` / ``CreateProcessingJob``; the local backend runs a job
from that body alone, which is what proves the body SageMaker receives is complete.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from snakemake_interface_common.exceptions import WorkflowError


class BackendError(WorkflowError):
    """The root of what both backends raise: a run they cannot set up (region, credentials,
    role, bucket), a request refused (before sending, or by the service), a job not found,
    a status that cannot be read. Callers catch this one class; each message names the value
    and what to write instead, and Snakemake prints a WorkflowError without a traceback.
    The aws backend's are in ``aws/errors.py``, the local backend's in ``local/validation.py``
    (named after SageMaker's own error codes)."""


class WarmPoolQuotaError(BackendError):
    """CreateTrainingJob refused the job's KeepAlivePeriodInSeconds: the account's warm pool
    quota for the instance type ('<type> for training warm pool usage', 0 by default) is used
    up. The same job without keep-alive would be accepted."""


class JobType(enum.StrEnum):
    TRAINING = "training"
    PROCESSING = "processing"


class JobState(enum.StrEnum):
    """SageMaker's TrainingJobStatus / ProcessingJobStatus values."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def is_done(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.STOPPED)


@dataclass(frozen=True)
class JobRequest:
    """One Create*Job call: its type and its complete keyword arguments."""

    job_type: JobType
    body: dict[str, Any]

    @property
    def name(self) -> str:
        key = "TrainingJobName" if self.job_type is JobType.TRAINING else "ProcessingJobName"
        return self.body[key]


@dataclass(frozen=True)
class JobStatus:
    """A job as DescribeTrainingJob / DescribeProcessingJob (or a List summary, or Search)
    reports it. A field the call that gave this status does not carry is None: a List
    summary has no start time nor seconds; only Backend.find fills ``tags``."""

    name: str
    state: JobState
    secondary: str = ""  # SecondaryStatus (training): Starting, Downloading, Training, ...
    failure_reason: str | None = None
    # S3/file URIs of what the job wrote, as DescribeTrainingJob reports them
    model_artifacts: str | None = None
    creation_time: datetime | None = None  # CreationTime
    start_time: datetime | None = None  # TrainingStartTime / ProcessingStartTime
    end_time: datetime | None = None  # TrainingEndTime / ProcessingEndTime
    training_seconds: int | None = None  # TrainingTimeInSeconds (training only)
    # BillableTimeInSeconds (training only), per instance; with managed spot, the seconds
    # billed at the spot rate
    billable_seconds: int | None = None
    instances: tuple[str, int] | None = None  # (InstanceType, InstanceCount) it ran on
    tags: Mapping[str, str] = field(default_factory=dict, compare=False)  # Key → Value
    # the rest of the reply, for what no decision reads (ExitMessage, FinalMetricDataList...)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_done(self) -> bool:
        return self.state.is_done


def describe_time(value: Any) -> datetime | None:
    """A Describe* time: boto3 parses it into a datetime; the local backend's documents
    keep ISO 8601 strings."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def instances_of(job_type: JobType, reply: Mapping[str, Any]) -> tuple[str, int] | None:
    """(InstanceType, InstanceCount) of a Describe* reply: ResourceConfig (training),
    ProcessingResources.ClusterConfig (processing)."""
    if job_type is JobType.TRAINING:
        config = reply.get("ResourceConfig") or {}
    else:
        config = (reply.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    if "InstanceType" not in config:
        return None
    return config["InstanceType"], int(config.get("InstanceCount", 1))


def _seconds(value: Any) -> int | None:
    return int(value) if value is not None else None


def typed_fields(job_type: JobType, reply: Mapping[str, Any]) -> dict[str, Any]:
    """The typed JobStatus fields of a Describe* / List summary / Search reply, by SageMaker's
    own keys: shared by both backends, which report the same documents."""
    training = job_type is JobType.TRAINING
    start, end = (
        ("TrainingStartTime", "TrainingEndTime")
        if training
        else ("ProcessingStartTime", "ProcessingEndTime")
    )
    return {
        "creation_time": describe_time(reply.get("CreationTime")),
        "start_time": describe_time(reply.get(start)),
        "end_time": describe_time(reply.get(end)),
        "training_seconds": _seconds(reply.get("TrainingTimeInSeconds")) if training else None,
        "billable_seconds": _seconds(reply.get("BillableTimeInSeconds")) if training else None,
        "instances": instances_of(job_type, reply),
    }


@dataclass(frozen=True)
class LogEvent:
    stream: str  # e.g. "<job>/algo-1-1700000000"
    message: str


class LogBudgetSpent(Exception):
    """A log read refused for this status round (nothing read, nothing lost): the backend's
    budget of log calls per round is spent; ask again next round."""


class LogReader(Protocol):
    def read(self) -> list[LogEvent]:
        """The events since the last read; may raise :class:`LogBudgetSpent`."""
        ...


class Backend(Protocol):
    """What the executor asks of a backend (ssm_rules.backends.aws, ssm_rules.backends.local).

    A backend may also have these; the executor calls them when present (only the local
    backend has them: on AWS, status rounds run on their interval):

    - ``prepare() -> None``: set up what the first job will need, while the plan is checked
      (the local backend's runner fork server).
    - ``wait_for_end(names, timeout) -> None``: block until one of the named jobs may have
      ended, ``wake()`` was called, or ``timeout`` seconds passed: the wait between two status
      rounds.
    - ``wake() -> None``: end a ``wait_for_end`` in progress (or the next one) at once.
    """

    def submit(self, request: JobRequest) -> None:
        """Create the job. Raises on a request the service refuses."""

    def poll(self, jobs: Sequence[tuple[str, JobType]]) -> dict[str, JobStatus]:
        """Status of every named job (one round, as few calls as possible)."""

    def stop(self, jobs: Sequence[tuple[str, JobType]]) -> None:
        """Ask each job to stop (SIGTERM, then SIGKILL after the grace period)."""

    def logs(self, name: str, job_type: JobType) -> Iterator[LogEvent]:
        """Every log line of every instance of the job, stream by stream."""

    def log_reader(self, name: str, job_type: JobType) -> LogReader:
        """Follows the job's logs: each ``read()`` returns the events since the last one."""

    def find(self, job_type: JobType, name_prefix: str, tags: dict[str, str]) -> list[JobStatus]:
        """Jobs named ``name_prefix...`` carrying all ``tags``, newest first (re-attach)."""

    def warm_pool(self, name: str) -> dict[str, Any] | None:
        """The training job's WarmPoolStatus (DescribeTrainingJob), None if it has none."""

    def end_warm_pool(self, name: str) -> None:
        """End the training job's warm pool (UpdateTrainingJob, KeepAlivePeriodInSeconds 0)."""
