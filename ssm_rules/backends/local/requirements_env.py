"""A job's ``requirements.txt``, installed as a framework container would, cached per hash.

SageMaker's framework images run ``python -m pip install -r requirements.txt`` in the code
directory before the entry point (sagemaker-training-toolkit ``modules.install_requirements``;
for processing jobs ssm_rules' launcher does the same): requirements already satisfied by the
image are skipped, the rest is installed, and a failure fails the job with an
``InstallRequirementsError`` FailureReason.

Here "the image" is this machine's Python environment, which must stay untouched. So the
requirements go into a virtual environment layered over it: created from this interpreter,
with a ``.pth`` file that puts this environment's site-packages after its own. pip, run
against that venv (``pip --python``), sees the base packages as installed and skips them, as
in a container; what it installs shadows the base. (``venv --system-site-packages`` would
layer over the *base interpreter*, not over the virtualenv the jobs run in; uv does not count
packages reached through a .pth file as installed and would reinstall e.g. torch.)

One environment per hash of (requirements text, interpreter), under a cache directory,
built once under a file lock: concurrent jobs with the same requirements wait for the first
install and reuse it. A half-built environment (a killed install) has no completion marker
and is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from worker_toolkit._requirements import REQUIREMENTS_FILE, failing_line, install_failure_text

SKIP_ENV = "SSM_LOCAL_SKIP_REQUIREMENTS"  # "1": do not install (offline work)
CACHE_ENV = "SSM_LOCAL_ENV_CACHE"  # where the environments are kept (set by LocalBackend)
COMPLETE_MARKER = ".ssm-complete"
BASE_PTH = "_ssm_base_environment.pth"
INSTALL_TIMEOUT_SECONDS = 3600
POLL_SECONDS = 0.1


class RequirementsError(Exception):
    """pip could not install the requirements: ``str()`` is the job's FailureReason body."""

    def __init__(self, command: str, exit_code: int, output: str, culprit: str | None) -> None:
        self.output = output  # pip's whole output, for the job's log
        super().__init__(install_failure_text(command, exit_code, output, culprit))


class InstallInterrupted(Exception):
    """The job was stopped while pip ran."""


@dataclass(frozen=True)
class Environment:
    """A ready environment: its interpreter, and whether this call installed it."""

    path: Path
    installed: bool
    log: str  # pip's output when installed now, else one line saying it was reused

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")


def skip_requested(env: Mapping[str, str] = os.environ) -> bool:
    """The offline setting (--sagemaker-local-skip-requirements sets it for the runner)."""
    return env.get(SKIP_ENV, "") not in ("", "0")


def environment_key(requirements_file: Path) -> str:
    """The cache key: the requirements as written, the local files they name (a wheel or a
    directory beside them, ``-r``/``-c`` files: a rebuilt wheel of the same version is new
    code, which a fresh container would install), and the interpreter they layer over."""
    digest = hashlib.sha256()
    requirements = requirements_file.read_bytes()
    for part in (os.path.realpath(sys.executable), sys.version, *_base_site_dirs()):
        digest.update(part.encode() + b"\0")
    digest.update(requirements + b"\0")
    for path in _local_references(requirements_file.parent, requirements.decode(errors="replace")):
        digest.update(str(path.relative_to(requirements_file.parent)).encode() + b"\0")
        with open(path, "rb") as f:  # a wheel can be large: hashed in chunks, not read whole
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:16]


_SKIPPED_DIRS = {".git", "__pycache__", ".venv", "build", "dist", ".eggs"}


def _local_references(base: Path, requirements: str) -> list[Path]:
    """Files under ``base`` named by the requirements (relative paths, ``file:`` URLs),
    directories walked; anything outside ``base`` or not there is not ours to hash."""
    found: set[Path] = set()
    root = base.resolve()
    for line in requirements.splitlines():
        for token in re.split(r"[\s=@]+", line.split("#", 1)[0]):
            token = token.removeprefix("file://")
            if not token or token.startswith("-"):
                continue
            candidate = (root / token).resolve()
            if candidate != root and root not in candidate.parents:
                continue
            if candidate.is_file():
                found.add(candidate)
            elif candidate.is_dir():
                found.update(
                    p
                    for p in candidate.rglob("*")
                    if p.is_file() and not _SKIPPED_DIRS.intersection(p.relative_to(root).parts)
                )
    return sorted(found)


def cached(cache: Path, requirements_file: Path) -> Environment | None:
    """The environment for these requirements if one was built already (no install)."""
    path = cache / environment_key(requirements_file)
    if (path / COMPLETE_MARKER).is_file():
        return Environment(path, installed=False, log=f"using the cached environment {path}")
    return None


def ensure(
    cache: Path, requirements_file: Path, interrupted: Callable[[], bool] = lambda: False
) -> Environment:
    """The environment for ``requirements_file`` (run from its directory, as pip -r is in
    the container, so relative paths in it resolve against the code), built if needed.
    ``interrupted()`` true: pip is killed and InstallInterrupted raised."""
    requirements = requirements_file.read_text(errors="replace")
    cache.mkdir(parents=True, exist_ok=True)
    key = environment_key(requirements_file)
    path = cache / key
    with open(cache / f"{key}.lock", "w") as lock:
        # flock: released by the kernel when the holder dies, so a killed install never
        # leaves the others waiting forever; they find no marker and build it again.
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = cached(cache, requirements_file)
        if found is not None:
            return found
        shutil.rmtree(path, ignore_errors=True)
        _create_layered_venv(path)
        log = _pip_install(path, requirements_file, requirements, interrupted)
        (path / COMPLETE_MARKER).write_text(requirements)
        return Environment(path, installed=True, log=log)


def _base_site_dirs() -> list[str]:
    """Where this environment's packages are (the layer below the job's venv)."""
    dirs = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return list(dict.fromkeys(dirs))


def _create_layered_venv(path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)],
        check=True,
        capture_output=True,
    )
    purelib = sysconfig.get_path(
        "purelib", vars={"base": str(path), "platbase": str(path)}, scheme="venv"
    )
    # site.addsitedir appends each line of a .pth file to sys.path after the venv's own
    # site-packages: the installed requirements shadow the base, the base stays visible.
    Path(purelib, BASE_PTH).write_text("\n".join(_base_site_dirs()) + "\n")


def _pip_install(
    path: Path, requirements_file: Path, requirements: str, interrupted: Callable[[], bool]
) -> str:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(path / "bin" / "python"),
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "-r",
        REQUIREMENTS_FILE,
    ]
    shown = f"{sys.executable} -m pip install -r {REQUIREMENTS_FILE}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_TARGET")}
    with tempfile.TemporaryFile("w+", errors="replace") as out:
        proc = subprocess.Popen(
            argv,
            cwd=requirements_file.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # `pip --python` runs a second pip under the environment's interpreter, as its
            # child: only killing the whole group ends the install
            process_group=0,
        )
        deadline = time.monotonic() + INSTALL_TIMEOUT_SECONDS
        # A stop (StopTrainingJob) must not wait for a long install: a container being
        # stopped is killed whatever it is doing.
        while proc.poll() is None:
            if interrupted() or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if interrupted():
                    raise InstallInterrupted(f"pip install -r {requirements_file} was stopped")
                raise RequirementsError(
                    shown, 1, f"ERROR: timed out after {INSTALL_TIMEOUT_SECONDS} s", None
                )
            time.sleep(POLL_SECONDS)
        out.seek(0)
        output = out.read()
    if proc.returncode != 0:
        raise RequirementsError(shown, proc.returncode, output, failing_line(requirements, output))
    return output
