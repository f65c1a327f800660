"""Why a job ended unsuccessfully: capacity (retry, maybe on-demand) or the user's code (never
retried as if it were capacity)."""

from __future__ import annotations

import enum
import re

from ssm_rules.backends.base import JobState, JobStatus, JobType
from ssm_rules.spec import Instance

# SageMaker's FailureReason when it cannot get instances (InsufficientCapacityError), and the
# SecondaryStatus of a spot job that waited longer than MaxWaitTimeInSeconds for capacity.
_CAPACITY = re.compile(r"CapacityError|InsufficientCapacity|Insufficient capacity", re.IGNORECASE)
MAX_WAIT_EXCEEDED = "MaxWaitTimeExceeded"
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    CAPACITY = "capacity"  # no (spot) capacity: not the user's fault, worth another try
    STOPPED = "stopped"  # stopped by request or by MaxRuntimeInSeconds
    FAILED = "failed"  # the user's code or input (AlgorithmError, ClientError, ...)


# MaxWaitTimeInSeconds counts training time too: a spot job that trained this long before
# running out of wait time was limited by its own length, not by capacity.
TRAINED_SECONDS_NOT_CAPACITY = 600


def classify(status: JobStatus) -> Outcome:
    if status.state is JobState.COMPLETED:
        return Outcome.COMPLETED
    if _CAPACITY.search(status.failure_reason or ""):
        return Outcome.CAPACITY
    if status.secondary == MAX_WAIT_EXCEEDED:
        trained = status.training_seconds or 0
        return Outcome.CAPACITY if trained < TRAINED_SECONDS_NOT_CAPACITY else Outcome.STOPPED
    if status.state is JobState.STOPPED:
        return Outcome.STOPPED
    return Outcome.FAILED


def why_it_ended(status: JobStatus, job_type: JobType, instance: Instance) -> str:
    """A job that ended without success, in the user's words: for one that hit a time limit
    (DescribeTrainingJob's SecondaryStatus MaxRuntimeExceeded / MaxWaitTimeExceeded, with
    TrainingJobStatus Stopped, or Failed: both are read), which limit, its value, the
    resource that sets it and how long the job ran. SageMaker stops a job at its limit with
    SIGTERM, which is why the log ends with the signal."""
    ran = _seconds_run(status, job_type)
    ran_text = f" after running {_duration(ran)}" if ran is not None else ""
    state = str(status.state)
    if status.secondary == MAX_RUNTIME_EXCEEDED or _processing_over_time(
        status, job_type, instance, ran
    ):
        mins = instance.max_run_seconds // 60
        return (
            f"{state} at its time limit: MaxRuntimeInSeconds={instance.max_run_seconds} "
            f"(resources: max_run_mins={mins}) was reached{ran_text}; SageMaker stopped it "
            f"with SIGTERM. Raise max_run_mins (e.g. max_run_mins={2 * mins}) if the job needs "
            "longer"
        )
    if status.secondary == MAX_WAIT_EXCEEDED:
        wait = instance.max_wait_seconds
        limit = (
            f"MaxWaitTimeInSeconds={wait} (resources: max_wait_mins={wait // 60})"
            if wait
            else "MaxWaitTimeInSeconds"
        )
        return (
            f"{state} at its spot time limit: {limit}, which counts waiting for spot capacity "
            f"and training together, was reached{ran_text}. Raise max_wait_mins (it must stay "
            ">= max_run_mins), or run on-demand with spot=0"
        )
    return f"{state}: {status.failure_reason or '(no FailureReason)'}"


def _processing_over_time(
    status: JobStatus, job_type: JobType, instance: Instance, ran: float | None
) -> bool:
    """A processing job has no SecondaryStatus: one that ended unsuccessfully with no reason
    of its own after running its whole MaxRuntimeInSeconds was stopped at that limit."""
    return (
        job_type is JobType.PROCESSING
        and status.state in (JobState.STOPPED, JobState.FAILED)
        and not status.failure_reason
        and ran is not None
        and ran >= instance.max_run_seconds - 2  # end times are whole seconds
    )


def _seconds_run(status: JobStatus, job_type: JobType) -> float | None:
    if job_type is JobType.TRAINING and status.training_seconds is not None:
        return float(status.training_seconds)
    if status.start_time is None or status.end_time is None:
        return None
    return (status.end_time - status.start_time).total_seconds()


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 120:
        return f"{s} s"
    return f"{s // 60} min {s % 60} s" if s < 7200 else f"{s // 3600} h {s % 3600 // 60} min"
