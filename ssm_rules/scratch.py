"""Where this client keeps its scratch files (promotion downloads, text and code uploads, log
copies): under the run's own directory, ``<workdir>/.ssm_rules/tmp/<pid>/``, not TMPDIR.

A client killed with SIGKILL cannot clean up after itself; what it left is then in one
known place, and the next client removes the folders of clients that are no longer alive
(:func:`use`). Until :func:`use` is called (a library caller, a unit test) scratch files go
to the system's temporary directory, as before.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SCRATCH_DIR = "tmp"

_root: Path | None = None  # <workdir>/.ssm_rules/tmp, once the executor set it


def use(state_dir: Path) -> list[Path]:
    """Keep this process's scratch files under ``state_dir/tmp/<pid>``; removes what dead
    clients left there. Returns the removed folders."""
    global _root
    _root = state_dir / SCRATCH_DIR
    removed = []
    for entry in sorted(_root.iterdir()) if _root.is_dir() else []:
        if entry.name == str(os.getpid()) or (entry.name.isdigit() and _alive(int(entry.name))):
            continue  # ours, or a client still running in this directory
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def directory() -> str | None:
    """The ``dir=`` of every tempfile call of ours (None: the system's temporary directory)."""
    if _root is None:
        return None
    mine = _root / str(os.getpid())
    mine.mkdir(parents=True, exist_ok=True)
    return str(mine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
