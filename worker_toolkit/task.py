"""The task description: what the in-job launcher runs (standard library only).

The client (``ssm_rules.requests.task_description``) builds a ``TaskDescription`` and sends it as
JSON: in the ``ssm_task`` hyperparameter of a training job, as ``task.json`` in the ``ssm_task``
input of a processing job. The launcher reads it back with ``TaskDescription.from_json``. Both
sides import this one class, so a key cannot be spelled two ways; ``version`` says which shape
of the description a client wrote, and a launcher refuses a version it does not know instead of
guessing at keys it would silently ignore (the model: sagemaker-training-toolkit's ``params.py``
names every key of its contract once).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from . import contract as c

# Version 1: the keys below. Bump it when a key changes meaning or a new key must not be ignored
# by an older launcher; add the new version to SUPPORTED_VERSIONS where the launcher reads it.
TASK_VERSION = 1
SUPPORTED_VERSIONS = (TASK_VERSION,)

__all__ = ["SUPPORTED_VERSIONS", "TASK_VERSION", "TaskDescription", "TaskError"]


class TaskError(ValueError):
    """The task description is malformed, or of a version this launcher does not know."""


@dataclass(frozen=True)
class TaskDescription:
    """One rule's program and what the launcher does around it. Paths are /opt/ml paths."""

    kind: str  # "script" | "shell" (contract.TASK_KINDS)
    job_type: str  # "training" | "processing" (contract.JOB_TYPES)
    program: str = ""  # kind=script: the entry point, relative to the code dir
    command: str = ""  # kind=shell: the fully formatted command
    # plain outputs: in-job path → its path relative to the output member
    files: dict[str, str] = field(default_factory=dict)
    state_dir: str | None = None  # where the task state is, if the rule has one
    model: bool = False  # processing: tar SM_MODEL_DIR into the carrier
    output_data: bool = False  # processing: tar SM_OUTPUT_DATA_DIR into the carrier
    inputs: dict[str, str] = field(default_factory=dict)  # channel → path: SSM_INPUT_<NAME>
    outputs: dict[str, str] = field(default_factory=dict)  # output → path: SSM_OUTPUT_<NAME>
    args: tuple[str, ...] = ()  # free command-line arguments, before the hyperparameters
    setup: str = ""  # shell command run first; what it exports is the program's environment
    # unpacked(...) inputs: channel → (where it is extracted, where its tarball arrives)
    unpack: dict[str, tuple[str, str]] = field(default_factory=dict)
    snakemake: dict[str, Any] | None = None  # the `snakemake` object of a Snakemake-style script
    hps: dict[str, Any] = field(default_factory=dict)  # processing: the hyperparameters
    state_input: str | None = None  # processing: copied into state_dir before the program
    version: int = TASK_VERSION

    def __post_init__(self) -> None:
        _check(self)

    # --- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object, leaving out what is empty (a shorter ``ssm_task`` hyperparameter:
        SageMaker caps a value at 2,500 characters)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _ALWAYS or value not in (None, "", (), {}, False):
                out[f.name] = _plain(value)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> TaskDescription:
        """The description in ``data``; TaskError names what is wrong (an unknown version first:
        its other keys may mean something else)."""
        if not isinstance(data, dict):
            raise TaskError(f"the task description must be a JSON object, got {data!r:.200}")
        version = data.get("version")
        if version not in SUPPORTED_VERSIONS:
            raise TaskError(
                f"task description version {version!r} is not one this launcher reads "
                f"(it reads {', '.join(map(str, SUPPORTED_VERSIONS))}): the job's worker_toolkit "
                "is older than the ssm_rules that wrote the task; resubmit with the code bundle "
                "of the same ssm_rules"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskError(
                f"task description version {version}: unknown keys {unknown} (a newer client "
                "must raise the version)"
            )
        missing = [key for key in ("kind", "job_type") if key not in data]
        if missing:
            raise TaskError(f"the task description has no {' or '.join(map(repr, missing))}")
        values = dict(data)
        if "args" in values:
            values["args"] = tuple(_list(values, "args"))
        if "unpack" in values:
            values["unpack"] = {
                name: tuple(pair) if isinstance(pair, list) else pair
                for name, pair in _dict(values, "unpack").items()
            }
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TaskDescription:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TaskError(f"the task description is not JSON ({exc}): {text!r:.200}") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TaskDescription:
        return dataclasses.replace(self, **changes)


_ALWAYS = frozenset({"version", "kind", "job_type"})


def _plain(value: Any) -> Any:
    """JSON's spelling of a field value (tuples are lists)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _list(values: dict[str, Any], key: str) -> list[Any]:
    value = values[key]
    if not isinstance(value, (list, tuple)):
        raise TaskError(f"task {key!r} must be a JSON array, got {value!r:.200}")
    return list(value)


def _dict(values: dict[str, Any], key: str) -> dict[str, Any]:
    value = values[key]
    if not isinstance(value, dict):
        raise TaskError(f"task {key!r} must be a JSON object, got {value!r:.200}")
    return value


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _check(task: TaskDescription) -> None:
    if task.kind not in c.TASK_KINDS:
        raise TaskError(f"task kind must be one of {c.TASK_KINDS}, got {task.kind!r}")
    if task.job_type not in c.JOB_TYPES:
        raise TaskError(f"job_type must be one of {c.JOB_TYPES}, got {task.job_type!r}")
    body = "program" if task.kind == "script" else "command"
    if not isinstance(getattr(task, body), str) or not getattr(task, body):
        raise TaskError(f"a {task.kind} task needs a non-empty {body!r}")
    if not isinstance(task.setup, str):
        raise TaskError(f"task 'setup' must be a shell command (a string), got {task.setup!r:.200}")
    for key in ("files", "inputs", "outputs", "hps", "unpack"):
        if not isinstance(getattr(task, key), dict):
            raise TaskError(f"task {key!r} must be a JSON object, got {getattr(task, key)!r:.200}")
    if not all(isinstance(a, str) for a in task.args):
        raise TaskError(f"task 'args' must be strings, got {list(task.args)!r:.200}")
    for name, pair in task.unpack.items():
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(map(_is_str, pair))):
            raise TaskError(f"task 'unpack' of {name!r} must be [extracted, tarball], got {pair!r}")
    for key in ("state_dir", "state_input"):
        if getattr(task, key) is not None and not isinstance(getattr(task, key), str):
            raise TaskError(f"task {key!r} must be a path, got {getattr(task, key)!r:.200}")
    for key in ("model", "output_data"):
        if not isinstance(getattr(task, key), bool):
            raise TaskError(f"task {key!r} must be true or false, got {getattr(task, key)!r}")
    if task.snakemake is not None and not isinstance(task.snakemake, dict):
        raise TaskError(f"task 'snakemake' must be a JSON object, got {task.snakemake!r:.200}")
