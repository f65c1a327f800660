"""Where one local job keeps its record, and how that record is read and written.

``<root>/<job name>/`` holds ``request.json`` (the Create*Job body as sent), ``status.json``
(the Describe*Job document, rewritten atomically by the runner at every transition),
``runner.pid``, ``stop-requested`` (written by :meth:`LocalBackend.stop`), ``hosts/algo-i/``
(each host's /opt/ml) and ``logs/`` (``algo-i.log`` per host, ``runner.log``).
Only the runner writes ``status.json`` once it runs; the client writes it before the
runner starts and after the runner is found dead, so two writers never race.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssm_rules.objects import temp_sibling

RUNNER_MODULE = "ssm_rules.backends.local.runner"
# beside the jobs root: code bundles extracted once per content, with the launcher's bytecode
CODE_CACHE = "code-cache"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Readers never see a half-written file: temp file in the same directory + rename."""
    tmp = temp_sibling(path)  # with the user's umask (mkstemp's would be 0600)
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


@dataclass(frozen=True)
class JobDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def request_file(self) -> Path:
        return self.path / "request.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def pid_file(self) -> Path:
        return self.path / "runner.pid"

    @property
    def stop_file(self) -> Path:
        return self.path / "stop-requested"

    @property
    def hosts_dir(self) -> Path:
        return self.path / "hosts"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def runner_log(self) -> Path:
        return self.logs_dir / "runner.log"

    @property
    def work_dir(self) -> Path:
        """Runner scratch space (downloaded code bundle, tarballs before upload)."""
        return self.path / "work"

    def host_dir(self, host: str) -> Path:
        return self.hosts_dir / host

    def host_log(self, host: str) -> Path:
        return self.logs_dir / f"{host}.log"

    def read_request(self) -> dict[str, Any]:
        return read_json(self.request_file)

    def read_status(self) -> dict[str, Any]:
        return read_json(self.status_file)

    def write_status(self, doc: dict[str, Any]) -> None:
        write_json_atomic(self.status_file, doc)

    def runner_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def stop_requested(self) -> bool:
        return self.stop_file.exists()


def process_alive(pid: int, must_contain: str | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, if given, its command line has ``must_contain``.

    A SIGKILLed runner stays a zombie until its parent reaps it, and a pid can be reused
    by an unrelated process, so ``kill(pid, 0)`` alone would report it alive.
    """
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # no procfs: best effort
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = (proc / "stat").read_text()
        state = stat[stat.rindex(")") + 2 :].split()[0]
        if state in ("Z", "X"):
            return False
        if must_contain is not None:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return must_contain in cmdline
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return False
    return True
