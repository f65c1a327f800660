"""The record of a run: one JSON file per run, rewritten as the run goes.

``<local root>/runs/<run id>/run.json`` (next to it, after the run, ``report.html`` and
``timeline.png``: ssm_rules.report). Written atomically at every submission, status change,
metric change and end, so a run killed at any moment leaves a record that ``python -m
ssm_rules status`` / ``report`` / ``stop`` read. The job descriptions are what the backend
reported (Describe*Job fields), kept to what the bill and the board read.
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
    path: Path  # .../runs/<run id>/run.json
    doc: dict[str, Any]

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
            "updated": now,
            "ended": None,
            "jobs": [],
        }
        record = cls(path, doc)
        record.save()
        return record

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        return cls(Path(path), json.loads(Path(path).read_text()))

    @property
    def run_id(self) -> str:
        return self.doc["run_id"]

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return self.doc["jobs"]

    def job(self, name: str) -> dict[str, Any] | None:
        return next((j for j in self.jobs if j["name"] == name), None)

    def add_job(self, entry: dict[str, Any]) -> None:
        old = self.job(entry["name"])
        if old is not None:
            old.update(entry)
        else:
            self.jobs.append(entry)
        self.save()

    def update_job(self, name: str, status: JobStatus | None = None, **fields: Any) -> None:
        entry = self.job(name)
        if entry is None:
            return
        if status is not None:
            entry["state"] = status.state.value
            entry["secondary"] = status.secondary
            entry["description"] = {**entry.get("description", {}), **description_of(status)}
            if status.failure_reason:
                entry["failure_reason"] = status.failure_reason
        entry.update(jsonable(fields))
        self.save()

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
        self.doc["updated"] = utcnow().isoformat()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, sort_keys=True, default=str))
        tmp.replace(self.path)  # atomic: a reader (or a kill) never sees half a record


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
