"""A fork server for the tests' blocking ``snakemake`` runs: Snakemake imported once, each run
a fresh process forked from it.

Starting the ``snakemake`` command costs about 2 s of CPU before it reads a Snakefile
(``import snakemake.cli`` alone is 1.2 s: sqlalchemy/sqlmodel, yte, numpy; then every
installed plugin), and the suite starts it a few hundred times. Here one server process per
test process pays that once; each run is a child forked from it which, like a new process,
gets its own pid, working directory, environment, umask, ``sys.argv`` and standard streams, calls
the real command-line entry point (``snakemake.cli.main``, as ``python -m snakemake`` does),
runs its ``atexit`` handlers and exits with the command's code. The plugins are the real
ones, found by Snakemake's own registries.

What a fork cannot change is what was decided when the modules were imported: a run whose
environment differs from the server's in a variable that affects imports
(:data:`IMPORT_TIME_ENV`) is started as a plain subprocess instead. The server is single
threaded (asserted before it serves: a fork copies only the calling thread); it reaps each
run through a pidfd and sends its wait status to the client that asked for it, so runs may
overlap (a test's background client and a second run).
"""

from __future__ import annotations

import array
import atexit
import importlib.util
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import IO, Any

# A run whose environment differs from the server's in one of these starts a plain process:
# they change what Python imports, or were read by a module at its import.
IMPORT_TIME_ENV_PREFIXES = ("PYTHON",)
IMPORT_TIME_ENV = ("PATH", "VIRTUAL_ENV", "LD_PRELOAD", "LD_LIBRARY_PATH")

_STATUS = struct.Struct("!q")  # one signed 64-bit integer per message: a pid, then a wait status


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in env.items()
        if k in IMPORT_TIME_ENV or k.startswith(IMPORT_TIME_ENV_PREFIXES)
    }


# --- the server ------------------------------------------------------------------------------
def serve(socket_path: str) -> None:
    import snakemake.cli  # noqa: F401 — the point of the server
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
    from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry
    from snakemake_interface_report_plugins.registry import ReportPluginRegistry
    from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

    for registry in (
        ExecutorPluginRegistry,
        StoragePluginRegistry,
        LoggerPluginRegistry,
        ReportPluginRegistry,
    ):
        _ = registry().plugins  # imports every installed plugin of its kind
    assert threading.active_count() == 1, f"threads before forking: {threading.enumerate()}"

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    print("ready", flush=True)  # the client waits for this line
    # runs in flight: the pidfd of each child, with its client's connection for its status
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                pid = _start_run(conn, listener, selector)
                if pid is None:
                    conn.close()
                    continue
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, conn))
            else:
                pid, conn = key.data
                selector.unregister(key.fileobj)
                os.close(key.fd)
                _, wait_status = os.waitpid(pid, 0)
                with conn:
                    try:
                        conn.sendall(_STATUS.pack(wait_status))
                    except OSError:
                        pass  # the client timed out and left


def _start_run(
    conn: socket.socket, listener: socket.socket, selector: selectors.BaseSelector
) -> int | None:
    request, fds = _receive(conn)
    if request is None:
        return None  # the client went away
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        conn.close()
        _run_child(request, fds)  # never returns
    for fd in fds:
        os.close(fd)
    conn.sendall(_STATUS.pack(pid))
    return pid


def _receive(conn: socket.socket) -> tuple[dict | None, list[int]]:
    chunks, fds = [], []
    while True:
        data, ancdata, _flags, _addr = conn.recvmsg(1 << 16, socket.CMSG_LEN(3 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if not data:
            break
        chunks.append(data)
        if data.endswith(b"\n"):
            break
    if not chunks:
        return None, fds
    return json.loads(b"".join(chunks)), fds


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the run, as ``python -m snakemake <args>`` would be."""
    code = 1
    try:
        stdin = os.open(os.devnull, os.O_RDONLY)
        for target, fd in zip((0, 1, 2), (stdin, *fds), strict=True):
            os.dup2(fd, target)
        for fd in (stdin, *fds):
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.umask(request["umask"])
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # as `python -m` puts its working directory first
        os.environ.clear()
        os.environ.update(request["env"])
        from snakemake.cli import main

        # as `python -m snakemake` sets it (its module's file; importing it would run it)
        sys.argv = [importlib.util.find_spec("snakemake.__main__").origin, *request["args"]]

        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int | None):
                print(e.code, file=sys.stderr)
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 — an uncaught exception: Python prints it, exits 1
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 — a closed stream: nothing more to say
                pass
        os._exit(code)


# --- the client ------------------------------------------------------------------------------
class SnakemakeServer:
    """The server of this test process, started on first use; :meth:`run` is
    ``subprocess.run([sys.executable, "-m", "snakemake", *args], capture_output=True, ...)``."""

    def __init__(self, env: dict[str, str]) -> None:
        self._dir = tempfile.mkdtemp(prefix="ssm-snakemake-server-")
        self._socket_path = os.path.join(self._dir, "socket")
        self._env = dict(env)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.snakemake_server", self._socket_path],
            cwd=Path(__file__).resolve().parent.parent,  # where `tests` is a package
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._process.stdout.readline() if self._process.stdout else ""
        if ready.strip() != "ready":
            self._process.kill()
            raise RuntimeError(f"the snakemake fork server did not start (said {ready!r})")
        self._import_env = import_time_env(self._env)

    def serves(self, env: dict[str, str]) -> bool:
        return self._process.poll() is None and import_time_env(env) == self._import_env

    def run(
        self, args: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            run = self._start(args, cwd, env, out.fileno(), err.fileno())
            try:
                run.wait(timeout)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
                raise
            stdout, stderr = (_read_text(f) for f in (out, err))
        return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)

    def popen(self, args: list[str], cwd: Path, env: dict[str, str]) -> ServedRun:
        """Like ``Popen(..., stdout=PIPE, stderr=STDOUT, text=True)``."""
        read_end, write_end = os.pipe()
        try:
            run = self._start(args, cwd, env, write_end, write_end)
        finally:
            os.close(write_end)
        run.stdout = open(read_end, encoding="utf-8", errors="replace")  # noqa: SIM115
        return run

    def _start(
        self, args: list[str], cwd: Path, env: dict[str, str], out: int, err: int
    ) -> ServedRun:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self._socket_path)
        umask = os.umask(0o022)  # reading it means setting it
        os.umask(umask)
        request = {"args": args, "cwd": str(cwd), "env": env, "umask": umask}
        fds = array.array("i", [out, err])
        conn.sendmsg(
            [json.dumps(request).encode() + b"\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]
        )
        conn.settimeout(60)
        pid = _STATUS.unpack(_recv_exactly(conn, _STATUS.size))[0]
        return ServedRun(["snakemake", *args], pid, conn)

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()
        for name in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)


class ServedRun:
    """A run of the server, with the part of :class:`subprocess.Popen`'s interface the tests
    use: ``pid``, ``stdout``, ``returncode``, ``poll``, ``wait``, ``communicate``,
    ``send_signal``, ``kill``."""

    def __init__(self, args: list[str], pid: int, conn: socket.socket) -> None:
        self.args = args
        self.pid = pid
        self.stdout: Any = None
        self.returncode: int | None = None
        self._conn = conn

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                data = _recv_exactly(self._conn, _STATUS.size)
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout or 0) from None
            self.returncode = os.waitstatus_to_exitcode(_STATUS.unpack(data)[0])
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(0.001)
        except subprocess.TimeoutExpired:
            return None

    def communicate(self, timeout: float | None = None) -> tuple[str | None, None]:
        """The rest of the output (read until the run closes it) and the exit."""
        rest: list[str] = []
        reader = threading.Thread(target=lambda: rest.append(self.stdout.read()), daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(timeout)
        self.stdout.close()
        return rest[0], None

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise RuntimeError("the snakemake fork server went away")
        data += chunk
    return data


def _read_text(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


if __name__ == "__main__":
    serve(sys.argv[1])
