"""The jobs Ctrl-C stops (ssm_rules.submission.InFlight): a Create under way in another
thread (a spot retry from an end-handling worker, the submit pool) when cancel() comes is
waited for, so the job it makes is in the snapshot that is stopped, and nothing is created
after it."""

from __future__ import annotations

import threading

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.base import JobType
from ssm_rules.submission import InFlight


def test_cancel_waits_for_a_create_under_way_and_refuses_later_ones() -> None:
    in_flight = InFlight()
    calling, answer = threading.Event(), threading.Event()

    def create() -> None:  # a Create call that is slow to return
        with in_flight.creating("train-retry", JobType.TRAINING, "train"):
            calling.set()
            answer.wait(10)

    worker = threading.Thread(target=create)
    worker.start()
    calling.wait(10)
    snapshot: dict[str, JobType] = {}
    canceller = threading.Thread(target=lambda: snapshot.update(in_flight.cancel()))
    canceller.start()
    canceller.join(0.3)
    assert canceller.is_alive()  # waits while the Create is under way
    answer.set()
    canceller.join(10)
    worker.join(10)
    assert snapshot == {"train-retry": JobType.TRAINING}
    with pytest.raises(
        WorkflowError, match="rule train: not submitted, the run is being cancelled"
    ):
        with in_flight.creating("train-later", JobType.TRAINING, "train"):
            pass
