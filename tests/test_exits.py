"""Waiting for processes to end without polling (ssm_rules.backends.local.exits), with real
processes: a child, a process that is not our child, a wake-up from another thread, and the
fallback without pidfd_open. A wait that missed its wake-up would run into its 600 s timeout:
the bound asserted is a tenth of it, far from any machine's load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from ssm_rules.backends.local import exits

LONG = 600.0


def sleeper(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def took(pids: list[int], wakeup: exits.Wakeup | None = None, timeout: float = LONG) -> float:
    started = time.monotonic()
    exits.wait_any(pids, timeout, wakeup)
    return time.monotonic() - started


@pytest.fixture(params=["pidfd", "fallback"])
def mode(request, monkeypatch):
    if request.param == "pidfd" and not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd_open here")
    if request.param == "fallback":
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    return request.param


def test_a_child_that_exits_ends_the_wait_and_keeps_its_exit_status(mode):
    running, ending = sleeper(LONG), subprocess.Popen([sys.executable, "-c", "exit(3)"])
    try:
        assert took([running.pid, ending.pid]) < LONG / 10
        assert ending.wait() == 3  # the wait did not collect it: its parent still can
        assert running.poll() is None
    finally:
        running.kill()
        running.wait()


def test_a_process_that_is_not_our_child_ends_the_wait(mode):
    # the shell starts it in the background and exits: it is reparented, as the runner is
    shell = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'import sys; sys.stdin.read()' & echo $!"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    orphan = int(shell.stdout)  # its stdin (the pipe) is closed: it ends on its own
    assert took([orphan]) < LONG / 10


def test_a_poke_ends_the_wait_while_the_processes_run(mode):
    running, wakeup = sleeper(LONG), exits.Wakeup()
    try:
        threading.Timer(0.1, wakeup.poke).start()
        assert took([running.pid], wakeup) < LONG / 10
        assert running.poll() is None
        assert not wakeup.drain()  # the wait consumed it
    finally:
        running.kill()
        running.wait()
        wakeup.close()


def test_a_poke_before_the_wait_is_not_lost(mode):
    wakeup = exits.Wakeup()
    wakeup.poke()
    assert took([], wakeup) < LONG / 10
    wakeup.close()


def test_a_pid_gone_already_ends_the_wait(mode):
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert took([gone.pid]) < LONG / 10


def test_the_timeout_ends_the_wait_of_running_processes(mode):
    running = sleeper(LONG)
    try:
        exits.wait_any([running.pid], 0.05)
        assert running.poll() is None
    finally:
        running.kill()
        running.wait()
