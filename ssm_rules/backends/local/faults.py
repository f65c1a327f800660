"""Spot capacity and interruptions, simulated: what managed spot does to a training job.

A test (or a curious user) points ``SSM_LOCAL_FAULTS`` at a JSON file keyed by job-name
prefix (the rule name comes first in our job names, followed by ``-``)::

    {"train": {"spot_capacity": false}}                                  # no spot capacity
    {"train": {"spot_interruptions": 1, "interrupt_after_seconds": 1}}   # reclaimed once

Only jobs with ``EnableManagedSpotTraining`` are affected, as on SageMaker. An interruption
follows managed spot: SIGTERM to the hosts (the grace period lets the script save), the
checkpoints are uploaded, SecondaryStatus goes Interrupted, then the job starts again on a
fresh instance (new sandboxes) with the checkpoints restored, still the same job.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

FAULTS_ENV = "SSM_LOCAL_FAULTS"
# What SageMaker reports when it cannot get the instances (InsufficientCapacityError).
CAPACITY_REASON = (
    "CapacityError: Unable to provision requested ML compute capacity. "
    "Please retry using a different ML instance type."
)


@dataclass(frozen=True)
class SpotFaults:
    capacity: bool = True
    interruptions: int = 0
    interrupt_after_seconds: float = 1.0


def spot_faults(job_name: str, body: dict[str, Any]) -> SpotFaults:
    if not body.get("EnableManagedSpotTraining"):
        return SpotFaults()
    path = os.environ.get(FAULTS_ENV)
    if not path or not os.path.isfile(path):
        return SpotFaults()
    with open(path) as f:
        table = json.load(f)
    for prefix, fault in sorted(table.items(), key=lambda kv: -len(kv[0])):
        # a rule's name then "-": "train" is not a prefix of rule "trainer"'s jobs
        if job_name == prefix or job_name.startswith(prefix + "-"):
            return SpotFaults(
                capacity=bool(fault.get("spot_capacity", True)),
                interruptions=int(fault.get("spot_interruptions", 0)),
                interrupt_after_seconds=float(fault.get("interrupt_after_seconds", 1.0)),
            )
    return SpotFaults()
