"""The plan's expected cost: the median billable seconds of earlier jobs like this one."""

from __future__ import annotations

from ssm_rules.backends.base import JobState, JobStatus
from ssm_rules.history import median_billable_seconds
from ssm_rules.spec import build_spec
from tests.jobviews import view


def training(state: JobState, seconds: int, instance: str = "ml.m5.large", count: int = 2):
    return JobStatus("train-1", state, billable_seconds=seconds, instances=(instance, count))


def test_only_completed_jobs_on_the_same_instances_count(tmp_path):
    spec = build_spec(
        view(tmp_path, resources={"instance_count": 2}),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    earlier = [
        training(JobState.COMPLETED, 100),
        training(JobState.COMPLETED, 300),
        training(JobState.COMPLETED, 200),
        training(JobState.FAILED, 5),  # a failure says nothing of how long the work takes
        training(JobState.COMPLETED, 9000, count=1),  # other resources
        training(JobState.COMPLETED, 9000, instance="ml.c5.xlarge"),
    ]
    assert median_billable_seconds(spec, earlier) == 200
    assert median_billable_seconds(spec, earlier[3:]) is None
