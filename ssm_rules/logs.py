"""A job's log events → the rule's ``log:`` file (every instance, stream by stream)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from ssm_rules import scratch
from ssm_rules.backends.base import LogEvent
from ssm_rules.objects import ObjectStore
from ssm_rules.spec import TaskSpec
from worker_toolkit.contract import GROUP_MEMBER_MARK


def render(job_name: str, events: Sequence[LogEvent]) -> str:
    lines: list[str] = []
    stream = None
    for event in events:
        if event.stream != stream:
            stream = event.stream
            lines.append(f"==> {job_name}: {stream} <==")
        lines.append(event.message.rstrip("\n"))
    return "\n".join(lines) + ("\n" if lines else "")


def member_parts(events: Sequence[LogEvent], members: int) -> list[list[LogEvent]]:
    """A group job's log split by member: each instance's stream at the launcher's line
    ``<GROUP_MEMBER_MARK><i>/<n>: ...`` as member i starts (what comes before the first
    one, the container's start, goes to the first member)."""
    parts: list[list[LogEvent]] = [[] for _ in range(members)]
    current: dict[str, int] = {}
    for event in events:
        if event.message.startswith(GROUP_MEMBER_MARK):
            number = event.message[len(GROUP_MEMBER_MARK) :].split("/", 1)[0]
            if number.isdigit() and 1 <= int(number) <= members:
                current[event.stream] = int(number) - 1
        parts[current.get(event.stream, 0)].append(event)
    return parts


def log_texts(spec: TaskSpec, job_name: str, events: Sequence[LogEvent]) -> dict[str, str]:
    """Each ``log:`` file of the job (URI) → its text: the whole log, or for a group's job
    each member's own part in its member's files."""
    if not spec.members:
        text = render(job_name, events)
        return {uri: text for uri in spec.logs}
    parts = member_parts(events, len(spec.members))
    return {
        uri: render(job_name, parts[i]) for i, m in enumerate(spec.members) for uri in m.spec.logs
    }


def write_log(store: ObjectStore, uri: str, text: str) -> None:
    """The whole log so far (a file is replaced atomically; an S3 object is put again)."""
    with tempfile.NamedTemporaryFile("w", suffix=".log", dir=scratch.directory()) as tmp:
        tmp.write(text)
        tmp.flush()
        store.upload(Path(tmp.name), uri)
