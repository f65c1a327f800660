"""Check a Create*Job request against botocore's SageMaker service model before sending it.

botocore itself only checks required members and Python types client-side; enums, patterns
and min/max limits are enforced by the service, one error per call, after the code bundle and
inputs were uploaded. Walking ``operation_model(...).input_shape`` finds all of them at once.
The model ships with botocore, so no credentials or network are needed.

One exception: an ``InstanceType`` that the installed botocore does not list but that has the
form ``ml.<family>.<size>`` is only a warning (ssm_rules.instance_types: the same check as
for resources and settings). AWS launches instance types before botocore's
enum knows them, and the service (not the enum) is the authority.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ssm_rules.aws_names import sagemaker_service_model
from ssm_rules.backends.aws.errors import InvalidRequestError
from ssm_rules.backends.base import JobRequest, JobType
from ssm_rules.instance_types import is_well_formed

log = logging.getLogger(__name__)

OPERATIONS = {JobType.TRAINING: "CreateTrainingJob", JobType.PROCESSING: "CreateProcessingJob"}
MAX_SHOWN_VALUE = 80
MAX_LISTED_ENUM = 12

# botocore patterns are Java regular expressions (java.util.regex). Python's ``re`` lacks
# Unicode property classes and compiles Java's surrogate-pair ranges differently. These
# rewrites are deliberately *wider* than Java's (\w for letters/digits, \s for separators):
# a local check must never refuse what the service accepts. A pattern that still does not
# compile is skipped (the service checks it anyway).
_JAVA_PROPERTIES = {
    r"\p{Alnum}": "a-zA-Z0-9",
    r"\p{L}": r"\w",
    r"\p{N}": r"\w",
    r"\p{Z}": r"\s",
}
# "any supplementary character", written in Java as a UTF-16 surrogate-pair range
_JAVA_SURROGATES = (r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    for candidate in (pattern, java_to_python(pattern)):
        try:
            return re.compile(candidate)
        except re.error:
            continue
    log.debug("skipping the Java pattern %r: Python's re cannot compile it", pattern)
    return None


def java_to_python(pattern: str) -> str:
    """Rewrite the Java-only constructs botocore's SageMaker patterns use."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        prop = next((p for p in _JAVA_PROPERTIES if pattern.startswith(p, i)), None)
        if prop is not None:
            chars = _JAVA_PROPERTIES[prop]
            out.append(chars if in_class else f"[{chars}]")
            i += len(prop)
            continue
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        out.append(c)
        i += 1
    return "".join(out).replace(*_JAVA_SURROGATES)


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. "ResourceConfig.InstanceType", "Tags[2].Key", "HyperParameters[epochs]"
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(request)'}: {self.message}"


@dataclass
class Findings:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 3] + "..."


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def _type_ok(type_name: str, value: Any) -> bool:
    if type_name in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "timestamp":
        return isinstance(value, datetime.datetime | str | int | float)
    if type_name == "blob":
        return isinstance(value, bytes | bytearray | str) or hasattr(value, "read")
    return True


_PYTHON_TYPE = {
    "integer": "an int",
    "long": "an int",
    "float": "a number",
    "double": "a number",
    "boolean": "True or False",
    "string": "a string",
    "timestamp": "a datetime",
    "blob": "bytes",
    "structure": "a dict",
    "list": "a list",
    "map": "a dict",
}


class _Walker:
    def __init__(self) -> None:
        self.found = Findings()

    def error(self, path: str, message: str) -> None:
        self.found.errors.append(Problem(path, message))

    def walk(self, shape: Any, value: Any, path: str) -> None:
        kind = shape.type_name
        if kind == "structure":
            self._structure(shape, value, path)
        elif kind == "list":
            self._list(shape, value, path)
        elif kind == "map":
            self._map(shape, value, path)
        elif not _type_ok(kind, value):
            self.error(path, f"{_show(value)} is not {_PYTHON_TYPE.get(kind, kind)}")
        elif kind == "string":
            self._string(shape, value, path)
        elif kind in ("integer", "long", "float", "double"):
            self._number(shape, value, path)

    def _structure(self, shape: Any, value: Any, path: str) -> None:
        if shape.metadata.get("document"):
            return  # free-form JSON document: nothing to check
        if not isinstance(value, Mapping):
            self.error(path, f"{_show(value)} is not a dict (members: {', '.join(shape.members)})")
            return
        members = shape.members
        for name in shape.required_members:
            if name not in value:
                self.error(_join(path, name), "required member is missing")
        for name, item in value.items():
            if name not in members:
                close = difflib.get_close_matches(str(name), list(members), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"members: {', '.join(members)}"
                self.error(_join(path, str(name)), f"unknown member ({hint})")
                continue
            self.walk(members[name], item, _join(path, name))
        if shape.metadata.get("union") and len(value) != 1:
            self.error(path, f"set exactly one of {', '.join(members)} (got {len(value)})")

    def _size(self, shape: Any, n: int, what: str, path: str) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and n < lo:
            self.error(path, f"{what} {n} is below the minimum {lo}")
        if hi is not None and n > hi:
            self.error(path, f"{what} {n} is above the maximum {hi}")

    def _list(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, list | tuple):
            self.error(path, f"{_show(value)} is not a list")
            return
        self._size(shape, len(value), "has length", path)
        for i, item in enumerate(value):
            self.walk(shape.member, item, f"{path}[{i}]")

    def _map(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            self.error(path, f"{_show(value)} is not a dict")
            return
        self._size(shape, len(value), "has", path)
        for key, item in value.items():
            self.walk(shape.key, key, f"{path} key {key!r}")
            self.walk(shape.value, item, f"{path}[{key}]")

    def _string(self, shape: Any, value: str, path: str) -> None:
        enum = shape.enum
        if enum and value not in enum:
            if path.rsplit(".", 1)[-1] == "InstanceType" and is_well_formed(value):
                self.found.warnings.append(Problem(path, self._instance_warning(value)))
                return
            self.error(path, _enum_message(value, enum))
            return
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and len(value) < lo:
            self.error(path, f"{_show(value)} is shorter than {lo} characters")
        if hi is not None and len(value) > hi:
            self.error(path, f"{_show(value)} is {len(value)} characters, longer than {hi}")
        pattern = shape.metadata.get("pattern")
        if pattern:
            compiled = _compiled(pattern)
            # SageMaker applies its patterns to the whole value (Java's Pattern.matches)
            if compiled is not None and not compiled.fullmatch(value):
                self.error(path, f"{_show(value)} does not match the pattern {pattern}")

    @staticmethod
    def _instance_warning(value: str) -> str:
        import botocore

        return (
            f"{value!r} is not an instance type botocore {botocore.__version__} knows; "
            "sending it anyway (SageMaker decides: new types reach the API before botocore). "
            "If SageMaker refuses it, pick a listed type or upgrade botocore"
        )

    def _number(self, shape: Any, value: float, path: str) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and value < lo:
            self.error(path, f"{value!r} is below the minimum {lo}")
        if hi is not None and value > hi:
            self.error(path, f"{value!r} is above the maximum {hi}")


def _enum_message(value: str, enum: list[str]) -> str:
    close = difflib.get_close_matches(value, enum, n=3, cutoff=0.6)
    if close:
        return f"{_show(value)} is not allowed: did you mean {' or '.join(map(repr, close))}?"
    if len(enum) <= MAX_LISTED_ENUM:
        return f"{_show(value)} is not allowed: write one of {', '.join(map(repr, enum))}"
    shown = ", ".join(map(repr, enum[:MAX_LISTED_ENUM]))
    return f"{_show(value)} is not allowed: write one of {shown}, ... ({len(enum)} values)"


def check_request(request: JobRequest, service_model: Any) -> Findings:
    """Every problem of the request body, errors and warnings apart (no raising, no logging)."""
    shape = service_model.operation_model(OPERATIONS[request.job_type]).input_shape
    walker = _Walker()
    walker.walk(shape, request.body, "")
    return walker.found


def _describe(request: JobRequest) -> str:
    try:
        name = request.name
    except KeyError:
        name = "(no name)"
    return f"{OPERATIONS[request.job_type]} request for job {name}"


def validate_request(
    request: JobRequest,
    service_model: Any,
    warn: Callable[[str], None] | None = None,
) -> list[Problem]:
    """Raise :class:`InvalidRequestError` listing every error; log and return the warnings."""
    found = check_request(request, service_model)
    if found.errors:
        lines = "\n".join(f"  - {p}" for p in found.errors)
        raise InvalidRequestError(
            f"{_describe(request)} breaks the SageMaker API model "
            f"({len(found.errors)} problem(s)); nothing was sent:\n{lines}"
        )
    for problem in found.warnings:
        (warn or log.warning)(f"{_describe(request)}: {problem}")
    return found.warnings


class RequestValidator:
    """``RunContext.validate``: the service model loaded once; each warning said once per run."""

    def __init__(self, service_model: Any | None = None, warn: Callable[[str], None] | None = None):
        self._model = service_model
        self._warn = warn or log.warning
        self._warned: set[str] = set()

    @property
    def service_model(self) -> Any:
        if self._model is None:
            self._model = sagemaker_service_model()
        return self._model

    def __call__(self, request: JobRequest) -> None:
        validate_request(request, self.service_model, warn=self._warn_once)

    def _warn_once(self, message: str) -> None:
        key = message.split(": ", 1)[-1]  # the same problem in another job's request
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)
