"""The live board of a run: what the user reads while the jobs run.

- a line per status change: rule, wildcards, job, SecondaryStatus (processing jobs: their
  status), time since the job was created;
- once per job, the command that follows its log;
- metric values (the rule's ``metric_definitions``) as they change, taken from the job's log
  lines as SageMaker takes them: each regex on each line, the first group a number;
- at a steady interval (and at the end) a summary: running / on spot / done / failed and
  what was spent so far (ssm_rules.bill).

The executor calls :class:`Board` at a few points (submitted, status seen, log lines read,
ended, shut down); the board keeps the run record (ssm_rules.runrecord) up to date. The
line formats are pure functions.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobState, JobStatus, JobType, LogEvent
from ssm_rules.bill import LOG_GROUPS, Bill, bill_of
from ssm_rules.budget import timestamp
from ssm_rules.pricing import Prices
from ssm_rules.runrecord import RunRecord
from ssm_rules.spec import TaskSpec

SUMMARY_SECONDS = 60.0  # between two summary lines while jobs run


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    return f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"


def money(usd: float) -> str:
    """Cents for real sums, four decimals for the small ones a short job costs."""
    if 0 < usd < 0.00005:
        return "<$0.0001"  # not "$0.0000": it did cost something
    return f"${usd:.2f}" if usd >= 1 or usd == 0 else f"${usd:.4f}"


def wildcards_text(wildcards: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in wildcards.items())


def _who(rule: str, wildcards: Mapping[str, str]) -> str:
    """``rule``: a rule's name, or the label of a group's job ("group g", TaskSpec.label)."""
    w = wildcards_text(wildcards)
    who = rule if rule.startswith("group ") else f"rule {rule}"
    return who + (f" ({w})" if w else "")


def _name(spec: TaskSpec) -> str:
    """How the board and the record name a job: its rule, or "group g" for a group's job."""
    return spec.label if spec.members else spec.rule


def status_line(
    rule: str, wildcards: Mapping[str, str], job: str, status: str, elapsed: float | None
) -> str:
    after = f" after {duration(elapsed)}" if elapsed is not None else ""
    return f"{_who(rule, wildcards)}: job {job} {status}{after}"


def tail_line(rule: str, wildcards: Mapping[str, str], job: str, command: str) -> str:
    return f"{_who(rule, wildcards)}: job {job}: follow its log with: {command}"


def metric_line(
    rule: str, wildcards: Mapping[str, str], job: str, values: Mapping[str, float]
) -> str:
    shown = ", ".join(f"{k}={v:g}" for k, v in values.items())
    return f"{_who(rule, wildcards)}: job {job} metrics: {shown}"


def summary_line(bill: Bill, backend: str) -> str:
    running = [j for j in bill.jobs if j.running]
    done = [j for j in bill.jobs if j.state == JobState.COMPLETED.value]
    failed = [j for j in bill.jobs if j.state in (JobState.FAILED.value, JobState.STOPPED.value)]
    spot = sum(1 for j in running if j.spot)
    spent = "would cost" if backend == "local" else "spent"
    if bill.priced:
        cost = money(bill.total)
    else:
        cost = f"{bill.instance_seconds / 3600:.3f} instance-hours (not every job has a price)"
    return (
        f"SageMaker: {len(running)} running ({spot} on spot), {len(done)} done, "
        f"{len(failed)} failed; {spent} {cost} so far"
    )


def follow_command(
    backend: str, job_type: JobType, job: str, logs: Sequence[str], jobs_root: str | None
) -> str:
    """How to follow a job's log as it runs: the rule's log file when it is on this disk
    (the executor keeps it up to date), the local job's host logs, or CloudWatch Logs."""
    for uri in logs:
        if uri.startswith("file://"):
            return f"tail -f {_file_path(uri)}"
    if backend == "local" and jobs_root:
        return f"tail -f {Path(jobs_root) / job / 'logs'}/algo-*.log"
    return f"aws logs tail {LOG_GROUPS[job_type]} --log-stream-name-prefix {job}/ --follow"


def _file_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


@dataclass
class MetricReader:
    """SageMaker's metric extraction on log lines: every definition's regex is searched in
    each line and its first group, when it parses as a number, is the metric's new value."""

    definitions: Mapping[str, str]
    values: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._compiled = {name: re.compile(rx) for name, rx in self.definitions.items()}

    def read(self, lines: Sequence[str]) -> dict[str, float]:
        """The metrics whose value changed, with their last value in ``lines``."""
        changed: dict[str, float] = {}
        for line in lines:
            for name, rx in self._compiled.items():
                for match in rx.finditer(line):
                    try:
                        value = float(match.group(1))
                    except (IndexError, TypeError, ValueError):
                        continue
                    if self.values.get(name) != value:
                        self.values[name] = value
                        changed[name] = value
        return changed


@dataclass
class _Job:
    spec: TaskSpec
    name: str
    job_type: JobType
    shown: str = ""  # the status last shown
    metrics: MetricReader | None = None


def _courtesy(method: Callable[..., Any]) -> Callable[..., Any]:
    """The board never fails a run: a record that cannot be written (disk full) or a line
    that cannot be made is said once, and the jobs go on."""

    @functools.wraps(method)
    def safe(self: Board, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._lock:  # called from the status coroutine and the end-handling threads
                return method(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 — see docstring
            if not self._failed:
                self._failed = True
                self.logger.warning(f"the run's board and record are incomplete: {e!r}")
            return None

    return safe


class Board:
    """One per run, called by the executor; never raises into it (``_courtesy``)."""

    def __init__(
        self,
        logger: Any,
        backend: str,
        region: str,
        local_root: Path,
        staging_root: str,
        jobs_root: str | None,
        prices: Prices,
        clock: Callable[[], float] = time.time,
        summary_seconds: float = SUMMARY_SECONDS,
    ) -> None:
        self.logger = logger
        self.backend = backend
        self.region = region
        self.local_root = local_root
        self.staging_root = staging_root
        self.jobs_root = jobs_root
        self.prices = prices
        self.clock = clock
        self.summary_seconds = summary_seconds
        self.record: RunRecord | None = None  # made with the first job: no job, no record
        self._jobs: dict[str, _Job] = {}
        self._last_summary = clock()
        self._failed = False
        self._lock = threading.RLock()

    def _price_source(self) -> str:
        table = self.prices.table
        if table is None:
            return f"no prices: {self.prices.unavailable}"
        return f"on-demand prices of {table.region}, {table.fetched.isoformat()}"

    def _record(self) -> RunRecord:
        if self.record is None:
            self.record = RunRecord.create(
                self.local_root,
                self.backend,
                self.region,
                self.staging_root,
                self.jobs_root,
                self._price_source(),
            )
        return self.record

    # --- the executor's calls ---------------------------------------------------------------

    @_courtesy
    def submitted(self, spec: TaskSpec, name: str, job_type: JobType, how: str) -> None:
        """``how``: "submitted", "re-attached" (still running) or "reused" (completed)."""
        metrics = dict(spec.options.metric_definitions)
        self._jobs[name] = _Job(spec, name, job_type, metrics=MetricReader(metrics))
        inst = spec.instance
        self._record().add_job(
            {
                "name": name,
                "rule": _name(spec),
                "wildcards": dict(spec.wildcards),
                "job_type": job_type.value,
                "instance_type": inst.instance_type,
                "instance_count": inst.count,
                "spot": inst.spot,
                "max_run_seconds": inst.max_run_seconds,
                "price": self.prices.price(job_type, inst.instance_type),
                "how": how,
                "submitted": _iso(self.clock()),
                "logs": list(spec.logs),
                "state": JobState.IN_PROGRESS.value,
                "secondary": "",
                "description": {},
                "metrics": {},
            }
        )
        if how != "reused":
            command = follow_command(self.backend, job_type, name, spec.logs, self.jobs_root)
            self.logger.info(tail_line(_name(spec), dict(spec.wildcards), name, command))

    @_courtesy
    def seen(self, name: str, status: JobStatus | None) -> None:
        """A status round's answer for a job (None: not reported this round)."""
        job = self._jobs.get(name)
        if job is None or status is None:
            return
        shown = status.secondary or status.state.value
        record = self._record()
        entry = record.job(name) or {}
        if shown == job.shown and entry.get("state") == status.state.value and not status.is_done:
            return  # nothing new: the record is written on changes only
        record.update_job(name, status)
        if shown != job.shown:
            job.shown = shown
            created = timestamp(status.extra.get("CreationTime")) or timestamp(
                entry.get("submitted")
            )
            elapsed = None if created is None else self.clock() - created
            self.logger.info(
                status_line(_name(job.spec), dict(job.spec.wildcards), name, shown, elapsed)
            )

    @_courtesy
    def log_lines(self, name: str, events: Sequence[LogEvent]) -> None:
        job = self._jobs.get(name)
        if job is None or job.metrics is None or not job.metrics.definitions or not events:
            return
        changed = job.metrics.read([e.message for e in events])
        if changed:
            self._record().update_job(name, metrics=dict(job.metrics.values))
            self.logger.info(metric_line(_name(job.spec), dict(job.spec.wildcards), name, changed))

    @_courtesy
    def tick(self) -> None:
        """After a status round: the summary, at most every ``summary_seconds``."""
        now = self.clock()
        if self.record is None:
            return
        if now - self._last_summary < self.summary_seconds:
            return
        self._last_summary = now
        self.logger.info(summary_line(self.bill(), self.backend))

    def bill(self) -> Bill:
        assert self.record is not None
        return bill_of(self.record.doc, self.clock())

    @_courtesy
    def close(self) -> RunRecord | None:
        """The run is over: the last summary, the record closed."""
        if self.record is None:
            return None
        self.logger.info(summary_line(self.bill(), self.backend))
        self.record.finish()
        return self.record


def _iso(epoch: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()
