"""Helpers for end-to-end tests: a workflow copied into a temporary directory, run by the real
`snakemake` command in a process of its own (forked from :mod:`tests.snakemake_server`, which
has Snakemake imported already, or a plain ``python -m snakemake``)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.snakemake_server import SnakemakeServer

REPO = Path(__file__).resolve().parent.parent
# snakemake arguments of a quick run on the local backend
LOCAL_ARGS = (
    *("--executor", "sagemaker", "--sagemaker-backend", "local", "--jobs", "4"),
    *("--seconds-between-status-checks", "1", "--latency-wait", "1"),
)


def aws_args(bucket: str) -> tuple[str, ...]:
    """snakemake arguments of a quick run on the aws backend with S3 storage (on moto)."""
    return (
        *("--executor", "sagemaker", "--sagemaker-backend", "aws"),
        *("--sagemaker-role", "SageMakerRole", "--sagemaker-bucket", bucket),
        *("--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{bucket}/wf"),
        *("--jobs", "4", "--seconds-between-status-checks", "0", "--latency-wait", "2"),
    )


def wait_for(predicate: Callable[[], object], timeout: float = 300) -> None:
    """Until ``predicate()`` holds. The timeout only ends a test that is stuck: it is no
    measure of speed (a snakemake client takes a minute to start on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s")


def interruptible() -> None:
    """In a child before it execs: SIGINT back to its default action, so that the program
    (Python: KeyboardInterrupt) reacts to Ctrl-C whatever disposition it would inherit
    (POSIX: an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# SSM_TEST_FORK_SERVER=0: every run a plain `python -m snakemake` (slower, same results)
FORK_SERVER_ENV = "SSM_TEST_FORK_SERVER"
_server: SnakemakeServer | None = None
# the server's environment: this process's before any test changed it
_ENV_AT_START = dict(os.environ)


def snakemake_server() -> SnakemakeServer | None:
    """This test process's fork server (:mod:`tests.snakemake_server`), started on first use."""
    global _server
    if os.environ.get(FORK_SERVER_ENV, "1") == "0":
        return None
    if _server is None:
        _server = SnakemakeServer(_ENV_AT_START)
        atexit.register(_server.close)
    return _server


@dataclass
class Workflow:
    root: Path

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        run_env = {**os.environ, **(env or {})}
        server = snakemake_server()
        if server is not None and server.serves(run_env):
            proc = server.run(list(args), self.root, run_env, timeout)
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "snakemake", *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=run_env,
            )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                f"\n--- stderr\n{proc.stderr[-6000:]}"
            )
        return proc

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """The client in the background, as a user's terminal runs it: Ctrl-C (SIGINT)
        interrupts it, even when this test process ignores SIGINT (started in the background
        by a non-interactive shell, or by nohup), which its children would inherit. Output:
        stdout and stderr together, as text."""
        run_env = {**os.environ, **(env or {})}
        server = snakemake_server()
        if server is not None and server.serves(run_env):
            return server.popen(list(args), self.root, run_env)  # type: ignore[return-value]
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=run_env,
            preexec_fn=interruptible,
        )

    def path(self, rel: str) -> Path:
        return self.root / rel

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p


def example_workflow(tmp_path: Path) -> Workflow:
    root = tmp_path / "wf"
    root.mkdir()
    shutil.copy(REPO / "Snakefile.example", root / "Snakefile")
    shutil.copytree(REPO / "example", root / "example")
    shutil.copytree(REPO / "profiles", root / "profiles")
    return Workflow(root)


def planned_rules(output: str) -> set[str]:
    """Rule names a dry run (-n) says it would run: lines like 'rule train:' / 'localrule all:'."""
    names = set()
    for line in output.splitlines():
        line = line.strip()
        for prefix in ("rule ", "localrule "):
            if line.startswith(prefix) and line.endswith(":"):
                names.add(line[len(prefix) : -1])
    return names
