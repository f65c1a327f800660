"""What earlier jobs of a rule were billed: the plan's "expected" cost.

Expected = the median billable seconds per instance of the rule's earlier Completed jobs that
ran on the same instance type and count, x count x price. Earlier jobs are found as the
executor finds jobs to re-attach (``Backend.find`` by name prefix and the rule tag): the
local backend's job records; on AWS, training jobs through one SageMaker Search per rule
(whole job records). Processing jobs on AWS have no history here: their summaries carry no
times, and a Describe per earlier job is too many calls for a dry run.
"""

from __future__ import annotations

import statistics

from ssm_rules.backends.base import Backend, JobState, JobStatus, JobType
from ssm_rules.budget import billed_instance_seconds
from ssm_rules.identity import RULE_TAG
from ssm_rules.requests import job_name_prefix
from ssm_rules.spec import TaskSpec


def median_billable_seconds(spec: TaskSpec, earlier: list[JobStatus]) -> float | None:
    """Per instance, of the Completed jobs with this spec's instance type and count."""
    inst = spec.instance
    seconds = [
        billed_instance_seconds(s, spec.job_type, 1)
        for s in earlier
        if s.state is JobState.COMPLETED and s.instances == (inst.instance_type, inst.count)
    ]
    seconds = [s for s in seconds if s > 0]
    return statistics.median(seconds) if seconds else None


class History:
    """Earlier jobs, looked up once per rule and job type."""

    def __init__(self, backend: Backend, backend_name: str) -> None:
        self.backend = backend
        self.backend_name = backend_name
        self._found: dict[tuple[str, JobType], list[JobStatus]] = {}

    def median_seconds(self, spec: TaskSpec) -> float | None:
        if self.backend_name == "aws" and spec.job_type is JobType.PROCESSING:
            return None  # see the module docstring
        key = (spec.rule, spec.job_type)
        if key not in self._found:
            try:
                prefix = job_name_prefix(spec.rule)
                self._found[key] = self.backend.find(spec.job_type, prefix, {RULE_TAG: spec.rule})
            except Exception:  # noqa: BLE001 — history is a courtesy: no history, no estimate
                self._found[key] = []
        return median_billable_seconds(spec, self._found[key])
