"""The task description: what the in-job launcher runs (standard library only).

The client (``ssm_rules.requests.task_description``) builds a ``TaskDescription`` and sends it as
JSON: in the ``ssm_task`` hyperparameter of a training job, as ``task.json`` in the ``ssm_task``
input of a processing job. The launcher reads it back with ``TaskDescription.from_json``. Both
sides import this one class, so a key cannot be spelled two ways; ``version`` says which shape
of the description a client wrote, and a launcher refuses a version it does not know instead of
guessing at keys it would silently ignore (the model: sagemaker-training-toolkit's ``params.py``
names every key of its contract once).

Version 1 (``TaskDescription``) is one rule's job. Version 2 (``GroupTaskDescription``) is a
Snakemake ``group:`` run as one job (ssm_rules.group): the whole job's outputs and its members
in order, each a ``MemberTask``, a version-1 task plus where the group's job keeps that
member's code and inputs. ``parse_task`` reads either.
"""

from __future__ import annotations

import json

from . import contract as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

# Version 1: the keys below. Bump it when a key changes meaning or a new key must not be ignored
# by an older launcher; add the new version to SUPPORTED_VERSIONS where the launcher reads it.
TASK_VERSION = 1
GROUP_TASK_VERSION = 2  # a group's one job: GroupTaskDescription
SUPPORTED_VERSIONS = (TASK_VERSION, GROUP_TASK_VERSION)
# how a member's input that another member produced reaches it (MemberTask.handoffs)
HANDOFF_KINDS = ("copy", "tar", "tree")  # a file; a model/output directory as a tarball; a folder

__all__ = [
    "GROUP_TASK_VERSION",
    "HANDOFF_KINDS",
    "SUPPORTED_VERSIONS",
    "TASK_VERSION",
    "GroupTaskDescription",
    "MemberTask",
    "TaskDescription",
    "TaskError",
    "parse_task",
]


class TaskError(ValueError):
    """The task description is malformed, or of a version this launcher does not know."""


# --- frozen records ----------------------------------------------------------------------------
# What @dataclass(frozen=True) gave these classes (construction by keyword or position with
# defaults, ==, hash, repr, immutability, replace), without importing dataclasses: it brings
# inspect and ast, a fifth of the launcher's start-up, which every job pays.
class FrozenInstanceError(AttributeError):
    """Assigning to a field of a task description (they are immutable)."""


class _New:
    """A field default made anew for each instance (a dataclass field's default_factory)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def _new(make: Callable[[], Any]) -> Any:
    return _New(make)


class _Record:
    """Fields are the annotated class attributes, base classes' first (ClassVar ones are not
    fields); a class attribute is the field's default."""

    _FIELDS: ClassVar[tuple[str, ...]] = ()
    _DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields, defaults = list(cls._FIELDS), dict(cls._DEFAULTS)
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if str(annotation).startswith("ClassVar"):
                continue
            if name not in fields:
                fields.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
            elif defaults and name not in defaults:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default after one with")
        cls._FIELDS, cls._DEFAULTS = tuple(fields), defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self).__name__
        if len(args) > len(self._FIELDS):
            raise TypeError(f"{cls}() takes {len(self._FIELDS)} positional arguments")
        values = {self._FIELDS[i]: arg for i, arg in enumerate(args)}  # Python 3.9: no strict=
        for name, value in kwargs.items():
            if name not in self._FIELDS:
                raise TypeError(f"{cls}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{cls}() got multiple values for argument {name!r}")
            values[name] = value
        for name in self._FIELDS:
            if name not in values:
                if name not in self._DEFAULTS:
                    raise TypeError(f"{cls}() missing required argument: {name!r}")
                default = self._DEFAULTS[name]
                values[name] = default.make() if isinstance(default, _New) else default
            object.__setattr__(self, name, values[name])
        self.__post_init__()

    def __post_init__(self) -> None:
        pass

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__qualname__}({inner})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _replaced(self, changes: dict[str, Any]) -> Any:
        return type(self)(**{**{name: getattr(self, name) for name in self._FIELDS}, **changes})


class TaskDescription(_Record):
    """One rule's program and what the launcher does around it. Paths are /opt/ml paths."""

    kind: str  # "script" | "shell" (contract.TASK_KINDS)
    job_type: str  # "training" | "processing" (contract.JOB_TYPES)
    program: str = ""  # kind=script: the entry point, relative to the code dir
    command: str = ""  # kind=shell: the fully formatted command
    # plain outputs: in-job path → its path relative to the output member
    files: dict[str, str] = _new(dict)
    state_dir: str | None = None  # where the task state is, if the rule has one
    model: bool = False  # processing: tar SM_MODEL_DIR into the carrier
    output_data: bool = False  # processing: tar SM_OUTPUT_DATA_DIR into the carrier
    inputs: dict[str, str] = _new(dict)  # channel → path: SSM_INPUT_<NAME>
    outputs: dict[str, str] = _new(dict)  # output → path: SSM_OUTPUT_<NAME>
    args: tuple[str, ...] = ()  # free command-line arguments, before the hyperparameters
    setup: str = ""  # shell command run first; what it exports is the program's environment
    # unpacked(...) inputs: channel → (where it is extracted, where its tarball arrives)
    unpack: dict[str, tuple[str, str]] = _new(dict)
    snakemake: dict[str, Any] | None = None  # the `snakemake` object of a Snakemake-style script
    hps: dict[str, Any] = _new(dict)  # processing: the hyperparameters
    state_input: str | None = None  # processing: copied into state_dir before the program
    version: int = TASK_VERSION

    def __post_init__(self) -> None:
        _check(self)

    # --- JSON -------------------------------------------------------------------------------
    _NOT_IN_JSON: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, leaving out what is empty (a shorter ``ssm_task`` hyperparameter:
        SageMaker caps a value at 2,500 characters)."""
        return _to_dict(self, self._NOT_IN_JSON)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> TaskDescription:
        """The description in ``data``; TaskError names what is wrong (an unknown version first:
        its other keys may mean something else)."""
        _require_object(data, "the task description")
        version = data.get("version")
        if version == GROUP_TASK_VERSION:
            raise TaskError(
                f"task description version {version} is a group's job (GroupTaskDescription), "
                "not one rule's: read it with parse_task"
            )
        if version not in SUPPORTED_VERSIONS:
            raise TaskError(_unknown_version(version))
        return cls._from_values(data, f"task description version {version}")

    @classmethod
    def _from_values(cls, data: dict[str, Any], what: str) -> Any:
        known = set(cls._FIELDS) - cls._NOT_IN_JSON
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskError(
                f"{what}: unknown keys {unknown} (a newer client must raise the version)"
            )
        missing = [key for key in ("kind", "job_type") if key not in data]
        if missing:
            raise TaskError(f"{what} has no {' or '.join(map(repr, missing))}")
        values = dict(data)
        if "args" in values:
            values["args"] = tuple(_list(values, "args"))
        if "unpack" in values:
            values["unpack"] = {
                name: tuple(pair) if isinstance(pair, list) else pair
                for name, pair in _dict(values, "unpack").items()
            }
        return cls(**cls._from_json_values(values))

    @classmethod
    def _from_json_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The fields whose JSON spelling differs from their type (a subclass's own)."""
        return values

    @classmethod
    def from_json(cls, text: str) -> TaskDescription:
        return cls.from_dict(_loads(text))

    def replace(self, **changes: Any) -> TaskDescription:
        return self._replaced(changes)


class MemberTask(TaskDescription):
    """One member of a group's job (version 2): its task as it would run alone (``hps`` in
    training jobs too: the job's hyperparameters are ssm_rules'), plus where the group's job
    keeps its code and inputs. No ``version`` of its own: the group's says it."""

    rule: str = ""
    label: str = ""  # the rule and its wildcards, as messages name the member
    code_dir: str = ""  # its code, relative to the bundle root
    env: dict[str, str] = _new(dict)  # its job(environment=...)
    channels: dict[str, str] = _new(dict)  # input → its channel dir, as alone
    # (its channel dir, the group job's channel dir it is linked to)
    links: tuple[tuple[str, str], ...] = ()
    # (how: HANDOFF_KINDS, the producing member's in-job output, this member's input path)
    handoffs: tuple[tuple[str, str, str], ...] = ()

    _NOT_IN_JSON: ClassVar[frozenset[str]] = frozenset({"version"})

    def __post_init__(self) -> None:
        _check(self)
        _check_member(self)

    @classmethod
    def of(cls, task: TaskDescription, **extra: Any) -> MemberTask:
        """``task`` (one rule's) as a member, with the member's own fields ``extra``."""
        own = {name: getattr(task, name) for name in TaskDescription._FIELDS}
        return cls(**{**own, **extra})

    @classmethod
    def from_dict(cls, data: Any) -> MemberTask:
        _require_object(data, "a group member of the task description")
        return cls._from_values(data, "a group member of the task description")

    @classmethod
    def _from_json_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        for key in ("links", "handoffs"):
            if key in values:
                values[key] = tuple(
                    tuple(item) if isinstance(item, list) else item for item in _list(values, key)
                )
        return values


class GroupTaskDescription(_Record):
    """A group's one job (version 2): its members in the order they run, and the job's
    outputs (the members' union: plain files, whether it has a model / output data, the state
    folder), which the launcher hands to SageMaker's upload once, after the last member."""

    group: str  # the group's name
    job_type: str  # "training" | "processing": every member's
    members: tuple[MemberTask, ...]
    files: dict[str, str] = _new(dict)
    state_dir: str | None = None
    model: bool = False
    output_data: bool = False
    kind: str = "group"
    version: int = GROUP_TASK_VERSION

    def __post_init__(self) -> None:
        _check_group(self)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self, frozenset())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> GroupTaskDescription:
        _require_object(data, "the task description")
        version = data.get("version")
        if version != GROUP_TASK_VERSION:
            raise TaskError(
                _unknown_version(version)
                if version not in SUPPORTED_VERSIONS
                else f"task description version {version} is one rule's, not a group's"
            )
        what = f"task description version {version}"
        known = set(cls._FIELDS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskError(
                f"{what}: unknown keys {unknown} (a newer client must raise the version)"
            )
        missing = [key for key in ("group", "job_type", "members") if key not in data]
        if missing:
            raise TaskError(f"{what} has no {' or '.join(map(repr, missing))}")
        members = _list(data, "members")
        loaded = []
        for i, member in enumerate(members):
            try:
                loaded.append(MemberTask.from_dict(member))
            except TaskError as exc:
                raise TaskError(f"{what}, member {i + 1}: {exc}") from exc
        return cls(**{**data, "members": tuple(loaded)})

    @classmethod
    def from_json(cls, text: str) -> GroupTaskDescription:
        return cls.from_dict(_loads(text))

    def replace(self, **changes: Any) -> GroupTaskDescription:
        return self._replaced(changes)


def parse_task(data: Any) -> TaskDescription | GroupTaskDescription:
    """The description in ``data``, of the shape its version says (TaskError if none)."""
    if isinstance(data, dict) and data.get("version") == GROUP_TASK_VERSION:
        return GroupTaskDescription.from_dict(data)
    return TaskDescription.from_dict(data)


_ALWAYS = frozenset({"version", "kind", "job_type"})


def _to_dict(description: Any, left_out: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in description._FIELDS:
        value = getattr(description, name)
        if name not in left_out and (name in _ALWAYS or value not in (None, "", (), {}, False)):
            out[name] = _plain(value)
    return out


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise TaskError(f"the task description is not JSON ({exc}): {text!r:.200}") from exc


def _require_object(data: Any, what: str) -> None:
    if not isinstance(data, dict):
        raise TaskError(f"{what} must be a JSON object, got {data!r:.200}")


def _unknown_version(version: Any) -> str:
    return (
        f"task description version {version!r} is not one this launcher reads "
        f"(it reads {', '.join(map(str, SUPPORTED_VERSIONS))}): the job's worker_toolkit "
        "is older than the ssm_rules that wrote the task; resubmit with the code bundle "
        "of the same ssm_rules"
    )


def _plain(value: Any) -> Any:
    """JSON's spelling of a field value (tuples are lists, descriptions objects)."""
    if isinstance(value, TaskDescription):
        return value.to_dict()
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


def _is_str_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(map(_is_str, (*value, *value.values())))


def _check_member(task: MemberTask) -> None:
    if not task.rule or not _is_str(task.rule):
        raise TaskError(f"a group member needs its 'rule' (a name), got {task.rule!r:.200}")
    for key in ("label", "code_dir"):
        if not _is_str(getattr(task, key)):
            raise TaskError(f"member {task.rule}: {key!r} must be a string")
    for key in ("env", "channels"):
        if not _is_str_dict(getattr(task, key)):
            raise TaskError(
                f"member {task.rule}: {key!r} must map names to strings, got "
                f"{getattr(task, key)!r:.200}"
            )
    for link in task.links:
        if not (isinstance(link, tuple) and len(link) == 2 and all(map(_is_str, link))):
            raise TaskError(f"member {task.rule}: a link must be [path, target], got {link!r:.200}")
    for handoff in task.handoffs:
        if not (
            isinstance(handoff, tuple)
            and len(handoff) == 3
            and all(map(_is_str, handoff))
            and handoff[0] in HANDOFF_KINDS
        ):
            raise TaskError(
                f"member {task.rule}: a handoff must be [one of {HANDOFF_KINDS}, source, "
                f"target], got {handoff!r:.200}"
            )


def _check_group(task: GroupTaskDescription) -> None:
    if task.kind != "group":
        raise TaskError(f"a group's task has kind 'group', got {task.kind!r}")
    if not task.group or not _is_str(task.group):
        raise TaskError(f"a group's task needs its 'group' (a name), got {task.group!r:.200}")
    if task.job_type not in c.JOB_TYPES:
        raise TaskError(f"job_type must be one of {c.JOB_TYPES}, got {task.job_type!r}")
    if not task.members or not all(isinstance(m, MemberTask) for m in task.members):
        raise TaskError(f"group {task.group}: its task needs a non-empty list of 'members'")
    odd = [m.rule for m in task.members if m.job_type != task.job_type]
    if odd:
        raise TaskError(
            f"group {task.group}: members {odd} are not of the job's type {task.job_type!r}"
        )
    if not _is_str_dict(task.files):
        raise TaskError(f"task 'files' must be a JSON object, got {task.files!r:.200}")
    if task.state_dir is not None and not _is_str(task.state_dir):
        raise TaskError(f"task 'state_dir' must be a path, got {task.state_dir!r:.200}")
    for key in ("model", "output_data"):
        if not isinstance(getattr(task, key), bool):
            raise TaskError(f"task {key!r} must be true or false, got {getattr(task, key)!r}")
