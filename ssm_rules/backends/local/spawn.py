"""How a client starts a job's runner: forked from a pre-imported runner server, else started.

A runner started as ``python -m ssm_rules.backends.local.runner --detach <jobdir>`` pays a
Python start-up and its imports (a sixth of a second, more on a loaded machine) before the
job even downloads. So a client starts one runner server in the background at its first
job (``runner --server``: the same module, imported once) and asks it for a runner per
job: it forks one, which is then what a started runner is (own session, nobody's child,
``runner.pid`` written before :func:`start_runner` returns, output in ``runner.log``, the
client's environment). The server ends when its client does (its stdin closes); the
runners it forked do not. Whenever the server cannot be had (it died, does not answer, a
fork failed), the runner is started the plain way: the server only ever saves time.

``SSM_LOCAL_RUNNER_SERVER=0`` always starts runners the plain way.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from ssm_rules.backends.local.jobdir import JobDir

log = logging.getLogger(__name__)

SERVER_ENV = "SSM_LOCAL_RUNNER_SERVER"
SERVER_FLAG = "--server"  # runner.SERVER_FLAG (not imported: the client need not load it)
SERVER_READY = b"ready"  # runner.SERVER_READY
START_TIMEOUT_SECONDS = 60
# What decides the server's own interpreter and sys.path: a request whose environment
# differs in one of these gets a new server (the runner imports from the same places).
_STARTUP_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE")


class _Server:
    """One runner server process and the pipe pair to it (one request at a time)."""

    def __init__(self, module: str, env: Mapping[str, str], cwd: Path) -> None:
        self.key = _key(module, env)
        self.owner = os.getpid()  # a forked client must not share our pipes
        self.lock = threading.Lock()
        self.ready = False
        self.buffer = b""
        self.proc = subprocess.Popen(
            # -P: its working directory is not on sys.path (a user's json.py there must not
            # shadow the standard library); each runner it forks enters its job's directory
            [sys.executable, "-P", "-m", module, SERVER_FLAG],
            cwd=next((p for p in (cwd, *cwd.parents) if p.is_dir()), None),
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the client's terminal is not for it
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the server exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def _line(self, deadline: float) -> bytes | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None  # the server is gone
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def spawn(self, jobdir: Path, env: Mapping[str, str], timeout: float) -> int | None:
        """The pid of a runner forked for ``jobdir``; None if the server could not."""
        deadline = time.monotonic() + timeout
        with self.lock:
            # The request first, ready or not: it waits in the pipe while the server imports,
            # and is served even if this client dies meanwhile (the job then has its runner,
            # as a started runner would outlive its client).
            assert self.proc.stdin is not None
            request = {"jobdir": str(jobdir), "env": dict(env)}
            try:
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                self.proc.stdin.flush()
            except OSError:
                return None
            if not self.ready:
                if self._line(deadline) != SERVER_READY:
                    return None
                self.ready = True
            line = self._line(deadline)
        if line is None:
            return None
        try:
            reply = json.loads(line)
        except ValueError:
            return None
        if "pid" not in reply:
            log.debug("runner server: %s", reply.get("error"))
        return reply.get("pid")


_lock = threading.Lock()
_server: _Server | None = None


def _key(module: str, env: Mapping[str, str]) -> tuple[str, ...]:
    return (sys.executable, module, *(env.get(k, "") for k in _STARTUP_VARIABLES))


def _server_for(module: str, env: Mapping[str, str], cwd: Path) -> _Server | None:
    """This process's runner server for ``module`` and ``env``, started if need be."""
    global _server
    with _lock:
        server = _server
        if server is not None and (
            server.owner != os.getpid() or server.key != _key(module, env) or not server.alive()
        ):
            if server.owner == os.getpid():
                server.close()
            server = _server = None
        if server is None:
            try:
                server = _server = _Server(module, env, cwd)
                _stop_at_exit()
            except OSError as e:
                log.debug("cannot start the runner server: %s", e)
                return None
        return server


def _enabled(env: Mapping[str, str]) -> bool:
    return env.get(SERVER_ENV, "") not in ("0", "false", "no")


def prestart(module: str, env: Mapping[str, str], cwd: Path) -> None:
    """Start the runner server in the background (not waiting for it), unless disabled."""
    if _enabled(env):
        _server_for(module, env, cwd)


def start_runner(module: str, jobdir: Path, env: Mapping[str, str], log_file: Path) -> int:
    """Start the runner of ``jobdir``; 0 once it runs and wrote ``runner.pid``, else the
    exit code of the plain start (its output is in ``log_file``)."""
    if _enabled(env):
        server = _server_for(module, env, jobdir.parent)
        if server is not None:
            pid = server.spawn(jobdir, env, START_TIMEOUT_SECONDS)
            if pid is not None:
                return 0
            with _lock:
                global _server
                if _server is server:
                    _server = None
            server.kill()  # not close(): a request still in its pipe must never be served now
            if JobDir(jobdir).pid_file.exists():
                return 0  # forked after all (a late reply): never a second runner
            log.debug("runner server did not fork a runner for %s: starting one", jobdir.name)
    with open(log_file, "ab") as out:
        # The runner daemonizes (--detach): it survives its client, like a SageMaker job,
        # and has written runner.pid by the time this first process exits.
        starter = subprocess.Popen(
            [sys.executable, "-m", module, "--detach", str(jobdir)],
            cwd=jobdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return starter.wait(timeout=START_TIMEOUT_SECONDS)


@functools.cache
def _stop_at_exit() -> None:
    atexit.register(stop_server)  # its stdin closed before the interpreter goes: it ends


def stop_server() -> None:
    """End this process's runner server (it also ends by itself with the process)."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None and server.owner == os.getpid():
        server.close()
