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
    i = spec.instance
    payload = {
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
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]
