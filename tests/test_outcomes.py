"""Capacity (worth another try, maybe on-demand) vs the job's own failure or length."""

from __future__ import annotations

import pytest

from ssm_rules.backends.base import JobState, JobStatus
from ssm_rules.outcomes import Outcome, classify


@pytest.mark.parametrize(
    ("state", "secondary", "reason", "trained", "expected"),
    [
        (JobState.COMPLETED, "Completed", None, 100, Outcome.COMPLETED),
        (
            JobState.FAILED,
            "Failed",
            "CapacityError: Unable to provision requested ML compute capacity.",
            0,
            Outcome.CAPACITY,
        ),
        (
            JobState.FAILED,
            "Failed",
            "InsufficientCapacityError: no ml.p4d.24xlarge",
            0,
            Outcome.CAPACITY,
        ),
        (JobState.STOPPED, "MaxWaitTimeExceeded", None, 0, Outcome.CAPACITY),  # never got spot
        (
            JobState.STOPPED,
            "MaxWaitTimeExceeded",
            None,
            7200,
            Outcome.STOPPED,
        ),  # it trained: too long
        (JobState.FAILED, "Failed", "AlgorithmError: ExitCode 1", 30, Outcome.FAILED),
        (JobState.STOPPED, "MaxRuntimeExceeded", None, 3600, Outcome.STOPPED),
        (JobState.STOPPED, "Stopped", None, 10, Outcome.STOPPED),
    ],
)
def test_classify(state, secondary, reason, trained, expected):
    status = JobStatus("j", state, secondary, reason, extra={"TrainingTimeInSeconds": trained})
    assert classify(status) is expected
