"""A SageMaker job's CloudWatch Logs: every instance's stream, read whole or incrementally.

SageMaker writes a job's logs to the group ``/aws/sagemaker/TrainingJobs`` or
``/aws/sagemaker/ProcessingJobs``, one stream per instance named ``<job>/algo-<n>-<epoch>``.
The group and streams appear only once an instance has started, so "not found" means
"nothing yet", not an error.

GetLogEvents with ``startFromHead=True`` pages forward; at the end of a stream it returns the
token it was given, which is how the end is detected. :class:`JobLogReader` keeps that last
token per stream, so the next ``read()`` returns only what was appended since.

Reading costs one DescribeLogStreams and a GetLogEvents per stream and page, and CloudWatch
Logs throttles both per account and region (25 requests per second each, by default): with
100 jobs running, a read of every job every round would be throttled. A
:class:`LogCallBudget` caps the calls of one status round, shared by all the readers of the
backend; a read that finds it spent raises :class:`LogBudgetSpent` before any call (the
executor reads the least recently read jobs first, so every job gets its turn), and one cut
part-way keeps its tokens and goes on next round. The read of a job that has ended is never
cut: its log is completed at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ssm_rules.backends.aws.errors import error_code
from ssm_rules.backends.base import JobType, LogBudgetSpent, LogEvent

LOG_GROUPS = {
    JobType.TRAINING: "/aws/sagemaker/TrainingJobs",
    JobType.PROCESSING: "/aws/sagemaker/ProcessingJobs",
}
MAX_PAGES_PER_READ = 10_000  # a stream that never ends its tokens is a service bug
# Log calls per status round for all running jobs together: under one second of CloudWatch
# Logs' default quotas (GetLogEvents and DescribeLogStreams: 25 per second per account), with
# room for other clients of the account.
LOG_CALLS_PER_ROUND = 20
STREAMS_EVERY = 5  # while a job runs, its streams are listed again every 5th read


class LogCallBudget:
    """The CloudWatch Logs calls the readers may still make this status round."""

    def __init__(self, per_round: int = LOG_CALLS_PER_ROUND) -> None:
        self.per_round = per_round
        self.left = per_round
        self._lock = threading.Lock()

    def renew(self) -> None:
        """A new status round."""
        with self._lock:
            self.left = self.per_round

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def _unbounded() -> bool:
    return False


class _BudgetCut(Exception):
    """The budget ran out part-way through a read (internal: the read returns what it has)."""


def _missing(e: Exception) -> bool:
    return error_code(e) == "ResourceNotFoundException"


@dataclass
class JobLogReader:
    """Reads one job's log events; each ``read()`` continues where the previous one ended."""

    client: Any  # boto3 CloudWatch Logs client
    job_name: str
    job_type: JobType
    tokens: dict[str, str] = field(default_factory=dict)  # stream → last nextForwardToken
    budget: LogCallBudget | None = None  # None: unbounded
    ended: Callable[[], bool] = _unbounded  # True once the job ended: reads are not cut
    known_streams: list[str] = field(default_factory=list)
    reads: int = 0

    @property
    def group(self) -> str:
        return LOG_GROUPS[JobType(self.job_type)]

    def streams(self) -> list[str]:
        """The job's stream names, in name order (algo-1 before algo-2)."""
        names: list[str] = []
        kwargs: dict[str, Any] = {
            "logGroupName": self.group,
            # the "/" keeps job "train-1" from matching the streams of "train-10"
            "logStreamNamePrefix": f"{self.job_name}/",
        }
        while True:
            self._may_call()
            try:
                reply = self.client.describe_log_streams(**kwargs)
            except Exception as e:
                if _missing(e):
                    return names
                raise
            names.extend(s["logStreamName"] for s in reply.get("logStreams", []))
            token = reply.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return sorted(names)
            kwargs["nextToken"] = token

    def read(self) -> list[LogEvent]:
        """The events appended since the previous read (all of them the first time).

        All or nothing: when a call fails part-way (throttling that outlasted botocore's
        retries), the tokens go back to where this read began, so the next read returns
        the events this one had fetched instead of skipping them.
        """
        if self.budget is not None and not self.ended() and self.budget.left <= 0:
            raise LogBudgetSpent(f"log of {self.job_name}: this round's log calls are spent")
        start = dict(self.tokens)
        events: list[LogEvent] = []
        try:
            for event in self.iter_new():
                events.append(event)
        except _BudgetCut:
            pass  # the tokens stand where the last call left them: next round goes on there
        except BaseException:
            self.tokens = start
            raise
        return events

    def _may_call(self) -> None:
        if self.budget is not None and not self.ended() and not self.budget.take():
            raise _BudgetCut

    def iter_new(self) -> Iterator[LogEvent]:
        """While the job runs (a budget, not ended): one page per stream, and the streams
        listed again only every ``STREAMS_EVERY`` reads (a job's instances start together);
        once it ended, or without a budget: every stream, to its end."""
        whole = self.budget is None or self.ended()
        self.reads += 1
        if whole or not self.known_streams or self.reads % STREAMS_EVERY == 0:
            self.known_streams = self.streams()
        for stream in self.known_streams:
            yield from self._read_stream(stream, whole)

    def _read_stream(self, stream: str, whole: bool = True) -> Iterator[LogEvent]:
        token = self.tokens.get(stream)
        for _ in range(MAX_PAGES_PER_READ):
            kwargs: dict[str, Any] = {
                "logGroupName": self.group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if token:
                kwargs["nextToken"] = token
            self._may_call()
            try:
                reply = self.client.get_log_events(**kwargs)
            except Exception as e:
                if _missing(e):
                    return
                raise
            for event in reply.get("events", []):
                yield LogEvent(stream=stream, message=event.get("message", ""))
            next_token = reply.get("nextForwardToken")
            if not next_token or next_token == token:
                return  # end of the stream: the same token comes back
            token = self.tokens[stream] = next_token
            if not whole:
                return  # the rest next round: telling the end costs one more call
