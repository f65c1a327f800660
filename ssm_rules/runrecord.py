"""The record of a run, written as the run goes.

``<local root>/runs/<run id>/run.json`` (a snapshot) and ``events.jsonl`` (what changed
since; see :class:`RunRecord`); after the run, ``report.html`` and ``timeline.png`` next to
them (ssm_rules.report). Every submission, status change, metric change and end is written
at once, so a run killed at any moment leaves a record that ``python -m ssm_rules status``
/ ``report`` / ``stop`` read. The job descriptions are what the backend reported
(Describe*Job fields), kept to what the bill and the board read.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobState, JobStatus

RUNS_DIR = "runs"
RECORD_FILE = "run.json"
JOURNAL_FILE = "events.jsonl"
VERSION = 1
# The Describe*Job fields the bill, the board and the history read. Not the whole reply:
# Environment and HyperParameters may hold what the user would not want in a report.
DESCRIPTION_FIELDS = (
    "TrainingJobStatus",
    "ProcessingJobStatus",
    "SecondaryStatus",
    "SecondaryStatusTransitions",
    "FailureReason",
    "ExitMessage",
    "CreationTime",
    "LastModifiedTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "ProcessingStartTime",
    "ProcessingEndTime",
    "TrainingTimeInSeconds",
    "BillableTimeInSeconds",
    "EnableManagedSpotTraining",
    "WarmPoolStatus",
    "ResourceConfig",
    "ProcessingResources",
    "StoppingCondition",
    "FinalMetricDataList",
    "ModelArtifacts",
)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def jsonable(value: Any) -> Any:
    """boto3 replies hold datetimes: ISO strings in the record (what the local backend writes)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def description_of(status: JobStatus) -> dict[str, Any]:
    return {k: jsonable(status.extra[k]) for k in DESCRIPTION_FIELDS if k in status.extra}


def new_run_id(now: datetime.datetime | None = None) -> str:
    """Sortable by start time; the pid keeps two runs started in one second apart."""
    now = now or utcnow()
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"


@dataclass
class RunRecord:
    """``run.json`` is a snapshot; every change after it is appended to ``events.jsonl``
    (one JSON line: a job added, or fields of a job set), so a change costs a write of its
    own size, not of the whole run's, and a kill loses nothing already written. The end of
    the run writes the whole snapshot and drops the journal."""

    path: Path  # .../runs/<run id>/run.json
    doc: dict[str, Any]
    written: int = 0  # bytes written by this object (benchmarks/board_record.py)

    @classmethod
    def create(
        cls,
        local_root: Path,
        backend: str,
        region: str,
        staging_root: str,
        jobs_root: str | None,
        price_source: str,
    ) -> RunRecord:
        run_id = new_run_id()
        path = Path(local_root).resolve() / RUNS_DIR / run_id / RECORD_FILE
        now = utcnow().isoformat()
        doc = {
            "version": VERSION,
            "run_id": run_id,
            "workdir": str(Path.cwd()),
            "backend": backend,
            "region": region,
            "staging_root": staging_root,
            "jobs_root": jobs_root,
            "prices": price_source,
            "client": {"pid": os.getpid(), "host": socket.gethostname()},
            "started": now,
            "ended": None,
            "jobs": [],
        }
        record = cls(path, doc)
        record.save()
        return record

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        record = cls(Path(path), json.loads(Path(path).read_text()))
        try:
            lines = record.journal.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                record._apply(json.loads(line))
            except ValueError:
                break  # the last line of a client killed while writing it
        return record

    @property
    def journal(self) -> Path:
        return self.path.with_name(JOURNAL_FILE)

    @property
    def run_id(self) -> str:
        return self.doc["run_id"]

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return self.doc["jobs"]

    def job(self, name: str) -> dict[str, Any] | None:
        return next((j for j in self.jobs if j["name"] == name), None)

    def _apply(self, event: dict[str, Any]) -> None:
        if "add" in event:
            old = self.job(event["add"]["name"])
            if old is not None:
                old.update(event["add"])
            else:
                self.jobs.append(event["add"])
        else:
            entry = self.job(event["job"])
            if entry is not None:
                entry.update(event["set"])

    def _append(self, event: dict[str, Any]) -> None:
        self._apply(event)
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        with open(self.journal, "a") as f:  # one write of one line: O_APPEND
            f.write(line)
        self.written += len(line)

    def add_job(self, entry: dict[str, Any]) -> None:
        self._append({"add": jsonable(entry)})

    def update_job(self, name: str, status: JobStatus | None = None, **fields: Any) -> None:
        entry = self.job(name)
        if entry is None:
            return
        changes: dict[str, Any] = {}
        if status is not None:
            changes["state"] = status.state.value
            changes["secondary"] = status.secondary
            changes["description"] = {**entry.get("description", {}), **description_of(status)}
            if status.failure_reason:
                changes["failure_reason"] = status.failure_reason
        changes.update(jsonable(fields))
        self._append({"job": name, "set": changes})

    def unfinished(self) -> list[dict[str, Any]]:
        return [j for j in self.jobs if not _done(j.get("state"))]

    def client_alive(self) -> bool:
        """The client that wrote the record still runs (on this host)."""
        client = self.doc.get("client") or {}
        if client.get("host") != socket.gethostname() or self.doc.get("ended"):
            return False
        try:
            os.kill(int(client["pid"]), 0)
        except (OSError, KeyError, ValueError):
            return False
        return True

    def finish(self) -> None:
        self.doc["ended"] = utcnow().isoformat()
        self.save()

    def save(self) -> None:
        """The whole record as a snapshot; the journal it includes is dropped. (Killed in
        between, the journal is replayed onto a snapshot that holds it: the same record.)"""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.doc, indent=1, sort_keys=True, default=str)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(self.path)  # atomic: a reader (or a kill) never sees half a record
        self.journal.unlink(missing_ok=True)
        self.written += len(text)


def _done(state: str | None) -> bool:
    return state in {s.value for s in JobState} and JobState(state).is_done


def runs(local_root: Path) -> Iterator[Path]:
    """Every run record under ``local_root``, newest first."""
    base = Path(local_root) / RUNS_DIR
    if not base.is_dir():
        return iter(())
    return iter(sorted(base.glob(f"*/{RECORD_FILE}"), reverse=True))


def latest(local_root: Path, run_id: str | None = None) -> RunRecord | None:
    for path in runs(local_root):
        if run_id is None or path.parent.name == run_id:
            return RunRecord.load(path)
    return None
