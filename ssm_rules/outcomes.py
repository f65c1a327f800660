"""Why a job ended unsuccessfully: capacity (retry, maybe on-demand) or the user's code (never
retried as if it were capacity)."""

from __future__ import annotations

import enum
import re

from ssm_rules.backends.base import JobState, JobStatus

# SageMaker's FailureReason when it cannot get instances (InsufficientCapacityError), and the
# SecondaryStatus of a spot job that waited longer than MaxWaitTimeInSeconds for capacity.
_CAPACITY = re.compile(r"CapacityError|InsufficientCapacity|Insufficient capacity", re.IGNORECASE)
MAX_WAIT_EXCEEDED = "MaxWaitTimeExceeded"


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
        trained = int(status.extra.get("TrainingTimeInSeconds") or 0)
        return Outcome.CAPACITY if trained < TRAINED_SECONDS_NOT_CAPACITY else Outcome.STOPPED
    if status.state is JobState.STOPPED:
        return Outcome.STOPPED
    return Outcome.FAILED
