"""The executor's status round (check_active_jobs): a job whose end takes long to handle
(a slow promotion copy, a resubmission) is handled in a worker thread, so the other jobs'
ends are reported and their statuses read in the same round; its own Snakemake job is
reported (from the status coroutine, as the interface expects) once its handling is done.

The executor is driven here without Snakemake's scheduler: a small in-memory backend answers
the status round, and the ``report_job_*`` calls are what is checked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from ssm_rules import executor as executor_module
from ssm_rules.backends.base import JobState, JobStatus, JobType
from ssm_rules.board import Board
from ssm_rules.executor import SUCCEEDED, Ended, Executor, Tracked
from ssm_rules.pricing import Prices
from ssm_rules.settings import ExecutorSettings
from ssm_rules.submission import InFlight, Submission
from tests.test_requests import place
from tests.test_spec import spec_of


class Statuses:
    """A backend's poll: the state of each named job, and which jobs each round asked about."""

    def __init__(self, states: dict[str, JobState]) -> None:
        self.states = states
        self.asked: list[list[str]] = []

    def poll(self, jobs):
        self.asked.append([name for name, _ in jobs])
        return {name: JobStatus(name, self.states[name]) for name, _ in jobs}


@pytest.fixture
def executor(monkeypatch, tmp_path):
    monkeypatch.setattr(executor_module, "END_WAIT_SECONDS", 0.2)
    ex = Executor.__new__(Executor)  # no Snakemake workflow: the round alone
    ex.settings = ExecutorSettings()
    ex.logger = logging.getLogger("test_status_round")
    ex.in_flight = InFlight()
    ex.submitter = SimpleNamespace(budget=None)
    ex.board = Board(ex.logger, "local", "us-east-1", tmp_path, "file:///", None, Prices(None))
    ex._workers = ThreadPoolExecutor(2)
    ex._failed_polls = 0
    ex.log_refresh_seconds = float("inf")
    ex.status_rate_limiter = contextlib.nullcontext()
    ex.reports = []
    monkeypatch.setattr(Executor, "report_job_success", lambda self, i: self.reports.append(i))
    yield ex
    ex._workers.shutdown(wait=True)


def active(tmp_path, name: str) -> SimpleNamespace:
    sub = Submission(spec_of(tmp_path), place(name), JobType.TRAINING)
    return SimpleNamespace(job=SimpleNamespace(output=[]), aux={"ssm_rules": Tracked(sub)})


def round_of(ex: Executor, jobs) -> list:
    async def run():
        return [info async for info in ex.check_active_jobs(jobs)]

    return asyncio.run(run())


def test_a_slow_end_does_not_hold_up_the_other_jobs(tmp_path, executor, monkeypatch):
    slow, fast, running = (active(tmp_path, n) for n in ("slow", "fast", "running"))
    done, gate = JobState.COMPLETED, threading.Event()
    backend = Statuses({"slow": done, "fast": done, "running": JobState.IN_PROGRESS})
    executor.ctx = SimpleNamespace(backend=backend)

    def act(self, t: Tracked, status: JobStatus) -> Ended:
        if t.current.name == "slow":
            gate.wait(timeout=60)  # a promotion copy that takes long
        return SUCCEEDED

    monkeypatch.setattr(Executor, "_act", act)
    try:
        still = round_of(executor, [slow, fast, running])
        # the fast end is reported in the round it ended; the slow one stays active
        assert executor.reports == [fast]
        assert still == [running, slow]
        still = round_of(executor, still)  # its handling goes on: not asked about again
        assert backend.asked[-1] == ["running"] and still == [running, slow]
    finally:
        gate.set()
    slow.aux["ssm_rules"].ending.result(timeout=60)  # the slow handling has returned
    assert round_of(executor, still) == [running]
    assert executor.reports == [fast, slow]


def test_an_error_while_handling_an_end_is_that_jobs_error(tmp_path, executor, monkeypatch):
    broken = active(tmp_path, "broken")
    executor.ctx = SimpleNamespace(backend=Statuses({"broken": JobState.COMPLETED}))
    errors = []
    monkeypatch.setattr(
        Executor, "report_job_error", lambda self, info, msg: errors.append((info, msg))
    )

    def act(self, t: Tracked, status: JobStatus) -> Ended:
        raise OSError("disk full")

    monkeypatch.setattr(Executor, "_act", act)
    assert round_of(executor, [broken]) == []
    assert errors == [(broken, "OSError: disk full\n")] and executor.reports == []


def test_the_status_threads_wait_before_the_executor_is_ready_does_not_fail() -> None:
    """Snakemake starts the status thread before ``__post_init__`` runs; a wait that read an
    attribute not yet set would end that thread silently (the scheduler does not exist yet to
    hear of it) and the run would hang with its jobs done. Half set up, it only waits."""
    ex = Executor.__new__(Executor)
    ex.ctx = SimpleNamespace(backend=None)  # set early in __post_init__; _failed_polls is not
    asyncio.run(asyncio.wait_for(ex.sleep(), timeout=5))
