"""Capacity (worth another try, maybe on-demand) vs the job's own failure or length."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ssm_rules.backends.aws.polling import APIS, status_from_description
from ssm_rules.backends.base import JobState, JobStatus, JobType
from ssm_rules.backends.local import LocalBackend
from ssm_rules.outcomes import Outcome, classify, why_it_ended
from ssm_rules.spec import Instance


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
    status = JobStatus("j", state, secondary, reason, training_seconds=trained)
    assert classify(status) is expected


# --- why a job ended: the time limits named, with their value, resource and the time run ---

INSTANCE = Instance("ml.m5.large", 1, True, max_run_seconds=60, max_wait_seconds=120, volume_gb=30)


def test_a_job_over_max_run_names_the_limit_the_resource_and_how_long_it_ran(tmp_path, monkeypatch):
    """A real local-backend job over MaxRuntimeInSeconds (training and processing, which has
    no SecondaryStatus) and an aws-shaped DescribeTrainingJob, Stopped and Failed."""
    from tests.test_local_backend import code_tar, processing, run, training

    monkeypatch.setenv("SSM_STOP_GRACE_SECONDS", "1")
    backend = LocalBackend(tmp_path / "jobs")
    code = code_tar(tmp_path, {"train.py": "import time\ntime.sleep(60)\n"})
    train = training(tmp_path, "slow-1", "train.py", code)
    train.body["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    proc = processing(tmp_path, "slow-2", "import time\ntime.sleep(60)\n")
    proc.body["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    one_second = replace(INSTANCE, max_run_seconds=1)
    for request in (train, proc):
        status = run(backend, request)
        why = why_it_ended(status, request.job_type, one_second)
        assert why.startswith("Stopped at its time limit: MaxRuntimeInSeconds=1 ")
        assert "max_run_mins=0" in why and "Raise max_run_mins" in why and "SIGTERM" in why
        assert re.search(r"after running \d+ s;", why), why
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for state in ("Stopped", "Failed"):  # both read: the docs list it under Stopped
        desc = {
            "TrainingJobName": "j",
            "TrainingJobStatus": state,
            "SecondaryStatus": "MaxRuntimeExceeded",
            "TrainingStartTime": start,
            "TrainingEndTime": start + timedelta(seconds=61),
        }
        why = why_it_ended(
            status_from_description(APIS[JobType.TRAINING], desc), JobType.TRAINING, INSTANCE
        )
        assert why == (
            f"{state} at its time limit: MaxRuntimeInSeconds=60 (resources: max_run_mins=1) "
            "was reached after running 61 s; SageMaker stopped it with SIGTERM. Raise "
            "max_run_mins (e.g. max_run_mins=2) if the job needs longer"
        )


def test_a_spot_job_over_max_wait_names_max_wait_mins():
    status = JobStatus("j", JobState.STOPPED, "MaxWaitTimeExceeded", training_seconds=7000)
    why = why_it_ended(status, JobType.TRAINING, INSTANCE)
    assert "MaxWaitTimeInSeconds=120 (resources: max_wait_mins=2)" in why
    assert "after running 116 min 40 s." in why and "Raise max_wait_mins" in why


def test_other_endings_keep_sagemakers_reason():
    failed = JobStatus("j", JobState.FAILED, "Failed", "AlgorithmError: ExitCode 1")
    assert why_it_ended(failed, JobType.TRAINING, INSTANCE) == "Failed: AlgorithmError: ExitCode 1"
    quick = JobStatus("j", JobState.STOPPED, "Stopped", training_seconds=3)
    assert why_it_ended(quick, JobType.TRAINING, INSTANCE) == "Stopped: (no FailureReason)"


def test_the_log_tail_is_printed_once():
    from ssm_rules.decisions import log_tail as _log_tail

    tail = "[ssm_launch] Invoking shell\nhello-from-job\nline2\n[ssm_launch] program failed"
    why = "Failed: ExitCode 3: echo ... | last line: line2\nhello-from-job\nline2"
    assert _log_tail(why, tail, ("s3://b/wf/t.log",)) == "The whole log: s3://b/wf/t.log\n"
    stopped = "Stopped at its time limit: MaxRuntimeInSeconds=60 ..."
    assert _log_tail(stopped, tail, ()) == f"Last log lines:\n{tail}\n"
