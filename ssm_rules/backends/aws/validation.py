"""Check a Create*Job request against botocore's SageMaker service model before sending it.

botocore's ParamValidator checks required and unknown members, types and minimums client-side;
enums, patterns and maximums are enforced by the service, one error per call, after the code
bundle and inputs were uploaded. ``ServiceModelValidator`` extends botocore's validator with
those, so that one pass over ``operation_model(...).input_shape`` finds all of them at once.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.validate import ParamValidator, ValidationErrors, type_check

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


# botocore's ParamValidator names a path ".ResourceConfig.InstanceType" and a type by the
# Python classes it accepts: say them as a user writes them
_PYTHON_TYPE = {
    str(int): "an int",
    str(float): "a number",
    str(bool): "True or False",
    str(str): "a string",
    str(dict): "a dict",
    str(list): "a list",
    str(datetime.datetime): "a datetime",
    str(bytes): "bytes",
}
# reasons of our own, next to botocore's ('missing required field', 'unknown field', ...)
_TOO_SHORT, _TOO_LONG, _TOO_FEW, _TOO_MANY = "too short", "too long", "too few", "too many"
_BELOW, _ABOVE, _NOT_IN_ENUM, _NO_MATCH = "below min", "above max", "not in enum", "no match"
_UNLISTED_INSTANCE_TYPE = "unlisted instance type"


class _Findings(ValidationErrors):
    """botocore's error report, turned into Problems as they are reported."""

    def __init__(self) -> None:
        super().__init__()
        self.found = Findings()

    def report(self, name: str, reason: str, **info: Any) -> None:
        super().report(name, reason, **info)
        path = name.lstrip(".")
        if reason == _UNLISTED_INSTANCE_TYPE:
            self.found.warnings.append(Problem(path, _instance_warning(info["param"])))
        else:
            self.found.errors.append(_problem(path, reason, info))


def _problem(path: str, reason: str, info: dict[str, Any]) -> Problem:
    value = info.get("param")
    if reason == "missing required field":
        return Problem(_join(path, info["required_name"]), "required member is missing")
    if reason == "unknown field":
        members, unknown = info["valid_names"], str(info["unknown_param"])
        close = difflib.get_close_matches(unknown, members, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"members: {', '.join(members)}"
        return Problem(_join(path, unknown), f"unknown member ({hint})")
    if reason == "invalid type":
        wanted = _PYTHON_TYPE.get(info["valid_types"][0], " or ".join(info["valid_types"]))
        return Problem(path, f"{_show(value)} is not {wanted}")
    messages = {
        _TOO_SHORT: lambda: f"{_show(value)} is shorter than {info.get('limit')} characters",
        _TOO_LONG: lambda: (
            f"{_show(value)} is {len(value)} characters, longer than {info.get('limit')}"
        ),
        _TOO_FEW: lambda: (
            f"{info.get('what')} {len(value)} is below the minimum {info.get('limit')}"
        ),
        _TOO_MANY: lambda: (
            f"{info.get('what')} {len(value)} is above the maximum {info.get('limit')}"
        ),
        _BELOW: lambda: f"{value!r} is below the minimum {info.get('limit')}",
        _ABOVE: lambda: f"{value!r} is above the maximum {info.get('limit')}",
        _NOT_IN_ENUM: lambda: _enum_message(value, info["enum"]),
        _NO_MATCH: lambda: f"{_show(value)} does not match the pattern {info.get('pattern')}",
        "more than one input": lambda: f"set exactly one of {', '.join(info['members'])}",
        "empty input": lambda: f"set exactly one of {', '.join(info['members'])}",
    }
    if reason in messages:
        return Problem(path, messages[reason]())
    report = ValidationErrors()  # botocore's own words for what we do not rephrase
    report.report("." + path, reason, **info)
    return Problem(path, report.generate_report())


def _instance_warning(value: str) -> str:
    import botocore

    from ssm_rules.instance_types import other_sagemaker_instance_types

    if value in other_sagemaker_instance_types():
        # sent all the same: a botocore older than the service may not list it for jobs yet
        return (
            f"{value!r} is a SageMaker instance type for notebooks, endpoints or apps, but "
            f"botocore {botocore.__version__} does not list it for this job: SageMaker will "
            "most likely refuse it. Pick a training/processing type (e.g. 'ml.m5.large', "
            "'ml.t3.medium'), or upgrade botocore if SageMaker now takes it for jobs"
        )
    return (
        f"{value!r} is not an instance type botocore {botocore.__version__} knows; "
        "sending it anyway (SageMaker decides: new types reach the API before botocore). "
        "If SageMaker refuses it, pick a listed type or upgrade botocore"
    )


def _limits(shape: Any) -> tuple[Any, Any]:
    return shape.metadata.get("min"), shape.metadata.get("max")


def _not_bool(param: Any, errors: ValidationErrors, name: str, valid: type) -> bool:
    # botocore takes True for an integer (a bool is an int in Python); the service does not
    if isinstance(param, bool):
        errors.report(name, "invalid type", param=param, valid_types=[str(valid)])
        return False
    return True


class ServiceModelValidator(ParamValidator):
    """botocore's client-side ParamValidator (required and unknown members, types, tagged
    unions, documents, timestamps) plus the constraints botocore leaves to the service: enums,
    patterns, maximum lengths, sizes and values, and the minimum length of a map."""

    VALIDATED_METADATA_ATTRS = ParamValidator.VALIDATED_METADATA_ATTRS | {
        "max",
        "enum",
        "pattern",
    }

    def findings(self, params: Any, shape: Any) -> Findings:
        errors = _Findings()
        self._validate(params, shape, errors, name="")
        return errors.found

    def _size(self, shape: Any, param: Any, errors: Any, name: str, what: str) -> None:
        lo, hi = _limits(shape)
        if lo is not None and len(param) < lo:
            errors.report(name, _TOO_FEW, param=param, limit=lo, what=what)
        if hi is not None and len(param) > hi:
            errors.report(name, _TOO_MANY, param=param, limit=hi, what=what)

    def _range(self, shape: Any, param: Any, errors: Any, name: str) -> None:
        lo, hi = _limits(shape)
        if lo is not None and param < lo:
            errors.report(name, _BELOW, param=param, limit=lo)
        if hi is not None and param > hi:
            errors.report(name, _ABOVE, param=param, limit=hi)

    @type_check(valid_types=(str,))
    def _validate_string(self, param: str, shape: Any, errors: Any, name: str) -> None:
        enum = shape.enum
        if enum and param not in enum:
            # a type of the form ml.<family>.<size> newer than this botocore: the service decides
            if name.rsplit(".", 1)[-1] == "InstanceType" and is_well_formed(param):
                errors.report(name, _UNLISTED_INSTANCE_TYPE, param=param)
            else:
                errors.report(name, _NOT_IN_ENUM, param=param, enum=enum)
            return
        lo, hi = _limits(shape)
        if lo is not None and len(param) < lo:
            errors.report(name, _TOO_SHORT, param=param, limit=lo)
        if hi is not None and len(param) > hi:
            errors.report(name, _TOO_LONG, param=param, limit=hi)
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        # SageMaker applies its patterns to the whole value (Java's Pattern.matches)
        if compiled is not None and not compiled.fullmatch(param):
            errors.report(name, _NO_MATCH, param=param, pattern=pattern)

    @type_check(valid_types=(list, tuple))
    def _validate_list(self, param: Any, shape: Any, errors: Any, name: str) -> None:
        self._size(shape, param, errors, name, "has length")
        for i, item in enumerate(param):
            self._validate(item, shape.member, errors, f"{name}[{i}]")

    @type_check(valid_types=(dict,))
    def _validate_map(self, param: Any, shape: Any, errors: Any, name: str) -> None:
        self._size(shape, param, errors, name, "has")
        for key, value in param.items():
            self._validate(key, shape.key, errors, f"{name} key {key!r}")
            self._validate(value, shape.value, errors, f"{name}[{key}]")

    @type_check(valid_types=(int,))
    def _validate_integer(self, param: int, shape: Any, errors: Any, name: str) -> None:
        if _not_bool(param, errors, name, int):
            self._range(shape, param, errors, name)

    _validate_long = _validate_integer

    @type_check(valid_types=(float, int))
    def _validate_double(self, param: float, shape: Any, errors: Any, name: str) -> None:
        if _not_bool(param, errors, name, float):
            self._range(shape, param, errors, name)

    _validate_float = _validate_double


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
    return ServiceModelValidator().findings(request.body, shape)


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
