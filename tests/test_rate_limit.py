"""Create calls spaced to --sagemaker-max-submit-rate, counted on a virtual clock."""

from __future__ import annotations

import threading

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.rate_limit import RateLimiter
from ssm_rules.settings import ExecutorSettings


class VirtualClock:
    """time.monotonic / time.sleep where sleeping moves the clock, not the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1 - 1e-9) for start in times)


def test_calls_are_spaced_to_the_rate() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(2, clock.clock, clock.sleep)
    turns = []
    for _ in range(10):
        limiter.wait()
        turns.append(clock.now)
    assert most_in_one_second(turns) == 2
    assert turns[-1] - turns[0] == pytest.approx(4.5)  # no slower than the rate either


def test_threads_take_distinct_turns() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(4, clock.clock, lambda s: None)
    waits: list[float] = []
    threads = [threading.Thread(target=lambda: waits.append(limiter.wait())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([i * 0.25 for i in range(8)])


def test_no_limit_never_waits() -> None:
    limiter = RateLimiter(0, sleep=lambda s: pytest.fail("slept"))
    assert [limiter.wait() for _ in range(100)] == [0.0] * 100


def test_a_negative_rate_is_refused_with_the_fix() -> None:
    with pytest.raises(WorkflowError, match=r"--sagemaker-max-submit-rate -1 is negative: write"):
        ExecutorSettings(max_submit_rate=-1)
