"""A job's log events → the rule's ``log:`` file (every instance, stream by stream)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from ssm_rules import scratch
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


def write_log(store: ObjectStore, uri: str, text: str) -> None:
    """The whole log so far (a file is replaced atomically; an S3 object is put again)."""
    with tempfile.NamedTemporaryFile("w", suffix=".log", dir=scratch.directory()) as tmp:
        tmp.write(text)
        tmp.flush()
        store.upload(Path(tmp.name), uri)
