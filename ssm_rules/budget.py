"""``--sagemaker-max-cost`` during a run: no job starts that could take the spend past it.

Before each Create*Job: spent (jobs that ended) + the worst case of the jobs running + the
worst case of this job must stay within the budget. Spent is what SageMaker bills:

- training: BillableTimeInSeconds x InstanceCount x on-demand price. BillableTimeInSeconds is
  per instance ("multiply by InstanceCount", DescribeTrainingJob); with managed spot it is
  the seconds billed at the spot rate, which is at most on-demand: the figure is an upper bound.
- processing: Describe has no billable time; ProcessingEndTime - ProcessingStartTime per
  instance is what is billed.
- a job that never started (no start time: failed while acquiring capacity) costs 0.
- a training job's warm pool: WarmPoolStatus.ResourceRetainedBillableTimeInSeconds x
  InstanceCount at the on-demand price, counted as it grows (the pool outlives the job).

A job's worst case is MaxRuntimeInSeconds, plus its keep-alive when it keeps a warm pool.
When it ends, what is left of its keep-alive stays reserved until the pool is taken, ended
or expired: a pool no job takes is billed meanwhile.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.base import JobStatus, JobType
from ssm_rules.plan import worst_cost
from ssm_rules.pricing import Prices
from ssm_rules.spec import TaskSpec
from ssm_rules.warm_pools import retainable_seconds, retained_seconds


def timestamp(value: Any) -> float | None:
    """Epoch seconds of a time as boto3 (datetime) or a JSON record (ISO string) has it."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def billed_instance_seconds(status: JobStatus, job_type: JobType, count: int) -> float:
    """Instance-seconds SageMaker bills for an ended job (see the module docstring)."""
    if job_type is JobType.TRAINING:
        seconds = status.billable_seconds
        if seconds is None:
            seconds = status.training_seconds or 0
        # a warm pool kept after the job is billed too ("ResourceRetainedBillableTimeInSeconds
        # * InstanceCount", WarmPoolStatus)
        return (float(seconds) + retained_seconds(status.extra)) * count
    if status.start_time is None or status.end_time is None:
        return 0.0
    return max(0.0, (status.end_time - status.start_time).total_seconds()) * count


class Budget:
    """Thread-safe: jobs are submitted from run_job and from the status thread (group
    members, spot retries)."""

    def __init__(self, max_cost: float, prices: Prices) -> None:
        self.max_cost = max_cost
        self.prices = prices
        self.spent = 0.0
        self._running: dict[str, float] = {}  # job name → its worst case
        self._pools: dict[str, float] = {}  # job name → the worst case left of its warm pool
        self._lock = threading.Lock()

    def admit(self, spec: TaskSpec, name: str) -> None:
        """Reserve the job's worst case, or refuse it (before anything is sent)."""
        worst = worst_cost(spec, self.prices)
        with self._lock:
            reserved = sum(self._running.values()) + sum(self._pools.values())
            if worst is None or self.spent + reserved + worst > self.max_cost:
                cost = "an unknown cost" if worst is None else f"${worst:.2f}"
                pools = f" and {len(self._pools)} warm pool(s)" if self._pools else ""
                raise WorkflowError(
                    f"{spec.label}: not submitted: ${self.spent:.2f} spent so far and "
                    f"${reserved:.2f} reserved by {len(self._running)} running job(s)"
                    f"{pools}; this job's worst case ({cost}) would pass --sagemaker-max-cost "
                    f"{self.max_cost:g}. Raise it and rerun: finished jobs are not run again"
                )
            self._running[name] = worst

    def release(self, name: str) -> None:
        """The reserved job was not submitted (an earlier run's job was adopted instead)."""
        with self._lock:
            self._running.pop(name, None)

    def settle(self, spec: TaskSpec, status: JobStatus) -> None:
        """A job ended: its reservation becomes what it was billed."""
        price = self.prices.price(spec.job_type, spec.instance.instance_type) or 0.0
        count = spec.instance.count
        seconds = billed_instance_seconds(status, spec.job_type, count)
        pool_seconds = retainable_seconds(status.extra) if spec.job_type is JobType.TRAINING else 0
        with self._lock:
            self._running.pop(status.name, None)
            self.spent += price * seconds / 3600
            if pool_seconds:
                self._pools[status.name] = price * pool_seconds * count / 3600

    def pool_closed(self, name: str) -> None:
        """The warm pool of job ``name`` is billed no more: its reservation ends."""
        with self._lock:
            self._pools.pop(name, None)

    def add_retained(self, spec: TaskSpec, seconds: float) -> None:
        """A job's warm pool was kept ``seconds`` more (per instance) than counted so far."""
        price = self.prices.price(spec.job_type, spec.instance.instance_type) or 0.0
        with self._lock:
            self.spent += price * seconds * spec.instance.count / 3600
