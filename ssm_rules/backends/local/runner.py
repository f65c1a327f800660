"""Runs one local job to its end: ``python -m ssm_rules.backends.local.runner <jobdir>``.

Started by :meth:`LocalBackend.submit` as a detached process (its own session), so a job
outlives the client that created it, as a SageMaker job does. The runner plays SageMaker's
agent: it prepares every host's /opt/ml (Downloading), starts the hosts (Training), watches
them — a host exiting non-zero fails the job and the others get SIGTERM; SIGTERM to the
runner (StopTrainingJob) or StoppingCondition.MaxRuntimeInSeconds stops it — then uploads
(Uploading) and writes the final status. It is the only writer of status.json while it
lives.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobState, JobType
from ssm_rules.backends.local import (
    artifacts,
    channels,
    exits,
    faults,
    hosts,
    requirements_env,
    status,
    toolkit,
)
from ssm_rules.backends.local.hosts import Host, HostSpec, MountMode
from ssm_rules.backends.local.jobdir import CODE_CACHE, JobDir
from ssm_rules.backends.local.sandbox import (
    Sandbox,
    host_names,
    prepare_processing,
    prepare_training,
    remap_arg,
    write_channel_manifest,
)
from ssm_rules.distribution import LAUNCHERS as DISTRIBUTION_LAUNCHERS
from ssm_rules.objects import S3Objects
from ssm_rules.safe_tar import read_member
from worker_toolkit import contract
from worker_toolkit._tarballs import extract_tarball
from worker_toolkit.hyperparameters import decode

log = logging.getLogger("ssm_rules.local.runner")

CHECKPOINT_SYNC_ENV = "SSM_LOCAL_CHECKPOINT_SYNC_SECONDS"
# A simulated SageMaker start-up, for benchmarks (benchmarks/group_vs_ungrouped.py): the
# runner stays this many seconds in Starting, as a real job waits minutes for its instances
# and image before it downloads its inputs. Default 0: the local backend starts at once.
COLD_START_ENV = "SSM_LOCAL_COLD_START_SECONDS"
# A stop comes as SIGTERM (which wakes the watch at once) after the stop file is written;
# the file alone is looked for this often too.
STOP_FILE_CHECK_SECONDS = 0.5
TAIL_LINES = 10


class Stopped(Exception):
    """Raised between preparation steps once a stop was requested."""


INTERRUPTED = "interrupted"  # _watch's verdict when the spot instance was reclaimed


def job_type_of(body: dict[str, Any]) -> JobType:
    return JobType.TRAINING if "TrainingJobName" in body else JobType.PROCESSING


def instance_count(body: dict[str, Any], job_type: JobType) -> int:
    if job_type is JobType.TRAINING:
        return int((body.get("ResourceConfig") or {}).get("InstanceCount", 1))
    cluster = (body.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    return int(cluster.get("InstanceCount", 1))


def sandboxes_for(jobdir: JobDir, body: dict[str, Any], mounted: bool) -> list[Sandbox]:
    job_type = job_type_of(body)
    names = host_names(instance_count(body, job_type))
    return [Sandbox(jobdir.host_dir(n), n, i, mounted) for i, n in enumerate(names)]


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def failure_reason(sandbox: Sandbox, log_file: Path, exit_code: int, command: str | None) -> str:
    """The failure file's first 1024 characters (SageMaker's documented FailureReason);
    without one, what the training toolkit reports for a failed user script."""
    failure = sandbox.real(contract.FAILURE_FILE)
    if failure.is_file():
        text = failure.read_text(errors="replace")
        if text.strip():
            return text[: contract.FAILURE_REASON_MAX]
    tail = log_tail(log_file)
    if command is not None:
        reason = (
            f"AlgorithmError: ExecuteUserScriptError:\nExitCode {exit_code}\n"
            f'ErrorMessage "{tail}"\nCommand "{command}", exit code: {exit_code}'
        )
    else:
        reason = f'AlgorithmError: ExitCode {exit_code}\nErrorMessage "{tail}"'
    return reason[: contract.FAILURE_REASON_MAX]


class JobRun:
    def __init__(self, jobdir: JobDir) -> None:
        self.jobdir = jobdir
        self.body: dict[str, Any] = jobdir.read_request()
        self.job_type = job_type_of(self.body)
        self.name = jobdir.name
        self.status = status.StatusDoc(self.job_type, jobdir.read_status())
        self.stop_event = threading.Event()
        self.wakeup = exits.Wakeup()  # poked with stop_event: the watch wakes at once
        self.mount = hosts.mount_mode()
        self.sandboxes = sandboxes_for(jobdir, self.body, self.mount is not MountMode.NONE)
        self.host_names = [sb.host for sb in self.sandboxes]
        self.s3 = S3Objects()  # one client for the whole job, created on first s3:// use
        self.checkpoints = (
            artifacts.CheckpointSync.for_job(self.body, self.sandboxes, self.s3)
            if self.job_type is JobType.TRAINING
            else None
        )
        self.tensorboard = artifacts.CheckpointSync.for_tensorboard(
            self.body, self.sandboxes, self.s3
        )
        self.running: list[Host] = []
        self.commands: dict[str, str | None] = {}
        self.python = sys.executable  # the image's interpreter; see _prepare_python
        self.python_notes: list[str] = []  # what happened to requirements.txt, for the logs
        self.spot = faults.spot_faults(self.name, self.body)
        self.interruptions_left = self.spot.interruptions
        self.began = time.monotonic()  # MaxWaitTimeInSeconds counts from here
        self.runtime_used = 0.0  # seconds of training, over every spot attempt
        local = self.status.doc.setdefault("Local", {})
        local["RunnerPid"] = os.getpid()
        local["MountMode"] = self.mount.value
        local.setdefault("Hosts", [])

    # --- status -----------------------------------------------------------------------
    def save(self) -> None:
        self.jobdir.write_status(self.status.doc)

    def enter(self, secondary: str) -> None:
        log.info("%s: %s", self.name, secondary)
        self.status.secondary(secondary)
        self.save()

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set() or self.jobdir.stop_requested

    def check_stop(self) -> None:
        if self.stop_requested:
            raise Stopped()

    # --- the job ------------------------------------------------------------------------
    def run(self) -> None:
        outcome, reason, secondary = JobState.FAILED, None, ""
        try:
            outcome, reason, secondary = self._run()
        except Stopped:
            outcome, reason, secondary = JobState.STOPPED, None, status.STOPPED
        except Exception as e:  # noqa: BLE001 — any runner error is this job's failure, with its cause
            log.exception("job %s failed in the runner", self.name)
            outcome, reason = JobState.FAILED, f"ClientError: {type(e).__name__}: {e}"[:1024]
        finally:
            # a container's processes die with it: nothing of the job outlives the runner
            hosts.terminate(self.running, hosts.stop_grace_seconds())
        outcome, reason = self._upload(outcome, reason)
        self.status.finish(outcome, reason, secondary)
        self.save()
        log.info("%s: %s %s", self.name, outcome.value, reason or "")

    def _run(self) -> tuple[JobState, str | None, str]:
        self.check_stop()
        self._cold_start()
        self.enter(status.DOWNLOADING)
        try:
            self._prepare()
        except Stopped:
            raise
        except Exception as e:
            log.exception("download failed")
            return JobState.FAILED, f"ClientError: Data download failed: {e}"[:1024], ""
        if not self.spot.capacity:
            return JobState.FAILED, faults.CAPACITY_REASON, ""
        self.check_stop()
        self.status.started()
        self.enter(status.TRAINING)
        failure = self._prepare_python()
        if failure is not None:
            return JobState.FAILED, failure, ""
        self.check_stop()
        self._start_hosts()
        verdict = self._watch()
        while isinstance(verdict, str):  # INTERRUPTED
            self._interrupt()
            verdict = self._watch()
        return verdict

    def _cold_start(self) -> None:
        """Wait COLD_START_ENV seconds (a stop request ends the wait)."""
        until = time.monotonic() + float(os.environ.get(COLD_START_ENV) or 0)
        while time.monotonic() < until:
            self.check_stop()
            time.sleep(min(0.05, max(0.0, until - time.monotonic())))

    def _interrupt(self) -> None:
        """Managed spot reclaimed the instances: the hosts get SIGTERM and the grace period,
        checkpoints are saved, and the job starts over on fresh instances from them."""
        self.interruptions_left -= 1
        self.enter(status.INTERRUPTED)
        hosts.terminate(self.running, hosts.stop_grace_seconds())
        self._sync()
        self.running = []
        self.status.doc["Local"]["Hosts"] = []
        for sb in self.sandboxes:  # a new instance: nothing of the old disk survives
            shutil.rmtree(sb.root, ignore_errors=True)
        self.checkpoints = artifacts.CheckpointSync.for_job(self.body, self.sandboxes, self.s3)
        self.tensorboard = artifacts.CheckpointSync.for_tensorboard(
            self.body, self.sandboxes, self.s3
        )
        self.enter(status.STARTING)
        self.enter(status.DOWNLOADING)
        self._prepare()
        self.check_stop()
        self.enter(status.TRAINING)
        self._start_hosts()

    def _prepare(self) -> None:
        for sb in self.sandboxes:
            sb.root.mkdir(parents=True, exist_ok=True)
            if self.job_type is JobType.TRAINING:
                prepare_training(sb, self.body, self.host_names)
            else:
                prepare_processing(
                    sb, self.body, self.host_names, status.arn(self.job_type, self.name)
                )
        for where, source, path in self._inputs():
            self.check_stop()
            listing = source.objects(self.s3)
            if not listing[1]:
                # SageMaker refuses to start with an empty input prefix.
                raise channels.PlacementError(
                    f'No S3 objects found under S3 URL "{source.uri}" given in {where}'
                )
            for sb in self.sandboxes:
                channels.place(
                    source, sb.real(path), sb.index, len(self.sandboxes), self.s3, listing
                )
                if self.job_type is JobType.TRAINING:
                    share = channels.host_share(source, listing[1], sb.index, len(self.sandboxes))
                    write_channel_manifest(sb, path, source.uri, [o.uri for o in share])
        if self.checkpoints is not None:
            self.check_stop()
            self.checkpoints.download()
        if self.job_type is JobType.TRAINING and self._script_mode:
            self.check_stop()
            hps = decode(self.body.get("HyperParameters") or {})
            bundle = toolkit.fetch_code(
                str(hps[contract.HP_SUBMIT_DIRECTORY]), self.jobdir.work_dir, self.s3
            )
            for sb in self.sandboxes:
                toolkit.install_code(bundle, sb.real(contract.CODE_DIR), self._code_cache)

    @property
    def _code_cache(self) -> Path | None:
        """Where code bundles are kept extracted, with the launcher's bytecode, between jobs
        (beside the jobs root), when the hosts see the code at one path (/opt/ml/code)."""
        if self.mount is MountMode.NONE:
            return None  # each job's code is at a path of its own: its bytecode is its own
        return self.jobdir.path.parent.parent / CODE_CACHE

    def _inputs(self) -> list[tuple[str, channels.Source, str]]:
        if self.job_type is JobType.TRAINING:
            return [
                (
                    f"channel {ch['ChannelName']!r}",
                    channels.Source.from_request(ch["DataSource"]["S3DataSource"]),
                    f"{contract.INPUT_DATA_DIR}/{ch['ChannelName']}",
                )
                for ch in self.body.get("InputDataConfig") or []
            ]
        return [
            (
                f"input {inp['InputName']!r}",
                channels.Source.from_request(inp["S3Input"]),
                inp["S3Input"]["LocalPath"],
            )
            for inp in self.body.get("ProcessingInputs") or []
        ]

    def _requirements_file(self) -> Path | None:
        """The requirements.txt the job's container would pip-install, if any.

        Training (script mode): the toolkit installs the one in /opt/ml/code before running
        the entry point. Processing: ssm_rules' launcher installs the one at the root of its
        code bundle (the ``code`` input); here it leaves this machine's Python alone
        (SSM_LOCAL_BACKEND), so the backend installs it instead, from the bundle unpacked
        once into the job's work dir.
        """
        if self.job_type is JobType.TRAINING:
            if not self._script_mode:
                return None  # a custom entry point: no toolkit, nothing installs it
            found = self.sandboxes[0].real(contract.CODE_DIR) / requirements_env.REQUIREMENTS_FILE
            return found if found.is_file() else None
        bundle = self.sandboxes[0].real(contract.PROCESSING_CODE_DIR) / contract.CODE_BUNDLE_NAME
        if not bundle.is_file():
            return None
        if read_member(bundle, requirements_env.REQUIREMENTS_FILE) is None:
            return None
        code = self.jobdir.work_dir / "processing-code"
        if not code.is_dir():
            extract_tarball(bundle, code, skip_carrier=False)
        found = code / requirements_env.REQUIREMENTS_FILE
        return found if found.is_file() else None

    def _prepare_python(self) -> str | None:
        """Point the job at an environment holding its requirements.txt (installed once per
        requirements hash, cached); the FailureReason when the install fails."""
        requirements = self._requirements_file()
        if requirements is None:
            return None
        cache = Path(
            # LocalBackend sets it; else beside the jobs root, as LocalBackend.env_cache
            os.environ.get(requirements_env.CACHE_ENV)
            or self.jobdir.path.parent.parent / "python-envs"
        )
        if requirements_env.skip_requested():
            env = requirements_env.cached(cache, requirements)
            if env is None:
                self.python_notes.append(
                    f"local backend: not installing requirements.txt ({requirements_env.SKIP_ENV}"
                    " / --sagemaker-local-skip-requirements): the job runs with this machine's"
                    " Python"
                )
                return None
        else:
            self.python_notes.append("local backend: installing requirements.txt")
            try:
                env = requirements_env.ensure(cache, requirements, lambda: self.stop_requested)
            except requirements_env.InstallInterrupted:
                raise Stopped() from None
            except requirements_env.RequirementsError as e:
                self.python_notes.append(e.output.rstrip())
                self._log_without_program(self.python_notes)
                return f"AlgorithmError: {e}"[: contract.FAILURE_REASON_MAX]
        self.python_notes.append(env.log.rstrip())
        self.python_notes.append(f"local backend: the job's Python is {env.python}")
        self.python = env.python
        return None

    def _log_without_program(self, lines: list[str]) -> None:
        """Every host's log stream gets ``lines`` though no program starts: the container's
        install output is in CloudWatch when the install fails (no process: Pid None)."""
        for sb in self.sandboxes:
            self._write_log_header(self.jobdir.host_log(sb.host), lines)
            stream = f"{self.name}/{sb.host}-{int(time.time())}"
            self.status.doc["Local"]["Hosts"].append(
                {"Host": sb.host, "Pid": None, "LogStream": stream}
            )
        self.save()

    @staticmethod
    def _write_log_header(log_file: Path, lines: list[str]) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def _script_mode(self) -> bool:
        return not (self.body.get("AlgorithmSpecification") or {}).get("ContainerEntrypoint")

    def _host_spec(self, sb: Sandbox) -> tuple[HostSpec, list[str]]:
        """What runs on one host, and header lines for its log."""
        env = hosts.container_env(python=self.python)
        env.update({k: str(v) for k, v in (self.body.get("Environment") or {}).items()})
        header: list[str] = list(self.python_notes)
        command: str | None = None
        if self.job_type is JobType.TRAINING:
            env[contract.ENV_TRAINING_JOB_NAME] = self.name
            env["TRAINING_JOB_ARN"] = status.arn(self.job_type, self.name)
        else:
            env[contract.ENV_PROCESSING_JOB_NAME] = self.name
        if not sb.mounted:
            env[contract.ENV_OPT_ML_ROOT] = str(sb.root)
        if self.job_type is JobType.TRAINING and self._script_mode:
            plan = toolkit.plan(self.body, sb, self.host_names, os.cpu_count() or 1, self.python)
            env.update(plan.env)
            code = sb.visible(contract.CODE_DIR)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH")) if p)
            argv, cwd = plan.argv, plan.cwd
            command = " ".join(argv)
            header += [f"local backend: {w}" for w in plan.warnings]
            header.append(f"Invoking script with the following command:\n\n{command}\n")
        else:
            spec = (
                self.body["AlgorithmSpecification"]
                if self.job_type is JobType.TRAINING
                else self.body["AppSpecification"]
            )
            argv = toolkit.python_argv(
                [*spec["ContainerEntrypoint"], *(spec.get("ContainerArguments") or [])],
                self.python,
            )
            if not sb.mounted:
                argv = [remap_arg(a, sb) for a in argv]
            cwd = sb.visible(contract.OPT_ML)
        self.commands[sb.host] = command
        log_file = self.jobdir.host_log(sb.host)
        hosts_file = self.jobdir.work_dir / "etc-hosts"
        if self.mount is not MountMode.NONE:
            if not hosts_file.exists():  # one file for every host of the job
                hosts.write_hosts_file(hosts_file, self.name, self.host_names)
        else:
            hosts_file = None
        hps = self.body.get("HyperParameters") or {}
        if any(k in hps for k in DISTRIBUTION_LAUNCHERS):
            header.append(
                "local backend: distributed-training settings are in the hyperparameters, but "
                "no torchrun/mpirun/parameter server is started here: one process per host"
            )
        if hosts_file is None and len(self.host_names) > 1:
            header.append(
                "local backend: no mount namespace here, so hosts cannot reach each other "
                f"by name ({', '.join(self.host_names)})"
            )
        spec = HostSpec(sb.host, argv, env, cwd, sb.root, log_file, self.mount, hosts_file)
        return spec, header

    def _start_hosts(self) -> None:
        local = self.status.doc["Local"]
        for sb in self.sandboxes:
            spec, header = self._host_spec(sb)
            if header:
                self._write_log_header(spec.log_file, header)
            host = Host(spec)
            self.running.append(host)
            local["Hosts"].append(
                {
                    "Host": sb.host,
                    "Pid": host.pid,
                    "LogStream": f"{self.name}/{sb.host}-{int(host.started)}",
                }
            )
        self.save()

    def _watch(self) -> tuple[JobState, str | None, str] | str:
        started = time.monotonic()
        try:
            return self._watch_hosts(started)
        finally:
            self.runtime_used += time.monotonic() - started

    def _watch_hosts(self, started: float) -> tuple[JobState, str | None, str] | str:
        """Until the hosts end, fail, are stopped, run out of time or are interrupted.

        MaxRuntimeInSeconds is training time over the whole job (a spot restart does not
        reset it); a spot job also stops once MaxWaitTimeInSeconds passed since it started,
        interruptions included (DescribeTrainingJob's MaxWaitTimeExceeded)."""
        stopping = self.body.get("StoppingCondition") or {}
        max_runtime = stopping.get("MaxRuntimeInSeconds")
        deadline = started + max_runtime - self.runtime_used if max_runtime else None
        max_wait = stopping.get("MaxWaitTimeInSeconds")
        spot = self.body.get("EnableManagedSpotTraining")
        wait_deadline = self.began + max_wait if spot and max_wait else None
        sync_every = float(os.environ.get(CHECKPOINT_SYNC_ENV, "5"))
        next_sync = time.monotonic() + sync_every
        interrupt_at = (
            time.monotonic() + self.spot.interrupt_after_seconds
            if self.interruptions_left > 0
            else None
        )
        while True:
            failed = next((h for h in self.running if h.exit_code not in (None, 0)), None)
            if failed is not None:
                code = failed.exit_code or 1
                sb = self.sandboxes[self.host_names.index(failed.spec.name)]
                others = [h for h in self.running if h is not failed]
                hosts.terminate(others, hosts.stop_grace_seconds())
                reason = failure_reason(sb, failed.spec.log_file, code, self.commands[sb.host])
                return JobState.FAILED, reason, ""
            if all(h.exit_code == 0 for h in self.running):
                return JobState.COMPLETED, None, ""
            if self.stop_requested:
                self._stop_hosts()
                return JobState.STOPPED, None, status.STOPPED
            if deadline is not None and time.monotonic() > deadline:
                log.info("%s exceeded MaxRuntimeInSeconds=%s", self.name, max_runtime)
                self._stop_hosts()
                return JobState.STOPPED, None, status.MAX_RUNTIME_EXCEEDED
            if wait_deadline is not None and time.monotonic() > wait_deadline:
                log.info("%s exceeded MaxWaitTimeInSeconds=%s", self.name, max_wait)
                self._stop_hosts()
                return JobState.STOPPED, None, status.MAX_WAIT_TIME_EXCEEDED
            if interrupt_at is not None and time.monotonic() >= interrupt_at:
                return INTERRUPTED
            if time.monotonic() >= next_sync:
                self._sync()  # SageMaker syncs checkpoints (and TensorBoard) while training runs
                next_sync = time.monotonic() + sync_every
            # until a host exits, SIGTERM pokes the wake-up, or the next thing falls due
            due = [next_sync, time.monotonic() + STOP_FILE_CHECK_SECONDS]
            due += [t for t in (deadline, wait_deadline, interrupt_at) if t is not None]
            running = [h.pid for h in self.running if h.exit_code is None]
            exits.wait_any(running, min(due) - time.monotonic(), self.wakeup)

    def _sync(self) -> None:
        for sync in (self.checkpoints, self.tensorboard):
            if sync is not None:
                sync.upload()

    def _stop_hosts(self) -> None:
        self.status.stopping()
        self.save()
        hosts.terminate(self.running, hosts.stop_grace_seconds())

    def _upload(self, outcome: JobState, reason: str | None) -> tuple[JobState, str | None]:
        """Uploading: artifacts of a completed or stopped training job (SageMaker keeps what a
        stopped job saved), checkpoints always, processing outputs per S3UploadMode."""
        try:
            self._sync()
            if self.job_type is JobType.TRAINING:
                if outcome in (JobState.COMPLETED, JobState.STOPPED) and self.running:
                    if self.status.state is not JobState.STOPPING:
                        self.enter(status.UPLOADING)
                    uri = artifacts.upload_training_outputs(
                        self.body, self.sandboxes, self.jobdir.work_dir, self.s3
                    )
                    self.status.model_artifacts(uri)
            elif self.running:
                artifacts.upload_processing_outputs(
                    self.body, self.sandboxes, outcome is JobState.COMPLETED, self.s3
                )
        except Exception as e:  # noqa: BLE001 — an upload failure fails the job, cause kept
            log.exception("upload failed")
            return JobState.FAILED, (reason or f"ClientError: upload failed: {e}")[:1024]
        return outcome, reason


def write_pid_file(jobdir: JobDir) -> None:
    """``runner.pid``, atomically: whoever reads it finds a whole pid or none."""
    tmp = jobdir.pid_file.with_name(".runner.pid.tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, jobdir.pid_file)


def detach(jobdir: JobDir) -> None:
    """Become a daemon: fork, let the parent exit once the child recorded its pid.

    The client waits for the parent only, so the runner is nobody's child afterwards (no
    zombie, no "still running" warning in the client) and ``runner.pid`` exists as soon as
    ``submit`` returns.
    """
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    os.setsid()
    write_pid_file(jobdir)
    os.write(write_end, b"1")
    os.close(write_end)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == [SERVER_FLAG]:
        return serve()
    detached = bool(args) and args[0] == "--detach"
    if detached:
        args = args[1:]
    if len(args) != 1:
        print(
            "usage: python -m ssm_rules.backends.local.runner [--detach] <jobdir> | --server",
            file=sys.stderr,
        )
        return 2
    jobdir = JobDir(Path(args[0]).resolve())
    return run_job(jobdir, detach if detached else None)


def run_job(jobdir: JobDir, announce: Callable[[JobDir], None] | None = None) -> int:
    """Run the job of ``jobdir`` in this process; ``announce`` (if given) makes this process
    the job's runner of record (``runner.pid``) once SIGTERM is handled."""
    job = None

    def on_term(signum: int, _frame: object) -> None:
        # StopTrainingJob: the runner stops the hosts itself (SIGTERM, then SIGKILL).
        if job is not None:
            job.stop_event.set()
            job.wakeup.poke()

    signal.signal(signal.SIGTERM, on_term)
    if announce is not None:
        announce(jobdir)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s runner %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        job = JobRun(jobdir)
    except Exception as e:  # noqa: BLE001 — the job's failure, with its cause, not "runner died"
        log.exception("cannot run %s", jobdir.name)
        _fail_unstarted(jobdir, f"{type(e).__name__}: {e}")
        return 1
    if jobdir.stop_requested:
        job.stop_event.set()
    job.run()
    return 0


# --- the fork server -------------------------------------------------------------------------
# ``python -m ssm_rules.backends.local.runner --server``: started once by a client
# (ssm_rules.backends.local.spawn), it imports what a runner needs once, then forks a runner
# per job it is asked for, so a job does not wait out a Python start-up and these imports.
# One JSON line per request on stdin ({"jobdir": ..., "env": {...}}), one per reply on stdout
# ({"pid": N} or {"error": ...}); it exits when its stdin closes (its client is gone), and the
# runners it started live on. It stays single-threaded: it forks.
SERVER_FLAG = "--server"
SERVER_READY = "ready"


def serve() -> int:
    import gc

    # the imported modules out of the collector's sight: a forked runner's collections do
    # not touch (and copy) their pages
    gc.freeze()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer

    def say(line: bytes) -> None:
        try:
            replies.write(line + b"\n")
            replies.flush()
        except OSError:  # the client is gone (a broken pipe): what it asked for is still done
            pass

    say(SERVER_READY.encode())
    for line in requests:
        try:
            request = json.loads(line)
            reply = _fork_runner(JobDir(Path(request["jobdir"])), dict(request["env"]))
        except Exception as e:  # noqa: BLE001 — the client falls back to a plain start
            reply = {"error": f"{type(e).__name__}: {e}"}
        say(json.dumps(reply).encode())
    return 0


def _fork_runner(jobdir: JobDir, env: dict[str, str]) -> dict[str, Any]:
    """Fork the job's runner as ``--detach`` does (a grandchild in its own session, nobody's
    child once the intermediate process exits); its pid once it wrote ``runner.pid``."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    first = os.fork()
    if first == 0:  # the intermediate process
        code = 1
        try:
            os.close(read_end)
            if os.fork() == 0:
                _runner_child(jobdir, env, write_end)  # never returns
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    os.waitpid(first, 0)
    said = b""
    while chunk := os.read(read_end, 32):
        said += chunk
    os.close(read_end)
    if said.isdigit():
        return {"pid": int(said)}
    return {"error": f"the forked runner of {jobdir.name} did not start (see {jobdir.runner_log})"}


def _runner_child(jobdir: JobDir, env: dict[str, str], ready_fd: int) -> None:
    """The runner, as a started one would be: own session, output to runner.log, the job's
    directory as cwd, the client's environment (sent with the request)."""
    code = 1
    try:
        os.setsid()
        # logs/ was made by the client before it asked
        out = os.open(jobdir.runner_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        os.chdir(jobdir.path)
        for name in [k for k in os.environ if k not in env]:
            del os.environ[name]
        for name, value in env.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        signal.signal(signal.SIGINT, signal.default_int_handler)

        def announce(jd: JobDir) -> None:
            write_pid_file(jd)
            os.write(ready_fd, str(os.getpid()).encode())
            os.close(ready_fd)

        code = run_job(jobdir, announce)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 — the runner's end: its log says why
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 — nothing left to tell it to
                pass
        os._exit(code)


def _fail_unstarted(jobdir: JobDir, cause: str) -> None:
    """The job could not even be set up (e.g. a bad faults file): Failed, with the cause."""
    try:
        st = status.StatusDoc(job_type_of(jobdir.read_request()), jobdir.read_status())
        st.finish(JobState.FAILED, f"InternalServerError: local runner failed: {cause}"[:1024])
        jobdir.write_status(st.doc)
    except Exception:  # noqa: BLE001 — nothing readable to fail: the client's check says "died"
        log.exception("cannot record the failure of %s", jobdir.name)


if __name__ == "__main__":
    sys.exit(main())
