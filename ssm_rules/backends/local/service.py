"""The local SageMaker service: Create/Describe/Stop for training and processing jobs.

``LocalBackend(root)`` keeps one directory per job under ``root`` (see
:mod:`ssm_rules.backends.local.jobdir`) and starts one detached runner per job
(:mod:`ssm_rules.backends.local.runner`). Any process can poll, describe, stop or read the
logs of any job from the directory alone, as any client can call SageMaker.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobRequest, JobState, JobStatus, JobType, LogEvent
from ssm_rules.backends.local import exits, hosts, requirements_env, spawn, status, warm_pools
from ssm_rules.backends.local.hosts import kill_host
from ssm_rules.backends.local.jobdir import (
    RUNNER_MODULE,
    JobDir,
    process_alive,
    write_json_atomic,
)
from ssm_rules.backends.local.validation import JobNotFound, duplicate_name, validate

log = logging.getLogger(__name__)

RUNNER_DIED = "local runner died"
RUNNER_NOT_STARTED = "local runner did not start"
# A job without runner.pid this long after its creation has no runner and never will.
RUNNER_START_SECONDS = 60
# The directory that holds the ssm_rules and worker_toolkit packages: the runner imports
# them even when they are not installed (a checkout on sys.path).
_SOURCE_ROOT = str(Path(__file__).resolve().parents[3])


class LocalBackend:
    """A :class:`~ssm_rules.backends.base.Backend` that runs jobs on this machine."""

    def __init__(self, root: Path, skip_requirements: bool = False) -> None:
        self.root = Path(root)
        # one cache of requirements.txt environments for all jobs of this root (runner.py)
        self.env_cache = self.root.parent / "python-envs"
        self.skip_requirements = skip_requirements
        self._wakeup = exits.Wakeup()  # ends a wait_for_end: e.g. a new job to watch

    # --- Create*Job ---------------------------------------------------------------------
    def submit(self, request: JobRequest) -> None:
        validate(request.job_type, request.body)
        if request.job_type is JobType.TRAINING:
            warm_pools.check_quota(request.body)
        name = request.name
        jobdir = JobDir(self.root / name)
        # The slow part (the mount probe runs a process) before the job exists: a client
        # killed after the job's creation and before its runner's start leaves a job that
        # never runs (it fails after RUNNER_START_SECONDS); keep that window short.
        env = self._runner_env()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            jobdir.path.mkdir()  # atomic: two clients creating one name cannot both win
        except FileExistsError:
            raise duplicate_name(
                request.job_type, name, status.arn(request.job_type, name)
            ) from None
        write_json_atomic(jobdir.request_file, request.body)
        jobdir.write_status(status.initial(request.job_type, request.body))
        if request.job_type is JobType.TRAINING:
            warm_pools.claim(self.root, name, request.body)  # a matching warm pool, if any
        jobdir.logs_dir.mkdir(parents=True, exist_ok=True)
        # its own session, nobody's child, runner.pid written by the time this returns
        rc = spawn.start_runner(RUNNER_MODULE, jobdir.path, env, jobdir.runner_log)
        if rc != 0 or jobdir.runner_pid() is None:
            tail = jobdir.runner_log.read_text(errors="replace")[-2000:]
            # the job exists (its name is taken): it must not stay InProgress forever
            st = status.StatusDoc(request.job_type, jobdir.read_status())
            reason = f"InternalServerError: {RUNNER_NOT_STARTED}: {tail.strip()[-900:]}"
            st.finish(JobState.FAILED, reason)
            jobdir.write_status(st.doc)
            raise RuntimeError(f"{RUNNER_NOT_STARTED} for {name} (exit {rc}):\n{tail}")

    def _runner_env(self) -> dict[str, str]:
        """The environment a runner gets: this process's, with the source root importable."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH")) if p)
        env.setdefault(requirements_env.CACHE_ENV, str(self.env_cache))
        if self.skip_requirements:
            env[requirements_env.SKIP_ENV] = "1"
        env[hosts.PROBED_MOUNT_ENV] = hosts.mount_mode().value
        return env

    def prepare(self) -> None:
        """Jobs will be submitted soon (a run starts): start the runner server now, so its
        imports are done by the first submit (spawn.py). Optional: submit starts it too.
        Nothing is created: a run whose plan is refused leaves no trace."""
        spawn.prestart(RUNNER_MODULE, self._runner_env(), self.root)

    # --- Describe*Job -------------------------------------------------------------------
    def describe(self, name: str, job_type: JobType) -> dict[str, Any]:
        """DescribeTrainingJob / DescribeProcessingJob, as a dict (times as ISO strings)."""
        doc = dict(self._current(name, job_type))
        stop_requested = JobDir(self.root / name).stop_requested
        js = status.to_job_status(job_type, doc, stop_requested)
        doc[status.status_key(job_type)] = js.state.value
        if job_type is JobType.TRAINING:
            doc["SecondaryStatus"] = js.secondary
        doc.pop("Local", None)
        return doc

    def poll(self, jobs: Sequence[tuple[str, JobType]]) -> dict[str, JobStatus]:
        out = {}
        for name, job_type in jobs:
            doc = self._current(name, job_type)
            stop_requested = JobDir(self.root / name).stop_requested
            out[name] = status.to_job_status(job_type, doc, stop_requested)
        return out

    def find(self, job_type: JobType, name_prefix: str, tags: dict[str, str]) -> list[JobStatus]:
        """Jobs whose name starts with ``name_prefix`` and that carry every tag in ``tags``,
        newest first (ListTrainingJobs(NameContains) + ListTags, as on SageMaker)."""
        if not self.root.is_dir():
            return []
        key = "TrainingJobName" if job_type is JobType.TRAINING else "ProcessingJobName"
        found: list[tuple[str, JobStatus]] = []
        for path in self.root.iterdir():
            if not path.name.startswith(name_prefix):
                continue
            try:
                request = JobDir(path).read_request()
            except (FileNotFoundError, ValueError):
                continue
            have = {t["Key"]: t["Value"] for t in request.get("Tags") or []}
            if key in request and all(have.get(k) == v for k, v in tags.items()):
                doc = self._current(path.name, job_type)
                st = status.to_job_status(job_type, doc, JobDir(path).stop_requested)
                # the job's tags ride along, as Search returns them (the executor compares them)
                found.append((doc["CreationTime"], replace(st, tags=have)))
        return [st for _, st in sorted(found, key=lambda item: item[0], reverse=True)]

    def wait_for_end(self, names: Sequence[str], timeout: float) -> None:
        """Block until one of the named jobs may have ended, :meth:`wake` was called, or
        ``timeout`` passed: what the client does between status rounds. A job has ended
        when its runner exits (it writes the final status, then exits), and that wakes us
        at once, so a successor is submitted without waiting out a fixed poll interval."""
        pids = []
        for name in names:
            pid = JobDir(self.root / name).runner_pid()
            if pid is None:
                continue  # being submitted (its submit wakes us) or never started (poll says)
            if not process_alive(pid, RUNNER_MODULE):
                return  # ended, or died: the next status round finds out which
            pids.append(pid)
        exits.wait_any(pids, timeout, self._wakeup)

    def wake(self) -> None:
        """End a :meth:`wait_for_end` in progress (or the next one) at once."""
        self._wakeup.poke()

    # --- Stop*Job -----------------------------------------------------------------------
    def stop(self, jobs: Sequence[tuple[str, JobType]]) -> None:
        """Mark each job Stopping and SIGTERM its runner, which stops the hosts (SIGTERM,
        SIGKILL after the grace period), uploads what SageMaker uploads, ends Stopped.
        Stopping a finished job does nothing."""
        for name, job_type in jobs:
            try:
                doc = self._current(name, job_type)
            except JobNotFound:  # never created (e.g. interrupted during submit): nothing to stop
                continue
            if JobState(doc[status.status_key(job_type)]).is_done:
                continue
            jobdir = JobDir(self.root / name)
            jobdir.stop_file.write_text("")
            pid = jobdir.runner_pid()
            if pid is not None and process_alive(pid, RUNNER_MODULE):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    # --- warm pools (UpdateTrainingJob, DescribeTrainingJob's WarmPoolStatus) -------------
    def warm_pool(self, name: str) -> dict[str, Any] | None:
        return self._current(name, JobType.TRAINING).get("WarmPoolStatus")

    def update_keep_alive(self, name: str, seconds: int) -> None:
        """UpdateTrainingJob(ResourceConfig={"KeepAlivePeriodInSeconds": seconds})."""
        jobdir = JobDir(self.root / name)
        doc = self._current(name, JobType.TRAINING)
        warm_pools.update_keep_alive(self.root, jobdir, jobdir.read_request(), doc, seconds)

    def end_warm_pool(self, name: str) -> None:
        self.update_keep_alive(name, 0)

    # --- CloudWatch Logs ------------------------------------------------------------------
    def logs(self, name: str, job_type: JobType) -> Iterator[LogEvent]:
        """Every line of every host, stream by stream (``<job>/algo-i-<epoch>``, as in
        /aws/sagemaker/TrainingJobs and /aws/sagemaker/ProcessingJobs)."""
        doc = self._current(name, job_type)
        jobdir = JobDir(self.root / name)
        for host in doc.get("Local", {}).get("Hosts", []):
            path = jobdir.host_log(host["Host"])
            try:
                f = open(path, errors="replace")  # noqa: SIM115 — closed below, generator
            except FileNotFoundError:
                continue
            with f:
                for line in f:
                    yield LogEvent(stream=host["LogStream"], message=line.rstrip("\n"))

    def log_reader(self, name: str, job_type: JobType) -> LocalLogReader:
        """An incremental reader: each ``read()`` returns the lines appended since the last."""
        return LocalLogReader(self, name, job_type)

    # --- internals ------------------------------------------------------------------------
    def _current(self, name: str, job_type: JobType) -> dict[str, Any]:
        """status.json, with the training job's WarmPoolStatus."""
        doc = self._current_status(name, job_type)
        if job_type is JobType.TRAINING:
            jobdir = JobDir(self.root / name)
            pool = warm_pools.status(self.root, jobdir, jobdir.read_request(), doc)
            if pool is not None:
                doc["WarmPoolStatus"] = pool
        return doc

    def _current_status(self, name: str, job_type: JobType) -> dict[str, Any]:
        """status.json, after making sure a dead runner does not leave a job InProgress."""
        jobdir = JobDir(self.root / name)
        try:
            request = jobdir.read_request()
            doc = jobdir.read_status()
        except FileNotFoundError:
            raise _not_found(name, job_type) from None
        key = "TrainingJobName" if job_type is JobType.TRAINING else "ProcessingJobName"
        if key not in request:
            raise _not_found(name, job_type)
        state = JobState(doc[status.status_key(job_type)])
        if state.is_done:
            return doc
        pid = jobdir.runner_pid()
        if pid is None and not _start_overdue(jobdir):
            return doc  # being submitted
        if pid is not None and process_alive(pid, RUNNER_MODULE):
            return doc
        doc = jobdir.read_status()  # the runner may have finished just before exiting
        if JobState(doc[status.status_key(job_type)]).is_done:
            return doc
        what = RUNNER_DIED if pid is not None else RUNNER_NOT_STARTED
        return self._runner_died(jobdir, job_type, request, doc, what)

    def _runner_died(
        self,
        jobdir: JobDir,
        job_type: JobType,
        request: dict[str, Any],
        doc: dict[str, Any],
        what: str = RUNNER_DIED,
    ) -> dict[str, Any]:
        log.warning("%s for %s; failing the job", what, jobdir.name)
        for host in doc.get("Local", {}).get("Hosts", []):
            if host.get("Pid") is not None:  # None: a log stream without a process
                kill_host(int(host["Pid"]))
        if job_type is JobType.TRAINING:
            self._save_checkpoints(jobdir, request, doc)
        st = status.StatusDoc(job_type, doc)
        if jobdir.stop_requested:
            st.finish(JobState.STOPPED, None, status.STOPPED)
        else:
            st.finish(JobState.FAILED, f"InternalServerError: {what}")
        jobdir.write_status(st.doc)
        return st.doc

    @staticmethod
    def _save_checkpoints(jobdir: JobDir, request: dict[str, Any], doc: dict[str, Any]) -> None:
        """What the runner synced so far is in S3 already; add what changed since."""
        from ssm_rules.backends.local.artifacts import CheckpointSync
        from ssm_rules.backends.local.runner import sandboxes_for

        try:
            mounted = doc.get("Local", {}).get("MountMode", "none") != "none"
            sync = CheckpointSync.for_job(request, sandboxes_for(jobdir, request, mounted))
            if sync is not None:
                sync.upload()
        except Exception:  # noqa: BLE001 — best effort after a crash; the job fails anyway
            log.exception("could not upload checkpoints of %s", jobdir.name)


class LocalLogReader:
    """Follows a job's host logs from where the last read stopped (a byte offset per file).

    Only complete lines are returned while the job runs (a progress bar's line without its
    newline yet waits for the rest); once the job ended, the last partial line too.
    """

    def __init__(self, backend: LocalBackend, name: str, job_type: JobType) -> None:
        self._backend, self._name, self._job_type = backend, name, job_type
        self._offsets: dict[Path, int] = {}

    def read(self) -> list[LogEvent]:
        doc = self._backend._current(self._name, self._job_type)
        ended = JobState(doc[status.status_key(self._job_type)]).is_done
        jobdir = JobDir(self._backend.root / self._name)
        new: list[LogEvent] = []
        for host in doc.get("Local", {}).get("Hosts", []):
            path = jobdir.host_log(host["Host"])
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                continue
            lines = chunk.split(b"\n")
            partial = lines.pop()  # what follows the last newline
            if ended and partial:
                lines.append(partial)
                partial = b""
            self._offsets[path] = offset + len(chunk) - len(partial)
            stream = host["LogStream"]
            new += [LogEvent(stream, line.decode("utf-8", "replace")) for line in lines]
        return new


def _start_overdue(jobdir: JobDir) -> bool:
    try:
        age = time.time() - jobdir.request_file.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > RUNNER_START_SECONDS


def _not_found(name: str, job_type: JobType) -> JobNotFound:
    what = "Training" if job_type is JobType.TRAINING else "Processing"
    return JobNotFound(f"ValidationException: Requested resource not found: {what} job {name!r}")
