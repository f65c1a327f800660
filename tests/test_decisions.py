"""What the executor does when a job ends (ssm_rules.decisions): every branch, from a status
and the tracked job's facts alone: no process, no AWS."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from ssm_rules.backends.base import JobState, JobStatus, JobType
from ssm_rules.decisions import (
    Fail,
    JobFacts,
    OnDemand,
    Promote,
    RetrySpot,
    decide,
    failure_message,
    log_tail,
    retry_message,
    retry_spec,
)
from ssm_rules.spec import Instance
from tests.test_spec import spec_of

SPOT = Instance("ml.m5.large", 1, True, 3600, 7200, 30, spot_retries=2)
ON_DEMAND = SPOT.on_demand()
NO_CAPACITY = "CapacityError: Unable to provision requested ML compute capacity."


def facts(instance=SPOT, failures=0, members_left=0, job_type=JobType.TRAINING):
    return JobFacts(job_type, instance, failures, members_left)


def ended(state, reason=None, secondary="", **fields):
    return JobStatus("job-1", state, secondary, reason, **fields)


def test_a_completed_job_is_promoted_and_its_snakemake_job_succeeds():
    assert decide(ended(JobState.COMPLETED), facts()) == Promote(next_member=False)


def test_a_completed_group_member_is_promoted_then_the_next_one_starts():
    assert decide(ended(JobState.COMPLETED), facts(members_left=2)) == Promote(next_member=True)


def test_a_completed_job_is_promoted_even_with_a_capacity_word_in_its_reason():
    # a Completed job is a success whatever else it reports
    assert decide(ended(JobState.COMPLETED, NO_CAPACITY), facts()) == Promote(False)


@pytest.mark.parametrize("failures, attempt", [(0, 1), (1, 2)])
def test_no_spot_capacity_is_retried_on_spot_while_retries_are_left(failures, attempt):
    decision = decide(ended(JobState.FAILED, NO_CAPACITY), facts(failures=failures))
    assert decision == RetrySpot(attempt=attempt, retries=2, reason=NO_CAPACITY)


def test_no_spot_capacity_past_the_retries_goes_on_demand():
    decision = decide(ended(JobState.FAILED, NO_CAPACITY), facts(failures=2))
    assert decision == OnDemand(attempt=3, reason=NO_CAPACITY)


def test_no_spot_retries_goes_on_demand_at_once():
    instance = Instance("ml.m5.large", 1, True, 3600, 7200, 30)
    decision = decide(ended(JobState.FAILED, NO_CAPACITY), facts(instance))
    assert decision == OnDemand(attempt=1, reason=NO_CAPACITY)


def test_a_spot_job_that_waited_past_max_wait_without_training_is_a_capacity_retry():
    status = ended(JobState.STOPPED, secondary="MaxWaitTimeExceeded", training_seconds=3)
    assert decide(status, facts()) == RetrySpot(1, 2, "MaxWaitTimeExceeded")


def test_a_spot_job_that_trained_until_max_wait_fails_naming_max_wait_mins():
    status = ended(JobState.STOPPED, secondary="MaxWaitTimeExceeded", training_seconds=7000)
    decision = decide(status, facts())
    assert isinstance(decision, Fail)
    assert "max_wait_mins" in decision.why and decision.why.startswith("Stopped")


def test_an_on_demand_job_without_capacity_fails_with_sagemakers_reason():
    decision = decide(ended(JobState.FAILED, NO_CAPACITY), facts(ON_DEMAND))
    assert decision == Fail(f"Failed: {NO_CAPACITY}")


def test_a_failure_of_the_users_code_on_spot_is_never_retried():
    reason = "AlgorithmError: ZeroDivisionError: division by zero"
    assert decide(ended(JobState.FAILED, reason), facts()) == Fail(f"Failed: {reason}")


def test_a_stopped_job_fails():
    assert decide(ended(JobState.STOPPED), facts()) == Fail("Stopped: (no FailureReason)")


def test_a_job_at_max_run_fails_naming_max_run_mins():
    status = ended(JobState.STOPPED, secondary="MaxRuntimeExceeded", training_seconds=3600)
    decision = decide(status, facts())
    assert isinstance(decision, Fail) and "max_run_mins=60" in decision.why


def test_a_failed_group_member_fails_the_group_without_starting_the_next():
    decision = decide(ended(JobState.FAILED, "ClientError: bad input"), facts(members_left=1))
    assert decision == Fail("Failed: ClientError: bad input")


def test_a_processing_job_stopped_at_its_limit_fails_naming_max_run_mins():
    status = ended(
        JobState.STOPPED,
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
        end_time=datetime(2026, 1, 1, 1, tzinfo=UTC),
    )
    decision = decide(status, facts(ON_DEMAND, job_type=JobType.PROCESSING))
    assert isinstance(decision, Fail) and "MaxRuntimeInSeconds=3600" in decision.why


def test_a_spot_retry_keeps_the_spot_instance_and_never_wipes_the_state_again(tmp_path):
    spec = spec_of(tmp_path, resources={"spot": 1, "spot_retries": 1})
    spec = replace(spec, clean_state=True)
    retried = retry_spec(spec, RetrySpot(1, 1, NO_CAPACITY))
    assert retried.instance == spec.instance and retried.clean_state is False


def test_an_on_demand_retry_drops_spot_and_its_wait_time(tmp_path):
    spec = spec_of(tmp_path, resources={"spot": 1})
    retried = retry_spec(spec, OnDemand(1, NO_CAPACITY))
    assert (retried.instance.spot, retried.instance.max_wait_seconds) == (False, None)
    assert retried.instance.instance_type == spec.instance.instance_type


def test_the_retry_message_says_which_attempt_or_on_demand():
    assert retry_message("train", "j1", RetrySpot(1, 2, "x")) == (
        "rule train: job j1 got no spot capacity (x); retrying spot again (1/2)"
    )
    assert retry_message("train", "j1", OnDemand(3, "x")).endswith("retrying on-demand")


def test_the_failure_message_names_rule_job_and_why_then_the_log_tail():
    msg = failure_message("train", JobType.TRAINING, "j1", "Failed: boom", "a\nb", ())
    assert msg == "rule train: SageMaker training job j1 Failed: boom\nLast log lines:\na\nb\n"


def test_the_log_tail_is_not_repeated_when_the_reason_quotes_it():
    why = "Failed: AlgorithmError: exit 1\nTraceback\nValueError: x"
    assert log_tail(why, "start\nTraceback\nValueError: x", ("file:///l.log",)) == (
        "The whole log: file:///l.log\n"
    )
    assert log_tail("Failed: x", "", ()) == ""
