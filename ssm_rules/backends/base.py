"""What a backend is: it takes a SageMaker request and reports typed job statuses.

Both backends implement :class:`Backend`. The request body is exactly the keyword
arguments of ``CreateTrainingJob`` / ``CreateProcessingJob``; the local backend runs a job
from that body alone, which is what proves the body SageMaker receives is complete.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from snakemake_interface_common.exceptions import WorkflowError


class WarmPoolQuotaError(WorkflowError):
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
    name: str
    state: JobState
    secondary: str = ""  # SecondaryStatus (training): Starting, Downloading, Training, ...
    failure_reason: str | None = None
    # S3/file URIs of what the job wrote, as DescribeTrainingJob reports them
    model_artifacts: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_done(self) -> bool:
        return self.state.is_done


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
