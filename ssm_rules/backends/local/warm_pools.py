"""SageMaker managed warm pools, emulated: what DescribeTrainingJob's WarmPoolStatus shows.

What is emulated: the lifecycle and its fields. A training job with
``ResourceConfig.KeepAlivePeriodInSeconds`` > 0 that ended (Completed, Stopped, or Failed by
its own code: SageMaker keeps no pool after an internal failure) has a pool ``Available``
for that many seconds from its TrainingEndTime, then ``Terminated``. A new training job with a
keep-alive whose pool key matches (ssm_rules.warm_pools.pool_key: AWS's matching criteria)
takes the oldest such pool at creation: that job's status becomes ``Reused`` with
``ReusedByJob``, the new one's ``InUse`` until it ends (then Available or Terminated by its own
keep-alive). ``ResourceRetainedBillableTimeInSeconds`` is the wall-clock time the pool was
kept. UpdateTrainingJob sets a new keep-alive (0: Terminated now).

``SSM_LOCAL_WARM_POOL_QUOTA=0`` refuses keep-alives as an account without a warm pool quota
does (AWS's default), to rehearse the fallback.

What is not: there are no instances to keep. A local job starts no slower without a pool, so
reusing one saves nothing here; the accounting and the calls are what a test can check.

Each job's pool lives in ``<job dir>/warm_pool.json``; ``<root>/.warm-pools/<job>`` marks the
pools that may be Available (what a new job looks through), under ``<root>/.warm-pools.lock``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobState, JobType, WarmPoolQuotaError
from ssm_rules.backends.local.jobdir import JobDir, now_iso, read_json, write_json_atomic
from ssm_rules.backends.local.validation import ValidationError
from ssm_rules.warm_pools import KEEP_ALIVE, pool_key

# The account's warm pool quota in instances, as a local rehearsal of AWS's (0 by default on
# AWS; unset here: no limit): a keep-alive for more instances is refused as SageMaker does.
QUOTA_ENV = "SSM_LOCAL_WARM_POOL_QUOTA"
POOL_FILE = "warm_pool.json"
INDEX_DIR = ".warm-pools"
AVAILABLE, IN_USE, REUSED, TERMINATED = "Available", "InUse", "Reused", "Terminated"


def keep_alive(request: dict[str, Any]) -> int:
    return int((request.get("ResourceConfig") or {}).get(KEEP_ALIVE) or 0)


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _now() -> float:
    return datetime.now(UTC).timestamp()


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".warm-pools.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(jobdir: JobDir) -> dict[str, Any] | None:
    try:
        return read_json(jobdir.path / POOL_FILE)
    except (FileNotFoundError, ValueError):
        return None


def _write(root: Path, jobdir: JobDir, pool: dict[str, Any]) -> None:
    write_json_atomic(jobdir.path / POOL_FILE, pool)
    marker = root / INDEX_DIR / jobdir.name
    if pool["Status"] == AVAILABLE:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def _advance(
    root: Path, jobdir: JobDir, request: dict[str, Any], doc: dict[str, Any]
) -> dict[str, Any]:
    """The pool record now (created when the job ended, Terminated once its time ran out);
    caller holds the lock."""
    pool: dict[str, Any] = _read(jobdir) or {}
    state = JobState(doc["TrainingJobStatus"])
    if state.is_done and pool.get("Status", IN_USE) == IN_USE:
        internal = state is JobState.FAILED and str(doc.get("FailureReason", "")).startswith(
            "InternalServerError"
        )
        end = doc.get("TrainingEndTime") or now_iso()
        kept = keep_alive(request) and not internal
        pool = {"Status": AVAILABLE if kept else TERMINATED, "Since": end, "Until": end}
        pool["KeepAlive"] = keep_alive(request)
        _write(root, jobdir, pool)
    if pool.get("Status") == AVAILABLE and _now() >= _seconds(pool["Since"]) + pool["KeepAlive"]:
        pool["Status"] = TERMINATED
        pool["Until"] = datetime.fromtimestamp(
            _seconds(pool["Since"]) + pool["KeepAlive"], UTC
        ).isoformat()
        _write(root, jobdir, pool)
    return pool


def status(
    root: Path, jobdir: JobDir, request: dict[str, Any], doc: dict[str, Any]
) -> dict[str, Any] | None:
    """The job's WarmPoolStatus, as DescribeTrainingJob shows it (None: it asked for none)."""
    if not keep_alive(request) and not (jobdir.path / POOL_FILE).exists():
        return None
    with _locked(root):
        pool = _advance(root, jobdir, request, doc)
    if not pool:
        return None
    out: dict[str, Any] = {"Status": pool["Status"]}
    if pool["Status"] != IN_USE:
        until = _now() if pool["Status"] == AVAILABLE else _seconds(pool["Until"])
        out["ResourceRetainedBillableTimeInSeconds"] = max(0, int(until - _seconds(pool["Since"])))
    if pool.get("ReusedByJob"):
        out["ReusedByJob"] = pool["ReusedByJob"]
    return out


def check_quota(request: dict[str, Any]) -> None:
    """CreateTrainingJob with a keep-alive past the quota: SageMaker's ResourceLimitExceeded."""
    quota = os.environ.get(QUOTA_ENV)
    resources = request.get("ResourceConfig") or {}
    wanted = int(resources.get("InstanceCount", 1))
    if quota is None or not keep_alive(request) or wanted <= int(quota):
        return
    raise WarmPoolQuotaError(
        f"ResourceLimitExceeded: The account-level service limit '{resources.get('InstanceType')}"
        f" for training warm pool usage' is {int(quota)} Instances, with current utilization of "
        f"0 Instances and a request delta of {wanted} Instances. Please use AWS Service Quotas "
        "to request an increase for this quota."
    )


def claim(root: Path, name: str, request: dict[str, Any]) -> str | None:
    """At CreateTrainingJob: the new job takes the oldest Available matching pool; its name."""
    key = pool_key(JobType.TRAINING, request)
    if key is None or not keep_alive(request):
        return None
    with _locked(root):
        candidates = []
        index = root / INDEX_DIR
        for marker in index.iterdir() if index.is_dir() else ():
            owner = JobDir(root / marker.name)
            try:
                owner_request = owner.read_request()
                doc = owner.read_status()
            except (FileNotFoundError, ValueError):
                marker.unlink(missing_ok=True)
                continue
            pool = _advance(root, owner, owner_request, doc)
            if pool.get("Status") == AVAILABLE and pool_key(JobType.TRAINING, owner_request) == key:
                candidates.append((pool["Since"], owner, pool))
        if not candidates:
            return None
        _, owner, pool = min(candidates, key=lambda c: c[0])
        _write(root, owner, {**pool, "Status": REUSED, "ReusedByJob": name, "Until": now_iso()})
        _write(root, JobDir(root / name), {"Status": IN_USE, "From": owner.name})
        return owner.name


def update_keep_alive(
    root: Path, jobdir: JobDir, request: dict[str, Any], doc: dict[str, Any], seconds: int
) -> None:
    """UpdateTrainingJob ResourceConfig.KeepAlivePeriodInSeconds of an Available pool."""
    with _locked(root):
        pool = _advance(root, jobdir, request, doc) if keep_alive(request) else {}
        if pool.get("Status") != AVAILABLE:
            raise ValidationError(
                f"ValidationException: training job {jobdir.name} has no warm pool to update "
                f"(WarmPoolStatus: {pool.get('Status', 'none')}); only an Available pool's "
                "KeepAlivePeriodInSeconds can be changed"
            )
        if seconds == 0:
            _write(root, jobdir, {**pool, "Status": TERMINATED, "Until": now_iso()})
        else:
            _write(root, jobdir, {**pool, "KeepAlive": seconds})
