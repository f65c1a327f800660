"""Spacing calls to a rate: at most ``rate`` calls in any second, each waiting its turn.

SageMaker throttles its control plane per account and region (CreateTrainingJob among them;
AWS publishes no figure, users report throttling at a few requests per second), and a throttled
Create costs botocore's backoff and retries, and with many jobs can fail past them. Snakemake
itself would submit up to 100 jobs per second (``--max-jobs-per-timespan``, default 100/1s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Each :meth:`wait` returns no sooner than ``1 / rate`` seconds after the previous one's
    turn; threads take turns in the order they asked. ``rate`` None or 0: no limit."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spacing = 1.0 / rate if rate else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")  # the earliest time of the next turn
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Wait for this call's turn; returns the seconds waited."""
        if not self.spacing:
            return 0.0
        with self._lock:  # reserve a turn, then sleep without holding the lock
            now = self._clock()
            turn = max(now, self._next)
            self._next = turn + self.spacing
        delay = turn - now
        if delay > 0:
            self._sleep(delay)
        return delay
