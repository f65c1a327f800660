"""A job's log events → the rule's ``log:`` file (every instance, stream by stream)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from ssm_rules.backends.base import LogEvent
from ssm_rules.objects import ObjectStore


def render(job_name: str, events: Sequence[LogEvent]) -> str:
    lines: list[str] = []
    stream = None
    for event in events:
        if event.stream != stream:
            stream = event.stream
            lines.append(f"==> {job_name}: {stream} <==")
        lines.append(event.message.rstrip("\n"))
    return "\n".join(lines) + ("\n" if lines else "")


def write_logs(store: ObjectStore, uri: str, job_name: str, events: Sequence[LogEvent]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".log") as tmp:
        tmp.write(render(job_name, events))
        tmp.flush()
        store.upload(Path(tmp.name), uri)
