"""Waiting for processes to end, without polling them.

Linux (5.3+) gives a file descriptor for a process that becomes readable when the process
terminates (``pidfd_open(2)``), for any process we may signal, not only our children: the
client can wait on a detached runner, the runner on its hosts. ``poll(2)`` over several of
them, plus a :class:`Wakeup` pipe, returns on the first exit or the first wake-up. Where
there is no ``pidfd_open`` (macOS), the processes are checked every ``FALLBACK_SECONDS``.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Collection

FALLBACK_SECONDS = 0.02


class Wakeup:
    """A self-pipe: :meth:`poke` (from another thread, or a signal handler) ends a
    :func:`wait_any` in progress, or the next one, at once."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        return self._read

    def poke(self) -> None:
        try:
            os.write(self._write, b"!")
        except BlockingIOError:  # the pipe is full: a wake-up is pending anyway
            pass

    def drain(self) -> bool:
        """Consume the pending wake-ups; True if there were any."""
        poked = False
        while True:
            try:
                if not os.read(self._read, 4096):
                    return poked
            except BlockingIOError:
                return poked
            poked = True

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


def wait_any(pids: Collection[int], timeout: float, wakeup: Wakeup | None = None) -> None:
    """Return once one of ``pids`` has terminated (or is gone already), ``wakeup`` was poked
    (since its last wait), or ``timeout`` seconds passed. Which of these happened is for the
    caller to find out: a process's exit status belongs to its parent."""
    deadline = time.monotonic() + max(timeout, 0.0)
    if not hasattr(os, "pidfd_open"):
        _poll_fallback(pids, deadline, wakeup)
        return
    fds: list[int] = []
    try:
        for pid in pids:
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                return  # ended before we looked
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        if wakeup is not None:
            poller.register(wakeup.fileno(), select.POLLIN)
        # a signal handler that pokes the wake-up makes the retried poll return (PEP 475)
        poller.poll(max(deadline - time.monotonic(), 0.0) * 1000)
    finally:
        for fd in fds:
            os.close(fd)
        if wakeup is not None:
            wakeup.drain()


def _poll_fallback(pids: Collection[int], deadline: float, wakeup: Wakeup | None) -> None:
    while True:
        if wakeup is not None and wakeup.drain():
            return
        if any(_ended(pid) for pid in pids) or time.monotonic() >= deadline:
            return
        time.sleep(min(FALLBACK_SECONDS, max(deadline - time.monotonic(), 0.0)))


def _ended(pid: int) -> bool:
    """Terminated: a child of ours that exited (a zombie until its parent collects it, which
    this check does not do), or any other process that is gone."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # not our child
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
