"""The bill of a run, computed from its jobs' descriptions (pure: no I/O, no clock).

What SageMaker bills, per instance, as its API reference documents it:

- training: ``BillableTimeInSeconds`` ("multiply by InstanceCount"). With managed spot it is
  less than ``TrainingTimeInSeconds`` and AWS gives the saving as
  ``(1 - BillableTimeInSeconds / TrainingTimeInSeconds) * 100`` percent: so the cost is
  billable seconds x on-demand price, and the spot saving (training - billable) seconds x
  on-demand price.
- warm pools: ``WarmPoolStatus.ResourceRetainedBillableTimeInSeconds`` x InstanceCount is
  the time the kept instances are billed after the job.
- processing: no billable field; ``ProcessingEndTime - ProcessingStartTime`` per instance.
- a job still running is billed so far for the time since it started (an upper bound for
  spot, which is billed at most on-demand).

Prices are the on-demand list prices of the AWS Price List API (ssm_rules.pricing): the
figures are estimates of the AWS bill, which also counts storage, data and taxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ssm_rules.backends.base import JobState, JobType
from ssm_rules.budget import timestamp
from ssm_rules.warm_pools import retained_seconds

# SageMaker's log groups (streams: "<job>/algo-<i>-<epoch>")
LOG_GROUPS = {
    JobType.TRAINING: "/aws/sagemaker/TrainingJobs",
    JobType.PROCESSING: "/aws/sagemaker/ProcessingJobs",
}


@dataclass(frozen=True)
class Phase:
    """One SecondaryStatusTransition (or, for processing, the wait and the run)."""

    status: str
    start: float  # epoch seconds
    end: float
    message: str = ""


@dataclass(frozen=True)
class JobBill:
    name: str
    rule: str
    wildcards: Mapping[str, str]
    job_type: JobType
    instance_type: str
    count: int
    spot: bool
    state: str  # TrainingJobStatus / ProcessingJobStatus
    secondary: str
    how: str  # "submitted" | "re-attached" | "reused" (completed before this run: not billed)
    price: float | None  # on-demand USD per instance-hour
    created: float | None
    ended: float | None
    phases: tuple[Phase, ...]
    training_seconds: float  # per instance
    billable_seconds: float  # per instance
    retained_seconds: float  # warm pool, per instance
    metrics: Mapping[str, float] = field(default_factory=dict)
    console_url: str = ""
    logs_url: str = ""

    @property
    def running(self) -> bool:
        try:
            return not JobState(self.state).is_done
        except ValueError:
            return False

    @property
    def billed_here(self) -> bool:
        """A job reused from an earlier run was paid for by that run."""
        return self.how != "reused"

    @property
    def instance_seconds(self) -> float:
        """Billed instance-seconds: the job's and its warm pool's."""
        return (self.billable_seconds + self.retained_seconds) * self.count

    @property
    def cost(self) -> float | None:
        return None if self.price is None else self.price * self.instance_seconds / 3600

    @property
    def saved_instance_seconds(self) -> float:
        """Managed spot: TrainingTimeInSeconds - BillableTimeInSeconds, every instance."""
        return max(0.0, self.training_seconds - self.billable_seconds) * self.count

    @property
    def spot_savings(self) -> float | None:
        return None if self.price is None else self.price * self.saved_instance_seconds / 3600


@dataclass(frozen=True)
class Bill:
    jobs: tuple[JobBill, ...]

    @property
    def billed(self) -> tuple[JobBill, ...]:
        return tuple(j for j in self.jobs if j.billed_here)

    @property
    def priced(self) -> bool:
        return all(j.price is not None for j in self.billed)

    @property
    def total(self) -> float:
        return sum(j.cost or 0.0 for j in self.billed)

    @property
    def savings(self) -> float:
        return sum(j.spot_savings or 0.0 for j in self.billed)

    @property
    def instance_seconds(self) -> float:
        return sum(j.instance_seconds for j in self.billed)

    @property
    def saved_instance_seconds(self) -> float:
        return sum(j.saved_instance_seconds for j in self.billed)

    @property
    def training_instance_seconds(self) -> float:
        return sum(j.training_seconds * j.count for j in self.billed)

    @property
    def billable_instance_seconds(self) -> float:
        return sum(j.billable_seconds * j.count for j in self.billed)

    @property
    def retained_instance_seconds(self) -> float:
        return sum(j.retained_seconds * j.count for j in self.billed)

    def by_rule(self) -> dict[str, tuple[int, float, float]]:
        """Rule → (jobs, cost in USD, instance-seconds), in the order the rules first ran."""
        rules: dict[str, tuple[int, float, float]] = {}
        for j in self.billed:
            n, cost, seconds = rules.get(j.rule, (0, 0.0, 0.0))
            rules[j.rule] = (n + 1, cost + (j.cost or 0.0), seconds + j.instance_seconds)
        return rules

    @property
    def span(self) -> tuple[float, float] | None:
        """First and last instant of any phase: the timeline's extent."""
        starts = [p.start for j in self.jobs for p in j.phases]
        ends = [p.end for j in self.jobs for p in j.phases]
        return (min(starts), max(ends)) if starts else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _phases(job_type: JobType, desc: Mapping[str, Any], until: float) -> tuple[Phase, ...]:
    if job_type is JobType.TRAINING:
        phases = []
        for t in desc.get("SecondaryStatusTransitions") or []:
            start = timestamp(t.get("StartTime"))
            if start is None:
                continue
            end = timestamp(t.get("EndTime"))
            phases.append(
                Phase(t["Status"], start, until if end is None else end, t.get("StatusMessage", ""))
            )
        return tuple(phases)
    created = timestamp(desc.get("CreationTime"))
    start = timestamp(desc.get("ProcessingStartTime"))
    end = timestamp(desc.get("ProcessingEndTime"))
    phases = []
    if created is not None:
        phases.append(Phase("Starting", created, start if start is not None else until))
    if start is not None:
        phases.append(Phase("Processing", start, until if end is None else end))
    return tuple(phases)


def _seconds(job_type: JobType, desc: Mapping[str, Any], until: float) -> tuple[float, float]:
    """(training, billable) seconds per instance, so far for a job still running."""
    if job_type is JobType.TRAINING:
        start = timestamp(desc.get("TrainingStartTime"))
        end = timestamp(desc.get("TrainingEndTime"))
        elapsed = 0.0 if start is None else max(0.0, (until if end is None else end) - start)
        training = _number(desc.get("TrainingTimeInSeconds"))
        training = elapsed if training is None else training
        billable = _number(desc.get("BillableTimeInSeconds"))
        return training, training if billable is None else billable
    start = timestamp(desc.get("ProcessingStartTime"))
    end = timestamp(desc.get("ProcessingEndTime"))
    seconds = 0.0 if start is None else max(0.0, (until if end is None else end) - start)
    return seconds, seconds


def console_urls(
    job_type: JobType, name: str, region: str, local_jobs: str | None
) -> tuple[str, str]:
    """(job page, logs) links: the SageMaker console and CloudWatch Logs; on the local
    backend, the job's Describe document and its log folder."""
    if local_jobs:
        base = local_jobs.rstrip("/") + "/" + name
        return f"file://{quote(base)}/status.json", f"file://{quote(base)}/logs/"
    console = f"https://{region}.console.aws.amazon.com"
    page = "jobs" if job_type is JobType.TRAINING else "processing-jobs"
    job_url = f"{console}/sagemaker/home?region={region}#/{page}/{name}"
    # the CloudWatch console's fragment escapes '/' as $252F and '?'/'=' as $3F/$3D
    group = LOG_GROUPS[job_type].replace("/", "$252F")
    logs_url = (
        f"{console}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{group}"
        f"$3FlogStreamNameFilter$3D{name}"
    )
    return job_url, logs_url


def job_bill(entry: Mapping[str, Any], now: float, region: str, local_jobs: str | None) -> JobBill:
    """The bill of one job of a run record (ssm_rules.runrecord)."""
    job_type = JobType(entry["job_type"])
    desc = entry.get("description") or {}
    ended = timestamp(
        desc.get("TrainingEndTime" if job_type is JobType.TRAINING else "ProcessingEndTime")
    )
    state = entry.get("state") or desc.get(
        "TrainingJobStatus" if job_type is JobType.TRAINING else "ProcessingJobStatus", ""
    )
    done = state in {s.value for s in JobState} and JobState(state).is_done
    until = ended if ended is not None else now
    if ended is None and done:  # ended before it started (no capacity, stopped early)
        until = timestamp(desc.get("LastModifiedTime")) or now
    training, billable = _seconds(job_type, desc, until)
    retained = retained_seconds(desc)
    metrics = dict(entry.get("metrics") or {})
    for m in desc.get("FinalMetricDataList") or []:  # SageMaker's own final values win
        if _number(m.get("Value")) is not None:
            metrics[m["MetricName"]] = float(m["Value"])
    job_url, logs_url = console_urls(job_type, entry["name"], region, local_jobs)
    return JobBill(
        name=entry["name"],
        rule=entry["rule"],
        wildcards=dict(entry.get("wildcards") or {}),
        job_type=job_type,
        instance_type=entry["instance_type"],
        count=int(entry["instance_count"]),
        spot=bool(desc.get("EnableManagedSpotTraining", entry.get("spot", False))),
        state=state,
        secondary=entry.get("secondary") or desc.get("SecondaryStatus", ""),
        how=entry.get("how", "submitted"),
        price=_number(entry.get("price")),
        created=timestamp(desc.get("CreationTime")) or timestamp(entry.get("submitted")),
        ended=ended,
        phases=_phases(job_type, desc, until),
        training_seconds=training,
        billable_seconds=billable,
        retained_seconds=retained,
        metrics=metrics,
        console_url=job_url,
        logs_url=logs_url,
    )


def bill_of(record: Mapping[str, Any], now: float) -> Bill:
    jobs: Sequence[Mapping[str, Any]] = record.get("jobs") or []
    region = record.get("region", "")
    local_jobs = record.get("jobs_root") if record.get("backend") == "local" else None
    return Bill(tuple(job_bill(e, now, region, local_jobs) for e in jobs))
