"""``--sagemaker-max-cost`` during a run: what an ended job was billed, and no job started that
could take the spend past the budget."""

from __future__ import annotations

import datetime

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.base import JobState, JobStatus, JobType, typed_fields
from ssm_rules.budget import Budget, billed_instance_seconds
from ssm_rules.plan import worst_cost
from ssm_rules.pricing import Prices, PriceTable, write_cache
from ssm_rules.spec import build_spec
from ssm_rules.warm_pools import with_keep_alive
from tests.e2e import LOCAL_ARGS, Workflow
from tests.jobviews import view

UTC = datetime.UTC


def billed(job_type: JobType, count: int, reply: dict) -> float:
    """What a job is billed, from its Describe* reply (read as both backends read it)."""
    status = JobStatus("job-1", JobState.COMPLETED, **typed_fields(job_type, reply))
    return billed_instance_seconds(status, job_type, count)


def test_training_is_billed_per_instance_for_its_billable_seconds():
    # DescribeTrainingJob: BillableTimeInSeconds is per instance (spot: less than training)
    extra = {"TrainingTimeInSeconds": 600, "BillableTimeInSeconds": 240}
    assert billed(JobType.TRAINING, 2, extra) == 480
    assert billed(JobType.TRAINING, 1, {"TrainingTimeInSeconds": 60}) == 60


def test_processing_is_billed_from_its_start_to_its_end():
    start = datetime.datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # boto3 gives datetimes
    extra = {
        "ProcessingStartTime": start,
        "ProcessingEndTime": start + datetime.timedelta(seconds=90),
    }
    assert billed(JobType.PROCESSING, 3, extra) == 270
    local = {
        "ProcessingStartTime": "2026-12-02T01:00:00+00:00",
        "ProcessingEndTime": "2026-12-02T01:00:30+00:00",
    }
    assert billed(JobType.PROCESSING, 1, local) == 30  # the local backend's ISO


def test_a_job_that_never_started_costs_nothing():
    assert billed(JobType.PROCESSING, 2, {"ProcessingEndTime": "2026-12-02T01:00:00+00:00"}) == 0
    assert billed(JobType.TRAINING, 2, {}) == 0


def test_no_job_starts_that_could_take_the_spend_past_the_budget(tmp_path):
    prices = Prices(PriceTable("us-east-1", datetime.date.today(), {"Training:ml.m5.large": 3.6}))
    spec = build_spec(
        view(tmp_path, resources={"max_run_mins": 10}),  # worst case: 1/6 h x $3.6 = $0.60
        backend="local",
        default_instance_type="ml.m5.large",
    )
    budget = Budget(1.5, prices)
    budget.admit(spec, "job-1")
    budget.admit(spec, "job-2")  # $1.20 reserved
    with pytest.raises(WorkflowError) as refused:
        budget.admit(spec, "job-3")
    assert (
        "rule train: not submitted: $0.00 spent so far and $1.20 reserved by 2 running job(s)"
        in str(refused.value)
    )
    ended = JobStatus("job-1", JobState.COMPLETED, billable_seconds=100)
    budget.settle(spec, ended)  # 100 s x $3.6/h = $0.10 spent; $0.60 reserved
    budget.admit(spec, "job-3")  # 0.10 + 0.60 + 0.60 <= 1.5
    with pytest.raises(WorkflowError, match=r"\$0\.10 spent so far"):
        budget.admit(spec, "job-4")


def test_a_warm_pool_is_reserved_until_it_is_taken_ended_or_expired(tmp_path):
    """A job that keeps a warm pool may be billed for its keep-alive after it ended: its worst
    case counts it, and what is left of it stays reserved once the job ended, until the pool
    is billed no more."""
    prices = Prices(PriceTable("us-east-1", datetime.date.today(), {"Training:ml.m5.large": 3.6}))
    spec = build_spec(
        view(tmp_path, resources={"max_run_mins": 10, "spot": 0}),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    kept = with_keep_alive(spec, 300)  # 10 min + 5 min kept: 1/4 h x $3.6 = $0.90
    assert worst_cost(kept, prices) == pytest.approx(0.90)
    budget = Budget(1.65, prices)
    budget.admit(kept, "job-1")
    extra = {
        "BillableTimeInSeconds": 100,  # $0.10
        "ResourceConfig": {"InstanceType": "ml.m5.large", "KeepAlivePeriodInSeconds": 300},
        "WarmPoolStatus": {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0},
    }
    status = JobStatus(
        "job-1", JobState.COMPLETED, **typed_fields(JobType.TRAINING, extra), extra=extra
    )
    budget.settle(kept, status)  # $0.10 spent; the pool's 300 s ($0.30) stay reserved
    budget.admit(kept, "job-2")  # 0.10 + 0.30 + 0.90 <= 1.65
    with pytest.raises(WorkflowError) as refused:
        budget.admit(spec, "job-3")  # $0.60 more: 1.90 (1.60 without the pool's reservation)
    assert "$0.10 spent so far and $1.20 reserved by 1 running job(s) and 1 warm pool(s)" in str(
        refused.value
    )
    budget.add_retained(kept, 10)  # job-2 took the pool after 10 s ($0.01)
    budget.pool_closed("job-1")
    assert budget.spent == pytest.approx(0.11)
    budget.admit(spec, "job-3")  # 0.11 + 0.90 + 0.60 <= 1.65
    # a pool already taken or ended when its job ends reserves nothing
    taken = dict(extra, WarmPoolStatus={"Status": "Reused", "ReusedByJob": "job-3"})
    budget.settle(kept, JobStatus("job-2", JobState.COMPLETED, extra=taken))
    budget.admit(kept, "job-4")  # 0.11 + 0.60 + 0.90 <= 1.65, with no pool of job-2 reserved


@pytest.mark.slow  # a snakemake run
def test_a_retry_over_budget_is_not_submitted_and_says_what_was_spent(tmp_path, cache_home):
    """The plan fits the budget; Snakemake's retry of the failed job would not."""
    # $1 per instance-second makes a few seconds of a real job count
    write_cache(PriceTable("us-east-1", datetime.date.today(), {"Training:ml.m5.large": 3600.0}))
    wf = Workflow(tmp_path / "wf")
    wf.write(
        "Snakefile",
        """
rule fails:
    output: "out.txt"
    resources: max_run_mins=1
    shell: "sleep 1; exit 3"
""",
    )
    proc = wf.run(*LOCAL_ARGS, "--retries", "1", "--sagemaker-max-cost", "60.5", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rule fails: not submitted: $" in text and "spent so far and $0.00 reserved" in text
    assert "would pass --sagemaker-max-cost 60.5" in text
    assert "$0.00 spent so far" not in text  # the failed attempt's billable seconds count
    jobs = list((wf.root / ".ssm_rules" / "jobs").iterdir())
    assert len(jobs) == 1  # the first attempt only
