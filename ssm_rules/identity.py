"""A job's identity: what must be equal for an existing SageMaker job to stand for this one.

Rule and wildcards, the code bundle, hyperparameters, the resources that change the
result (not spot: falling back to on-demand is the same work), job options, and the
version of every input. It travels as a tag on the job, so that a later run — after the
client died — can adopt the job still running, or reuse the one that finished while nobody
watched, instead of paying twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ssm_rules.objects import ObjectStore
from ssm_rules.spec import TaskSpec

IDENTITY_TAG = "ssm-rules:identity"
RULE_TAG = "ssm-rules:rule"
TASK_TAG = "ssm-rules:task"


def input_version(store: ObjectStore, uri: str) -> str:
    """Keys and versions (S3 ETag, or size and mtime of a file) of what is under ``uri``:
    one List call, no per-object request."""
    objects = store.list(uri)
    return hashlib.sha256(json.dumps([(o.key, o.version) for o in objects]).encode()).hexdigest()


def identity(spec: TaskSpec, code_sha256: str, input_versions: dict[str, str]) -> str:
    return identity_of(identity_parts(spec, code_sha256, input_versions))


def identity_of(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]


def identity_parts(
    spec: TaskSpec, code_sha256: str, input_versions: dict[str, str]
) -> dict[str, Any]:
    """What the identity is made of, as JSON values (also recorded beside the task state, to
    say what differs when a job resumes from state another job wrote)."""
    i = spec.instance
    parts = {
        "task": spec.task_id,
        "type": str(spec.job_type),
        "code": code_sha256,
        "kind": spec.kind,
        "program": spec.program,
        "command": spec.command,
        "hps": [[k, v] for k, v in spec.hyperparameters],
        "instance": [i.instance_type, i.count, i.volume_gb, i.max_run_seconds],
        "options": repr(spec.options),
        "inputs": sorted(input_versions.items()),
        "outputs": [[str(o.kind), o.uri] for o in spec.outputs],
    }
    if spec.members:  # a group's job: every member's body, params and options count
        parts["members"] = [
            [m.spec.task_id, m.spec.kind, m.spec.program, m.spec.command]
            + [[[k, v] for k, v in m.spec.hyperparameters], repr(m.spec.options)]
            for m in spec.members
        ]
    return parts


# identity part → how the user reads it
_PART_NAMES = {
    "code": "code (source_dir, dependencies, script)",
    "kind": "body (script: / shell:)",
    "program": "script",
    "command": "shell command",
    "instance": "instance_type, instance_count, volume_size_gb or max_run_mins",
    "options": "job(...) options",
    "type": "job_type",
}


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two jobs' identity parts, in the user's words: each changed
    hyperparameter with both values, each input by its channel name, the rest by name."""
    found: list[str] = []
    old_hps, new_hps = dict(map(tuple, before.get("hps", []))), dict(map(tuple, now["hps"]))
    for name in sorted(set(old_hps) | set(new_hps)):
        if old_hps.get(name) != new_hps.get(name):
            found.append(f"param {name}: {old_hps.get(name)!r} then, {new_hps.get(name)!r} now")
    old_inputs, new_inputs = dict(map(tuple, before.get("inputs", []))), dict(now["inputs"])
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(name) != new_inputs.get(name):
            found.append(f"input {name}")
    for part, label in _PART_NAMES.items():
        if json.dumps(before.get(part)) != json.dumps(now.get(part)):
            found.append(label)
    return found


def identity_tags(spec: TaskSpec, ident: str) -> dict[str, str]:
    """The tags every job carries besides the user's (finding and adopting it later)."""
    return {IDENTITY_TAG: ident, RULE_TAG: spec.rule, TASK_TAG: spec.task_id[:256]}
