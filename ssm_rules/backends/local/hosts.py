"""Host processes: one per instance, each in its own session and, where Linux allows it,
its own mount and pid namespaces with its sandbox at /opt/ml.

A SageMaker instance is a container: /opt/ml is its own, and the container's processes
die with it. Here each host is a session (``start_new_session``) so that stop can signal
it — SIGTERM first, SIGKILL after the grace period, as StopTrainingJob does — and
``unshare --mount --pid --fork --kill-child`` with a bind mount gives each host a private
/opt/ml, so code that hardcodes /opt/ml/model works and hosts never see each other's files.
The program is pid 1 of the namespace (it ignores signals it has no handler for, as a
container's init does), and every process of the host dies with it, also those that left
its process group. Without namespaces, what is left of the host's session is killed.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ssm_rules.backends.local import exits
from worker_toolkit import contract

log = logging.getLogger(__name__)

NO_MOUNT_ENV = "SSM_LOCAL_NO_MOUNT"
# What the client probed, handed to its runners: one probe (an unshare process) per run,
# not one per job.
PROBED_MOUNT_ENV = "SSM_LOCAL_PROBED_MOUNT"
STOP_GRACE_ENV = "SSM_STOP_GRACE_SECONDS"

# Client variables a job never gets: credentials and config of the machine that submitted
# it (the runner, not the job, reaches the job's URIs), and job variables of an enclosing
# job (a job started from inside a job must not inherit its /opt/ml mapping).
_KEEP_AWS = ("AWS_REGION", "AWS_DEFAULT_REGION")
_DROP_PREFIXES = ("AWS_", "SM_", "SSM_", "SAGEMAKER_")
_DROP_NAMES = (
    "TRAINING_JOB_NAME",
    "TRAINING_JOB_ARN",
    "PROCESSING_JOB_NAME",
    "CURRENT_HOST",
    "PYTHONPATH",
)

# Runs inside the new mount namespace: bind the sandbox at /opt/ml and the job's hosts file
# at /etc/hosts, take the host's name (its own UTS namespace), enter the job's working
# directory (resolved only after the mount), become the program.
_MOUNT_SCRIPT = (
    'mount --bind "$1" /opt/ml && { [ -z "$3" ] || mount --bind "$3" /etc/hosts; } && '
    '{ [ -z "$4" ] || hostname "$4" 2>/dev/null || true; } && cd "$2" && shift 4 && exec "$@"'
)


class MountMode(enum.Enum):
    NONE = "none"
    ROOT = "root"  # unshare --mount (we are root)
    USERNS = "userns"  # unshare --user --map-root-user --mount (unprivileged user namespaces)


def stop_grace_seconds() -> float:
    value = os.environ.get(STOP_GRACE_ENV)
    return float(value) if value else float(contract.STOP_GRACE_SECONDS)


def _unshare_prefix(mode: MountMode) -> list[str]:
    # --pid --fork: the program is pid 1 of its own pid namespace, so when it ends (or
    # unshare is killed: --kill-child) the kernel kills everything it started.
    prefix = [
        *("unshare", "--mount", "--propagation", "private", "--uts"),
        *("--pid", "--fork", "--kill-child"),
    ]
    if mode is MountMode.USERNS:
        prefix.insert(1, "--map-root-user")
        prefix.insert(1, "--user")
    return prefix


def _probe(mode: MountMode) -> bool:
    with tempfile.TemporaryDirectory(prefix="ssm-mount-probe-") as tmp:
        Path(tmp, "probe").write_text("")
        argv = [
            *_unshare_prefix(mode),
            "--",
            "/bin/sh",
            "-c",
            _MOUNT_SCRIPT,
            "probe",
            tmp,
            "/",
            "",
            "",
            "test",
            "-f",
            f"{contract.OPT_ML}/probe",
        ]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0


@functools.cache
def _probed_mode() -> MountMode:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return MountMode.NONE
    try:
        os.makedirs(contract.OPT_ML, exist_ok=True)  # the mountpoint
    except OSError:
        return MountMode.NONE
    candidates = [MountMode.ROOT] if os.geteuid() == 0 else []
    candidates.append(MountMode.USERNS)
    for mode in candidates:
        if _probe(mode):
            return mode
    return MountMode.NONE


def mount_mode() -> MountMode:
    """How hosts get a private /opt/ml here; probed once per process.

    ``SSM_LOCAL_NO_MOUNT=1`` forces the fallback: no namespace, paths point into the sandbox
    and the job gets SSM_OPT_ML_ROOT to re-root /opt/ml paths.
    """
    if os.environ.get(NO_MOUNT_ENV, "") not in ("", "0"):
        return MountMode.NONE
    try:
        return MountMode(os.environ[PROBED_MOUNT_ENV])
    except (KeyError, ValueError):
        return _probed_mode()


def container_env(extra_path: Sequence[str] = (), python: str = sys.executable) -> dict[str, str]:
    """The image's environment: this machine's, minus what a job must not see.

    The image's python is ``python`` (this interpreter, or the environment layered over it
    that holds the job's requirements.txt), so its directory leads PATH.
    ``PYTHONUNBUFFERED`` is set as SageMaker's framework images set it, so logs stream.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _KEEP_AWS or not (k.startswith(_DROP_PREFIXES) or k in _DROP_NAMES)
    }
    path = [os.path.dirname(python), *extra_path, env.get("PATH", os.defpath)]
    env["PATH"] = os.pathsep.join(p for p in path if p)
    env["PYTHONUNBUFFERED"] = "TRUE"
    env["PYTHONDONTWRITEBYTECODE"] = "TRUE"
    env["SSM_LOCAL_BACKEND"] = "1"  # the launcher then leaves this machine's Python alone
    return env


@dataclass(frozen=True)
class HostSpec:
    name: str  # algo-i
    argv: list[str]
    env: Mapping[str, str]
    cwd: str  # as the job sees it (an /opt/ml path when mounted)
    sandbox_root: Path
    log_file: Path
    mount: MountMode
    hosts_file: Path | None = None  # mounted at /etc/hosts: the job's hosts by name


class Host:
    """One running host: a process group whose output goes line by line to its log."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.started = time.time()
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_file, "ab") as out:
            if spec.mount is MountMode.NONE:
                argv, cwd = list(spec.argv), spec.cwd
            else:
                argv = [
                    *_unshare_prefix(spec.mount),
                    "--",
                    "/bin/sh",
                    "-c",
                    _MOUNT_SCRIPT,
                    "ssm-host",
                    str(spec.sandbox_root),
                    spec.cwd,
                    str(spec.hosts_file or ""),
                    spec.name,
                    *spec.argv,
                ]
                cwd = "/"
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(spec.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def exit_code(self) -> int | None:
        """Shell-style: a death by signal N is 128+N (137 for SIGKILL, as Docker reports)."""
        rc = self.proc.poll()
        if rc is None:
            return None
        return 128 - rc if rc < 0 else rc

    def signal(self, sig: int) -> None:
        signal_group(self.pid, sig)


def host_addresses(job_name: str, names: Sequence[str]) -> dict[str, str]:
    """A loopback address per host: SageMaker's instances reach each other as algo-1..N.

    Every address of 127.0.0.0/8 reaches this machine's loopback, so a server that host
    algo-1 binds on 0.0.0.0 (or on its own name) answers algo-2's connection to algo-1.
    A block per job (from its name) keeps jobs that run side by side apart."""
    digest = hashlib.sha256(job_name.encode()).digest()
    return {n: f"127.{100 + digest[0] % 150}.{digest[1]}.{i + 1}" for i, n in enumerate(names)}


def write_hosts_file(path: Path, job_name: str, names: Sequence[str]) -> Path:
    """This machine's /etc/hosts plus the job's hosts, for the hosts' mount namespaces."""
    try:
        base = Path("/etc/hosts").read_text()
    except OSError:
        base = "127.0.0.1 localhost\n"
    lines = [f"{ip} {name}" for name, ip in host_addresses(job_name, names).items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = base.rstrip("\n") + "\n# SageMaker hosts of this job\n" + "\n".join(lines) + "\n"
    path.write_text(text)
    return path


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def session_members(sid: int) -> list[int]:
    """Every process (but this one) whose session id is ``sid``, from /proc."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            found.append(int(entry))
    return found


def kill_session(sid: int) -> None:
    """SIGKILL every process of a host's session: a program's children that left its process
    group (the launcher gives the program its own) still die with the host."""
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_host(pid: int) -> None:
    """SIGKILL a host (its process group and what is left of its session)."""
    signal_group(pid, signal.SIGKILL)
    kill_session(pid)


def _exited_by_itself(host: Host) -> bool:
    rc = host.poll()
    return rc is not None and rc >= 0  # unshare dies of the signal its program died of


def terminate(hosts: Sequence[Host], grace: float) -> None:
    """SIGTERM every host's group; SIGKILL what is still running after ``grace`` seconds,
    and whatever the host left behind in its session.

    A host of a pid namespace that had exited by itself left nothing: its program was the
    namespace's pid 1, and the kernel had killed and reaped the rest before unshare saw it
    end (so this does not scan /proc for its session after every job)."""
    ended = [h for h in hosts if h.spec.mount is not MountMode.NONE and _exited_by_itself(h)]
    for h in hosts:
        if h.poll() is None:
            h.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(h.poll() is None for h in hosts):
        exits.wait_any([h.pid for h in hosts if h.poll() is None], deadline - time.monotonic())
    for h in hosts:
        if h not in ended:
            kill_host(h.pid)  # also leftovers of a host that already exited
    for h in hosts:
        try:
            h.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("host %s did not exit after SIGKILL", h.spec.name)
