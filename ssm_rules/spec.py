"""A Snakemake job + settings → a validated, frozen :class:`TaskSpec`.

All validation of user input happens here, before any network call or disk write: each
error names the rule, the value and what to write instead. The spec also fixes where every
input and output is inside the job, so ``{input.x}`` in a ``shell:`` body can be formatted.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.base import JobType
from ssm_rules.instance_types import has_instance_storage, instance_type_problem
from ssm_rules.jobview import IOItem, JobView
from ssm_rules.local_tree import tree
from ssm_rules.objects import ObjectURI, file_uri
from ssm_rules.rules import (
    ARTIFACT_FLAG,
    LOCAL_INPUT_FLAG,
    SHARDED_FLAG,
    UNPACKED_FLAG,
    ArtifactKind,
    JobOptions,
    state_prefix,
)
from worker_toolkit import contract as C

if TYPE_CHECKING:
    from ssm_rules.group import GroupMember

# SageMaker's limits (CreateTrainingJob / CreateProcessingJob API reference).
MAX_TRAINING_CHANNELS = 20
MAX_PROCESSING_INPUTS = 10  # ProcessingInputs: 0-10 items
MAX_HYPERPARAMETERS = 100
# sagemaker_program, sagemaker_submit_directory, sagemaker_region,
# sagemaker_container_log_level, ssm_task (requests.training_request)
RESERVED_HYPERPARAMETERS = 5
MAX_HP_KEY = 256
MAX_HP_VALUE = 2500
MAX_RUNTIME_SECONDS = 28 * 24 * 3600  # training: up to 28 days
MAX_PROCESSING_RUNTIME_SECONDS = 777600  # processing: up to 9 days (botocore's model)
CHANNEL_NAME = re.compile(r"[A-Za-z0-9\.\-_]{1,64}")
# MaxWaitTimeInSeconds has no bound in botocore's model; SageMaker caps the whole managed
# spot run (waiting + training) as it caps training: 28 days
MAX_WAIT_SECONDS = MAX_RUNTIME_SECONDS
# The largest ML storage volume (EBS gp2: 16 TiB); botocore's ProcessingVolumeSizeInGB max
MAX_VOLUME_GB = 16384
DEFAULT_MAX_RUN_MINS = 24 * 60
DEFAULT_VOLUME_GB = 30
# Resources Snakemake itself sets on every job; never ours to validate.
SNAKEMAKE_RESOURCES = {
    "_cores",
    "_nodes",
    "mem_mb",
    "mem_mib",
    "disk_mb",
    "disk_mib",
    "tmpdir",
    "mem",
    "disk",
    "runtime",
    "threads",
    "gpu",
    "gpus",
}
OUR_RESOURCES = {
    "instance_type",
    "instance_count",
    "spot",
    "max_run_mins",
    "max_wait_mins",
    "volume_size_gb",
    "job_type",
    "spot_retries",
    "keep_alive_mins",
}
DEFAULT_SPOT_RETRIES = 2
# SageMaker managed warm pools: KeepAlivePeriodInSeconds of one training job is at most 3600 s
# ("Maximum warm pool duration", SageMaker developer guide; botocore's model allows more)
MAX_KEEP_ALIVE_MINS = 60


class SpecError(WorkflowError):
    """Bad input in a rule, found before anything was sent or written."""


class OutputKind(enum.StrEnum):
    MODEL = "model"
    OUTPUT_DATA = "output_data"
    STATE = "state"
    TENSORBOARD = "tensorboard"
    FILE = "file"


@dataclass(frozen=True)
class ChannelPart:
    """One file of a channel made of a list of files (``sharded([...])``)."""

    uri: str | None  # s3:// or file://; None until a local input is synced
    local_path: str | None  # a local file to sync first (local_input)


@dataclass(frozen=True)
class Channel:
    name: str
    uri: str | None  # where the data is (s3:// or file://); None until a local input is synced
    local_path: str | None  # a local file or directory to sync first (local_input)
    sharded: bool
    job_path: str  # the path inside the job, what {input.<name>} becomes
    is_prefix: bool  # the URI is a key prefix (a directory), not one object
    # unpacked(...): where the tarball arrives; the launcher extracts it at job_path first
    packed_path: str | None = None
    # a list of files as one channel: the executor writes a SageMaker ManifestFile naming them
    parts: tuple[ChannelPart, ...] = ()
    input_name: str | None = None  # the rule's name of the input (None: unnamed)


@dataclass(frozen=True)
class Output:
    kind: OutputKind
    uri: str  # the declared artifact (s3:// or file://)
    job_path: str  # what {output.<name>} becomes inside the job
    member: str  # plain files: path relative to the files carrier; else ""


@dataclass(frozen=True)
class Instance:
    instance_type: str
    count: int
    spot: bool
    max_run_seconds: int
    max_wait_seconds: int | None
    volume_gb: int
    spot_retries: int = 0  # capacity failures on spot retried before falling back to on-demand
    keep_alive_mins: int | None = None  # resources keep_alive_mins as written (None: not given)
    # ResourceConfig.KeepAlivePeriodInSeconds as sent: decided for the run's DAG (warm_pools)
    keep_alive_seconds: int = 0

    def on_demand(self) -> Instance:
        return replace(self, spot=False, max_wait_seconds=None)


@dataclass(frozen=True)
class TaskSpec:
    rule: str
    task_id: str  # rule plus wildcards, safe as an S3 key segment
    job_type: JobType
    kind: str  # "script" | "shell"
    program: str | None  # script: path inside the code bundle
    command: str | None  # shell: formatted command with in-job paths
    source_dir: Path | None
    dependencies: tuple[Path, ...]
    script_path: (
        Path | None
    )  # the script on this machine (added to the bundle when outside source_dir)
    channels: tuple[Channel, ...]
    outputs: tuple[Output, ...]
    state_prefix: str | None  # URI ending with "/"
    clean_state: bool
    instance: Instance
    hyperparameters: tuple[tuple[str, Any], ...]
    options: JobOptions
    logs: tuple[str, ...]  # where the job's log goes (file:// or s3:// URIs)
    output_names: tuple[str | None, ...] = ()  # the rule's name of each output, in order
    # what a Snakemake-style Python script: sees as `snakemake` (in-job paths), else None
    snakemake_object: dict[str, Any] | None = None
    # job(distribution=...) as the SDK sends it: hyperparameters for the framework container
    distribution_hps: tuple[tuple[str, Any], ...] = ()
    dockerfile: Path | None = None  # job(dockerfile=...): the build context of the job's image
    wildcards: tuple[tuple[str, str], ...] = ()  # (name, value), in the rule's order
    # a group's one job (kind "group"): its members in dependency order (ssm_rules.group)
    members: tuple[GroupMember, ...] = ()

    @property
    def label(self) -> str:
        """How messages name the job: its rule, or a group's name."""
        return f"group {self.rule}" if self.members else f"rule {self.rule}"

    @property
    def named_outputs(self) -> list[tuple[str, Output]]:
        return [(n, o) for n, o in zip(self.output_names, self.outputs, strict=False) if n]

    @property
    def state_output(self) -> Output | None:
        return next((o for o in self.outputs if o.kind is OutputKind.STATE), None)

    @property
    def tensorboard_output(self) -> Output | None:
        return next((o for o in self.outputs if o.kind is OutputKind.TENSORBOARD), None)


def _err(view: JobView, message: str) -> SpecError:
    return SpecError(f"rule {view.rule}: {message}")


def build_spec(
    view: JobView,
    *,
    backend: str,
    default_instance_type: str,
    plan: bool = False,
    declared_resources: frozenset[str] = frozenset(),
) -> TaskSpec:
    """``plan=True``: checking the whole plan before the run; files other jobs will produce
    (a local_input made by a local rule) need not exist yet. ``declared_resources``: the
    names given to Snakemake's ``--resources`` (global limits), which a rule may use."""
    _check_no_local_flag(view)
    _check_resource_names(view, declared_resources)
    options = _job_options(view)
    _check_options(view, options)
    job_type = _job_type(view)
    instance = _instance(view, job_type, default_instance_type)
    kind, script_path = _body(view, backend)
    source_dir, dependencies = _code_dirs(view, options)
    if script_path is not None and source_dir is None and script_path.parent != view.snakefile_dir:
        # As Snakemake deploys a script with its whole directory, so do we (helpers next to
        # the script import); a script beside the Snakefile travels alone.
        source_dir = script_path.parent
    program = None
    if script_path is not None:
        if source_dir is not None:
            if not script_path.is_relative_to(source_dir):
                raise _err(
                    view,
                    f"script {str(script_path)!r} is outside source_dir "
                    f"{str(source_dir)!r}: move it into source_dir or drop source_dir",
                )
            program = script_path.relative_to(source_dir).as_posix()
        else:
            program = script_path.name
    channels = _channels(view, job_type, backend, plan)
    outputs = _outputs(view, job_type, backend)
    state_out = next((o for o in outputs if o.kind is OutputKind.STATE), None)
    if job_type is JobType.PROCESSING and instance.count > 1:
        _check_no_processing_model(view, outputs, instance.count)
    _check_channel_count(view, job_type, channels, state_out is not None)
    _check_sharding(view, channels, instance.count)
    if state_out is None and options.clean_state:
        raise _err(
            view,
            "job(clean_state=True) but the rule declares no state(...) output: declare one "
            "(e.g. state('runs/x/state.json')) or drop clean_state",
        )
    if options.args and kind == "shell":
        raise _err(
            view,
            f"job(args={list(options.args)!r}) with a shell: body: put the arguments in the "
            "command itself (args are the command line of a script:)",
        )
    hps = _hyperparameters(view)
    distribution_hps = _distribution(view, options, instance, job_type, program)
    if len(hps) + len(distribution_hps) > MAX_HYPERPARAMETERS - RESERVED_HYPERPARAMETERS:
        raise _err(
            view,
            f"{len(hps)} params and {len(distribution_hps)} distribution settings: SageMaker "
            f"takes at most {MAX_HYPERPARAMETERS} hyperparameters including ssm_rules' own; "
            "pass a config file input instead",
        )
    command = None
    if kind == "shell":
        command = _format_shell(view, channels, outputs)
    logs = tuple(_uri_of(view, item, backend, "log") for item in view.logs)
    return TaskSpec(
        rule=view.rule,
        task_id=task_id(view.rule, view.wildcards),
        wildcards=tuple((str(k), str(v)) for k, v in view.wildcards.items()),
        job_type=job_type,
        kind=kind,
        program=program,
        command=command,
        source_dir=source_dir,
        dependencies=dependencies,
        script_path=script_path if source_dir is None else None,
        channels=channels,
        outputs=outputs,
        state_prefix=state_prefix(state_out.uri) if state_out else None,
        clean_state=options.clean_state,
        instance=instance,
        hyperparameters=hps,
        options=options,
        logs=logs,
        output_names=tuple(item.name for item in view.outputs),
        snakemake_object=(
            _snakemake_object(view, channels, outputs, hps)
            if program is not None and program.endswith(".py")
            else None
        ),
        distribution_hps=distribution_hps,
        dockerfile=_dockerfile(view, options),
    )


def _dockerfile(view: JobView, options: JobOptions) -> Path | None:
    if options.dockerfile is None:
        return None
    path = Path(options.dockerfile)
    path = (path if path.is_absolute() else view.snakefile_dir / path).resolve()
    if not (path / "Dockerfile").is_file():
        raise _err(
            view,
            f"job(dockerfile={options.dockerfile!r}): no Dockerfile in {str(path)!r}: give the "
            "build context, a directory (relative to the Snakefile) holding a Dockerfile",
        )
    return path


def _distribution(
    view: JobView, options: JobOptions, instance: Instance, job_type: JobType, program: str | None
) -> tuple[tuple[str, Any], ...]:
    """``job(distribution=...)`` checked as the SageMaker SDK checks it, as hyperparameters."""
    if not options.distribution:
        return ()
    from ssm_rules import distribution as dist

    if job_type is JobType.PROCESSING:
        raise _err(
            view,
            "job(distribution=...) on a processing rule: SageMaker processing jobs have no "
            "distributed-training launcher; write job_type='training' or drop distribution",
        )
    if options.image_uri is None and options.framework not in dist.FRAMEWORKS:
        raise _err(
            view,
            f"job(distribution=...) with framework={options.framework!r}: distributed "
            f"training is launched by the {' / '.join(dist.FRAMEWORKS)} containers; use one "
            "of them, or give job(image_uri=...) of an image that reads these settings",
        )
    from ssm_rules.images import DEFAULT_VERSIONS

    version, py = DEFAULT_VERSIONS.get(options.framework, (None, None))
    try:
        sent = dist.check(
            options.distribution,
            framework=options.framework,
            framework_version=options.framework_version or version,
            py_version=options.py_version or py,
            image_uri=options.image_uri,
            instance_type=instance.instance_type,
            instance_count=instance.count,
            entry_point=program or "",
        )
        hps = dist.hyperparameters(sent, options.framework, instance.instance_type)
    except dist.DistributionError as e:
        raise _err(view, f"job(distribution=...): {e}") from None
    return tuple(sorted(hps.items()))


def _check_no_local_flag(view: JobView) -> None:
    """Snakemake runs a job with a ``local()`` file on this machine when there is no shared
    file system (Job.is_local), never handing it to the executor: a SageMaker rule written
    with local() would silently run here (or fail with a misleading missing-output error)."""
    for what, items in (("input", view.inputs), ("output", view.outputs)):
        for item in items:
            if item.flags.get("local"):
                fix = (
                    f"Write local_input({item.path!r}) for a file of this machine that the "
                    "job reads"
                    if what == "input"
                    else "Drop local(): the job's outputs go where Snakemake puts them"
                )
                raise _err(
                    view,
                    f"{what} local({item.path!r}): Snakemake would run this rule on this machine, "
                    f"not as a SageMaker job. {fix}; or, for a rule meant to run here (a "
                    "download rule), add it to localrules:",
                )


def _check_no_processing_model(view: JobView, outputs: tuple[Output, ...], count: int) -> None:
    """A processing job's model.tar.gz is packed from the main instance alone: with several
    instances the others' models would be lost."""
    for item, out in zip(view.outputs, outputs, strict=True):
        if out.kind is OutputKind.MODEL:
            raise _err(
                view,
                f"output {item.path!r} is a model(...) of a processing rule with "
                f"instance_count={count}: a processing job keeps the model of its first "
                "instance only; write job_type='training' (its model.tar.gz merges every "
                "instance's) or instance_count=1",
            )


def _snakemake_object(
    view: JobView,
    channels: tuple[Channel, ...],
    outputs: tuple[Output, ...],
    hps: tuple[tuple[str, Any], ...],
) -> dict[str, Any]:
    """``snakemake.input``/``output``/``log``/``params``/``wildcards`` for the job: paths are
    the job's own (params travel as hyperparameters; only their names and order here)."""
    return {
        "rule": view.rule,
        "input": [[c.input_name, c.job_path] for c in channels],
        "output": [[i.name, o.job_path] for i, o in zip(view.outputs, outputs, strict=True)],
        "log": [[i.name, "/dev/stderr"] for i in view.logs],
        "params": [name for name, _ in hps],
        "wildcards": dict(view.wildcards),
        "threads": int(view.resources.get("_cores", 1) or 1),
    }


def task_id(rule: str, wildcards: Mapping[str, str]) -> str:
    """Rule and wildcards as one S3 key segment; a short hash keeps apart values that only
    differ in characters the segment cannot hold (``a/b`` and ``a_b``)."""
    raw = ".".join([rule] + [f"{k}={v}" for k, v in sorted(wildcards.items())])
    safe = re.sub(r"[^A-Za-z0-9=._-]+", "_", raw)
    if safe == raw:
        return safe
    return f"{safe[:200]}.{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


# --- options, resources -----------------------------------------------------------------


def _job_options(view: JobView) -> JobOptions:
    found = [(n, v) for n, v in view.params if isinstance(v, JobOptions)]
    if len(found) > 1:
        raise _err(
            view,
            f"params {[n for n, _ in found]} are all job(...): keep one (e.g. sagemaker=job(...))",
        )
    return found[0][1] if found else JobOptions()


# Tags (AWS "Tagging best practices"; botocore's Tag shape): 50 per resource, keys 1-128 and
# values 0-256 characters of letters, digits, whitespace and _ . : / = + - @; the aws: prefix
# is reserved for AWS in keys and values; ssm-rules: is ours (the identity tags).
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
# \p{Z} is the Unicode space separators (not tabs or newlines)
TAG_TEXT = re.compile(r"[\w .:/=+\-@\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*")
RESERVED_TAG_PREFIXES = ("aws:", "ssm-rules:")
IDENTITY_TAG_COUNT = 3  # identity, rule, task (ssm_rules.identity)
MAX_METRICS = 40  # AlgorithmSpecification.MetricDefinitions
# registry/repository[:tag] or registry/repository[@digest] (AlgorithmSpecification.TrainingImage,
# AppSpecification.ImageUri: at most 255 characters); the registry is a host name (ECR:
# <account>.dkr.ecr.<region>.amazonaws.com), the repository Docker's lower-case path.
IMAGE_URI = re.compile(
    r"[a-zA-Z0-9][a-zA-Z0-9.-]*\.[a-zA-Z0-9.-]+(:\d+)?"
    r"/[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})?"
)
MAX_IMAGE_URI = 255


def _check_options(view: JobView, options: JobOptions) -> None:
    if options.image_uri is not None:
        _check_image_uri(view, options.image_uri)
    _check_tags(view, options.tags)
    _check_metrics(view, options.metric_definitions)


def _check_image_uri(view: JobView, uri: object) -> None:
    if not (isinstance(uri, str) and len(uri) <= MAX_IMAGE_URI and IMAGE_URI.fullmatch(uri)):
        raise _err(
            view,
            f"job(image_uri={uri!r}) is not an image SageMaker can pull: write "
            "<registry>/<repository>:<tag> (at most 255 characters), e.g. "
            "'123456789012.dkr.ecr.us-east-1.amazonaws.com/my-image:latest', or drop "
            "image_uri to use the framework image",
        )


def _check_tags(view: JobView, tags: Mapping[str, Any]) -> None:
    room = MAX_TAGS - IDENTITY_TAG_COUNT
    if len(tags) > room:
        raise _err(
            view,
            f"job(tags=...) has {len(tags)} tags: SageMaker takes {MAX_TAGS} per job and "
            f"ssm_rules adds {IDENTITY_TAG_COUNT} (ssm-rules:identity, :rule, :task); "
            f"keep at most {room}",
        )
    for key, value in tags.items():
        key, value = str(key), str(value)
        if not 1 <= len(key) <= MAX_TAG_KEY or not TAG_TEXT.fullmatch(key):
            raise _err(
                view,
                f"job(tags=...) key {key[:60]!r} is not a tag key: 1-{MAX_TAG_KEY} letters, "
                "digits, spaces and _ . : / = + - @; rename it",
            )
        if len(value) > MAX_TAG_VALUE or not TAG_TEXT.fullmatch(value):
            raise _err(
                view,
                f"job(tags=...) value {value[:60]!r} of tag {key!r} is not a tag value: at most "
                f"{MAX_TAG_VALUE} letters, digits, spaces and _ . : / = + - @; shorten or "
                "change it",
            )
        for text in (key, value):
            if text.lower().startswith(RESERVED_TAG_PREFIXES):
                raise _err(
                    view,
                    f"job(tags=...) {key!r}: {value!r} uses a reserved prefix (aws: is AWS's, "
                    "ssm-rules: is ssm_rules' own); rename it, e.g. team:...",
                )


def _check_metrics(view: JobView, metrics: Mapping[str, Any]) -> None:
    if not metrics:
        return
    if _job_type(view) is JobType.PROCESSING:
        raise _err(
            view,
            f"job(metric_definitions={dict(metrics)!r}) on a processing rule: SageMaker "
            "processing jobs have no metrics; drop metric_definitions or use "
            "job_type='training'",
        )
    if len(metrics) > MAX_METRICS:
        raise _err(
            view,
            f"job(metric_definitions=...) has {len(metrics)} metrics: SageMaker takes at "
            f"most {MAX_METRICS}; keep the ones you need",
        )
    for name, regex in metrics.items():
        if not isinstance(regex, str) or not 1 <= len(regex) <= 500 or not 1 <= len(name) <= 255:
            raise _err(
                view,
                f"job(metric_definitions=...) {name!r}: {regex!r}: write a metric name of "
                "1-255 characters and a regex string of 1-500",
            )
        try:
            compiled = re.compile(regex)
        except re.error as e:
            raise _err(
                view,
                f"job(metric_definitions=...) {name!r}: the regex {regex!r} does not compile "
                f"({e}); fix it, e.g. {name!r}: '{name}=([0-9.eE+-]+)'",
            ) from None
        if compiled.groups < 1:
            # SageMaker takes the metric's value from the regex's first group: with none,
            # the metric never gets a value and nobody is told
            raise _err(
                view,
                f"job(metric_definitions=...) {name!r}: the regex {regex!r} captures nothing; "
                "SageMaker reads the value from its first group: write e.g. "
                f"'{name}=([0-9.eE+-]+)'",
            )


def _job_type(view: JobView) -> JobType:
    value = view.resources.get("job_type", "training")
    try:
        return JobType(str(value))
    except ValueError:
        raise _err(
            view,
            f"resources job_type={value!r} is not a job type: write "
            "job_type='training' or job_type='processing'",
        ) from None


def _check_resource_names(view: JobView, declared: frozenset[str]) -> None:
    """A resource the job does not read would be silently ignored (``num_instances=2`` ran
    one instance): every resource of a job rule is ours, Snakemake's own, or one declared
    with ``--resources NAME=N`` (then Snakemake limits how many such jobs run at once, the
    only effect a custom resource can have on a remote job). Refused, not warned: a warning
    scrolls past while the wrong job runs and is billed."""
    import difflib

    for name in view.resources:
        if (
            name in OUR_RESOURCES
            or name in SNAKEMAKE_RESOURCES
            or name.startswith("_")
            or name in declared
        ):
            continue
        close = difflib.get_close_matches(name, sorted(OUR_RESOURCES), n=1, cutoff=0.8)
        if close:
            raise _err(view, f"resources {name}=...: unknown resource, did you mean {close[0]}=?")
        raise _err(
            view,
            f"resources {name}={view.resources[name]!r} is not a resource the SageMaker job "
            "reads, so it would have no effect (the job's are: "
            f"{', '.join(sorted(OUR_RESOURCES))}). "
            f"Write one of those; or, to keep {name} as a limit on how many jobs run at once, "
            f"declare it: --resources {name}=<limit> (or 'resources:' in the profile); "
            "else remove it",
        )


def _int_resource(view: JobView, name: str, default: int | None, minimum: int) -> int | None:
    value = view.resources.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _err(
            view, f"resources {name}={value!r} is not a whole number: write e.g. {name}={minimum}"
        )
    try:
        number = int(value)
    except ValueError:
        raise _err(
            view,
            f"resources {name}={value!r} is not a whole number: "
            f"write e.g. {name}={max(minimum, 1)}",
        ) from None
    if number < minimum:
        raise _err(view, f"resources {name}={number} is below {minimum}: write {name}>={minimum}")
    return number


def _instance(view: JobView, job_type: JobType, default_type: str) -> Instance:
    instance_type = str(view.resources.get("instance_type", default_type))
    problem = instance_type_problem(instance_type, job_type)
    if problem:
        raise _err(view, f"resources instance_type={problem}")
    count = _int_resource(view, "instance_count", 1, 1)
    spot_default = 1 if job_type is JobType.TRAINING else 0
    spot_value = view.resources.get("spot", spot_default)
    if str(spot_value).lower() not in ("0", "1", "true", "false"):
        raise _err(
            view,
            f"resources spot={spot_value!r}: write spot=1 (managed spot) or spot=0 (on-demand)",
        )
    spot = str(spot_value).lower() in ("1", "true")
    if spot and job_type is JobType.PROCESSING:
        raise _err(
            view,
            "resources spot=1 on a processing rule: SageMaker processing jobs have no "
            "spot capacity; write spot=0, or job_type='training' to use managed spot",
        )
    default_run = DEFAULT_MAX_RUN_MINS
    if "max_run_mins" not in view.resources and view.resources.get("runtime"):
        # Snakemake's own runtime resource (minutes) stands in for max_run_mins
        default_run = _int_resource(view, "runtime", None, 1) or DEFAULT_MAX_RUN_MINS
    max_run = _int_resource(view, "max_run_mins", default_run, 1)
    limit = MAX_RUNTIME_SECONDS if job_type is JobType.TRAINING else MAX_PROCESSING_RUNTIME_SECONDS
    if max_run * 60 > limit:
        raise _err(
            view,
            f"resources max_run_mins={max_run} exceeds SageMaker's limit for "
            f"{job_type} jobs: write max_run_mins<={limit // 60}",
        )
    max_wait = _int_resource(view, "max_wait_mins", None, 1)
    if max_wait is not None and max_wait * 60 > MAX_WAIT_SECONDS:
        raise _err(
            view,
            f"resources max_wait_mins={max_wait} exceeds SageMaker's limit for a managed "
            f"spot job (waiting + training): write max_wait_mins<={MAX_WAIT_SECONDS // 60}",
        )
    if max_wait is not None and not spot:
        raise _err(
            view,
            f"resources max_wait_mins={max_wait} without spot: SageMaker only accepts "
            "a wait time for managed spot; drop max_wait_mins or set spot=1",
        )
    if spot:
        # MaxWaitTimeInSeconds counts waiting for spot capacity *and* training: by default
        # leave as long again for the wait, within SageMaker's limit
        default_wait = max(max_run, min(2 * max_run, MAX_RUNTIME_SECONDS // 60))
        max_wait = default_wait if max_wait is None else max_wait
        if max_wait < max_run:
            raise _err(
                view,
                f"resources max_wait_mins={max_wait} is less than max_run_mins="
                f"{max_run}: SageMaker requires MaxWaitTimeInSeconds >= MaxRuntimeInSeconds; "
                f"write max_wait_mins>={max_run}",
            )
    volume = _int_resource(view, "volume_size_gb", DEFAULT_VOLUME_GB, 1)
    _check_volume(view, instance_type, volume)
    retries = _int_resource(
        view,
        "spot_retries",
        view.preemptible_retries if view.preemptible_retries is not None else DEFAULT_SPOT_RETRIES,
        0,
    )
    return Instance(
        instance_type,
        count,
        spot,
        max_run * 60,
        max_wait * 60 if max_wait is not None else None,
        volume,
        retries,
        keep_alive_mins=_keep_alive_mins(view, job_type, spot),
    )


def _keep_alive_mins(view: JobView, job_type: JobType, spot: bool) -> int | None:
    """resources keep_alive_mins: how long a SageMaker managed warm pool keeps the job's
    instances after it ended, for a matching successor. Only on-demand training jobs have
    warm pools ("SageMaker Managed Warm Pools cannot be used with spot instances")."""
    mins = _int_resource(view, "keep_alive_mins", None, 0)
    if not mins:
        return mins
    if job_type is JobType.PROCESSING:
        raise _err(
            view,
            f"resources keep_alive_mins={mins} on a processing rule: SageMaker keeps warm "
            "pools for training jobs only; drop keep_alive_mins, or use job_type='training'",
        )
    if spot:
        raise _err(
            view,
            f"resources keep_alive_mins={mins} with spot: SageMaker managed warm pools cannot "
            "be used with spot instances (and spot is the default for training); set spot=0 "
            "to keep on-demand instances warm, or drop keep_alive_mins",
        )
    if mins > MAX_KEEP_ALIVE_MINS:
        raise _err(
            view,
            f"resources keep_alive_mins={mins} exceeds SageMaker's limit for a warm pool: "
            f"write keep_alive_mins<={MAX_KEEP_ALIVE_MINS}",
        )
    return mins


def _check_volume(view: JobView, instance_type: str, volume: int) -> None:
    if volume > MAX_VOLUME_GB:
        raise _err(
            view,
            f"resources volume_size_gb={volume} is beyond SageMaker's largest ML storage "
            f"volume: write volume_size_gb<={MAX_VOLUME_GB}",
        )
    if volume != DEFAULT_VOLUME_GB and has_instance_storage(instance_type):
        # SageMaker provisions no EBS volume for an instance with NVMe instance storage: the
        # job gets the instance's fixed storage whatever VolumeSizeInGB says (and SageMaker
        # refuses a size above it), so a size asked for would silently not be what one gets
        raise _err(
            view,
            f"resources volume_size_gb={volume} on {instance_type}: this instance type has "
            "fixed NVMe instance storage, SageMaker attaches no volume of the size asked; "
            "drop volume_size_gb (the job gets the instance's storage), or pick an "
            "EBS-only type (e.g. ml.m5, ml.c5) to size the volume",
        )


# --- body and code ------------------------------------------------------------------------


def _body(view: JobView, backend: str) -> tuple[str, Path | None]:
    if view.body == "shell":
        return "shell", None
    if view.body == "script":
        assert view.script is not None
        path = Path(view.script)
        if not path.is_absolute():
            path = view.snakefile_dir / path
        path = path.resolve()
        if not path.is_file():
            raise _err(
                view,
                f"script {view.script!r} does not exist (looked at {str(path)!r}): "
                "give its path relative to the Snakefile",
            )
        if path.suffix not in (".py", ".sh"):
            raise _err(
                view,
                f"script {view.script!r} is not a .py or .sh file: SageMaker script mode "
                "runs Python or shell entry points",
            )
        _check_syntax(view, path, backend)
        return "script", path
    if view.body == "run":
        raise _err(
            view,
            "a run: body executes Python inside Snakemake and cannot run as a SageMaker "
            "job: move the code into a script (script: 'code/x.py') or a shell: command, "
            "or make the rule local with localrules",
        )
    raise _err(view, f"a {view.body}: body cannot run as a SageMaker job: use script: or shell:")


def _check_syntax(view: JobView, path: Path, backend: str) -> None:
    """A script that cannot even be parsed fails at once in the job, after the instances were
    paid for and the code uploaded: parse it here (compile / sh -n, nothing runs)."""
    if path.suffix == ".py":
        error = _python_syntax_error(path, _job_python(view, backend))
        if error:
            raise _err(view, f"script {view.script!r} has a syntax error: {error}; fix the script")
    elif path.suffix == ".sh":
        import shutil
        import subprocess

        if shutil.which("sh") is None:
            return
        # the job runs it with /bin/sh (worker_toolkit.launcher): -n parses without running
        proc = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            detail = proc.stderr.strip().replace(str(path), view.script or str(path))
            raise _err(
                view, f"script {view.script!r} has a shell syntax error ({detail}); fix the script"
            )


def _job_python(view: JobView, backend: str) -> tuple[int, int] | None:
    """The Python the job runs: this one on the local backend; the framework image's
    (py_version, or the default image's) on SageMaker; None when unknown (own image)."""
    import sys

    if backend == "local":
        return sys.version_info[:2]
    from ssm_rules.images import DEFAULT_VERSIONS

    options = _job_options(view)
    if options.image_uri:
        return None
    py = options.py_version or DEFAULT_VERSIONS.get(options.framework, (None, None))[1]
    match = re.fullmatch(r"py(\d)(\d+)", py or "")
    return (int(match[1]), int(match[2])) if match else None


def _python_syntax_error(path: Path, python: tuple[int, int] | None) -> str | None:
    """The syntax error of a Python file, parsed by this Python or, when the job's is newer
    (its grammar may accept more), by that version if it is installed here; else None."""
    import shutil
    import subprocess
    import sys

    if python is None or python <= sys.version_info[:2]:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarnings are the job's business
                compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except SyntaxError as e:
            text = f" ({e.text.strip()!r})" if e.text and e.text.strip() else ""
            return f"line {e.lineno}: {e.msg}{text}"
        except ValueError as e:  # e.g. a NUL byte
            return str(e)
        return None
    newer = shutil.which(f"python{python[0]}.{python[1]}")
    if newer is None:
        return None  # cannot judge a newer grammar here: SageMaker's Python will
    code = (
        "import sys,warnings;warnings.simplefilter('ignore')\n"
        "try: compile(open(sys.argv[1],'rb').read(),sys.argv[1],'exec',dont_inherit=True)\n"
        "except SyntaxError as e: print(f'line {e.lineno}: {e.msg}'); sys.exit(1)"
    )
    proc = subprocess.run(
        [newer, "-I", "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    return proc.stdout.strip() or None if proc.returncode == 1 else None


def _code_dirs(view: JobView, options: JobOptions) -> tuple[Path | None, tuple[Path, ...]]:
    def resolve(p: str, what: str) -> Path:
        path = Path(p) if Path(p).is_absolute() else view.snakefile_dir / p
        if not path.is_dir():
            raise _err(
                view,
                f"job({what}={p!r}): no such directory (looked at {str(path)!r}): "
                "give a directory relative to the Snakefile",
            )
        return path.resolve()

    source_dir = resolve(options.source_dir, "source_dir") if options.source_dir else None
    deps = tuple(resolve(d, "dependencies") for d in options.dependencies)
    names = [d.name for d in deps]
    if len(set(names)) != len(names) or "worker_toolkit" in names:
        raise _err(
            view,
            f"job(dependencies={list(options.dependencies)}): dependency directories "
            "are unpacked by name at the code root, so names must be unique and not "
            "'worker_toolkit'",
        )
    return source_dir, deps


# --- inputs -------------------------------------------------------------------------------


def _uri_of(view: JobView, item: IOItem, backend: str, what: str) -> str:
    if item.storage_uri:
        if not item.storage_uri.startswith("s3://"):
            raise _err(
                view,
                f"{what} {item.path!r} is stored at {item.storage_uri!r}: SageMaker reads and "
                "writes S3 only; use the s3 storage plugin (--default-storage-provider s3)",
            )
        return item.storage_uri
    if backend == "local":
        return file_uri(view.workdir / item.path, directory=item.is_directory)
    raise _err(
        view,
        f"{what} {item.path!r} is a local file that SageMaker cannot write: run with a "
        "default storage provider (the sagemaker profile sets --default-storage-provider s3) "
        "or mark the path as storage (storage.s3(...))",
    )


def _channels(view: JobView, job_type: JobType, backend: str, plan: bool) -> tuple[Channel, ...]:
    """One channel per input, except a sharded list of files: one channel holding them all
    (``sharded([...])`` flags every file; sharding each on its own would hand one object to
    one instance and nothing to the others)."""
    base = C.INPUT_DATA_DIR if job_type is JobType.TRAINING else C.PROCESSING_INPUT_DIR
    unpacked_base = C.UNPACKED_DIR if job_type is JobType.TRAINING else C.PROCESSING_UNPACKED_DIR
    counts: dict[str | None, int] = {}
    for item in view.inputs:
        counts[item.name] = counts.get(item.name, 0) + 1
    index: dict[str | None, int] = {}
    channels: list[Channel] = []
    group: list[Channel] = []  # the sharded list being collected
    group_key: tuple[str | None, int] | None = None
    group_name = ""
    for n, item in enumerate(view.inputs):
        if item.name is None:
            name = f"in{n}"
        elif counts[item.name] > 1:
            name = f"{item.name}_{index.setdefault(item.name, 0)}"
            index[item.name] += 1
        else:
            name = item.name
        ch = _channel(view, item, name, backend, plan, base, unpacked_base)
        # consecutive sharded files of one input (a named list, or unnamed ones side by side)
        key = (item.name, 0) if item.name is not None else (None, n - len(group))
        listed = ch.sharded and not ch.is_prefix and (item.name is None or counts[item.name] > 1)
        if group and not (listed and key == group_key):
            channels.append(_list_channel(view, group, group_name, base))
            group, group_key = [], None
        if listed:
            if not group:
                group_name = item.name or name
            group.append(ch)
            group_key = key
            continue
        channels.append(ch)
    if group:
        channels.append(_list_channel(view, group, group_name, base))
    for ch in channels:
        _check_channel_name(view, ch.name, job_type)
    names = [c.name for c in channels]
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise _err(
            view,
            f"channel names {dupes} are used twice: rename the inputs (unnamed inputs "
            "are called in0, in1, ...)",
        )
    return tuple(channels)


def _input_kind(view: JobView, item: IOItem) -> str | None:
    """The artifact kind of an input: the producing rule's, whatever form names it here
    (``rules.train.output.state`` and plain strings carry no flag)."""
    own = item.flags.get(ARTIFACT_FLAG)
    if own and item.producer_kind and own != item.producer_kind:
        raise _err(
            view,
            f"input {item.path!r} is written as {own}(...) but rule {item.producer} produces "
            f"it as {item.producer_kind}(...): write {item.producer_kind}({item.path!r}) or "
            "the plain path",
        )
    return item.producer_kind or own


def _channel(
    view: JobView,
    item: IOItem,
    name: str,
    backend: str,
    plan: bool,
    base: str,
    unpacked_base: str,
) -> Channel:
    flags = item.flags
    kind = _input_kind(view, item)
    local_path = None
    unpack = bool(flags.get(UNPACKED_FLAG))
    if unpack and not (
        kind in (ArtifactKind.MODEL, ArtifactKind.OUTPUT_DATA) or item.path.endswith(".tar.gz")
    ):
        raise _err(
            view,
            f"unpacked({item.path!r}): only a tarball can arrive unpacked; write "
            "unpacked(model(...)) or unpacked(output_data(...)), or drop unpacked()",
        )
    if kind == ArtifactKind.STATE:
        uri: str | None = state_prefix(_uri_of(view, item, backend, "input"))
        is_prefix = True
    elif flags.get(LOCAL_INPUT_FLAG) or (not item.storage_uri and backend != "local"):
        path = view.workdir / item.path
        if not path.exists() and not plan:
            raise _err(
                view,
                f"local_input {item.path!r} does not exist (looked at {str(path)!r}): "
                "create it, or give the path of the file or directory you meant",
            )
        if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
            # SageMaker fails a job whose channel prefix holds no object
            raise _err(
                view,
                f"local_input {item.path!r} is an empty directory: SageMaker "
                "refuses a channel with no objects; put the data in it or drop the input",
            )
        local_path, uri, is_prefix = str(path), None, path.is_dir()
    else:
        uri = _uri_of(view, item, backend, "input")
        is_prefix = item.is_directory
        if is_prefix and not uri.endswith("/"):
            uri += "/"
    leaf = "" if is_prefix else "/" + os.path.basename(item.path.rstrip("/"))
    job_path = f"{base}/{name}{leaf}"
    packed = None
    if unpack:
        job_path, packed = f"{unpacked_base}/{name}", job_path
    return Channel(
        name,
        uri,
        local_path,
        bool(flags.get(SHARDED_FLAG)),
        job_path,
        is_prefix,
        packed,
        input_name=item.name,
    )


def _list_channel(view: JobView, files: list[Channel], name: str, base: str) -> Channel:
    """Several sharded files as one channel: named after the input (unnamed: the first
    file's ``in<N>``), a directory in the job holding every file this instance got."""
    first = files[0]
    if any(f.packed_path for f in files):
        raise _err(view, f"input {name!r}: a sharded list of files cannot be unpacked()")
    if len(files) == 1:
        return replace(first, name=name)
    if len({f.local_path is None for f in files}) > 1:
        raise _err(
            view,
            f"input {name!r} lists local files and storage files in one sharded list: "
            "a SageMaker channel reads one place; give local_input(...) files only, or "
            "storage files only",
        )
    parts = tuple(ChannelPart(f.uri, f.local_path) for f in files)
    return Channel(
        name, None, None, True, f"{base}/{name}", True, parts=parts, input_name=first.input_name
    )


def _check_channel_count(
    view: JobView, job_type: JobType, channels: tuple[Channel, ...], has_state: bool
) -> None:
    if job_type is JobType.TRAINING:
        limit = MAX_TRAINING_CHANNELS
    else:  # ssm_rules' own ProcessingInputs: the code bundle, the task, the state
        limit = MAX_PROCESSING_INPUTS - 2 - int(has_state)
    if len(channels) > limit:
        raise _err(
            view,
            f"{len(channels)} inputs but a SageMaker {job_type} job takes at most "
            f"{limit} here: put related files in one directory and pass it as one "
            "local_input(...) / one input",
        )


def _check_sharding(view: JobView, channels: tuple[Channel, ...], count: int) -> None:
    """ShardedByS3Key deals objects round-robin: one object on several instances leaves
    every instance but the first with an empty channel, silently."""
    for ch in channels:
        if not ch.sharded or count <= 1:
            continue
        if not ch.is_prefix:
            raise _err(
                view,
                f"input {ch.name!r} is sharded over instance_count={count} but is one file: "
                "only the first instance would get data; shard a directory "
                "(sharded(local_input('data/train'))) or a list of files (sharded([...])), "
                "or drop sharded()",
            )
        _check_enough_to_shard(view, ch, count)


def _check_enough_to_shard(view: JobView, ch: Channel, count: int) -> None:
    """Fewer objects than instances leaves the last instances with an empty channel, as
    silently as one file does. Only what is known before the run is counted: a list of
    files, or a local directory (a prefix another rule writes is known only once it ran)."""
    if ch.parts:
        files = len(ch.parts)
    elif ch.local_path is not None and Path(ch.local_path).is_dir():
        files = len(tree(Path(ch.local_path)))  # what staging will upload
    else:
        return
    if files < count:
        what = f"{ch.local_path} holds" if not ch.parts else "the list names"
        raise _err(
            view,
            f"input {ch.name!r} is sharded over instance_count={count} but {what} "
            f"{files} file{'s' if files != 1 else ''}: instances {files + 1}..{count} would "
            f"get no data; give it at least {count} files, lower instance_count to "
            f"{max(files, 1)}, or drop sharded()",
        )


def _check_channel_name(view: JobView, name: str, job_type: JobType) -> None:
    if not CHANNEL_NAME.fullmatch(name):
        raise _err(
            view,
            f"input name {name!r} cannot be a SageMaker channel name (letters, digits, "
            "'.', '-', '_'; at most 64): rename the input",
        )
    reserved = {C.PROCESSING_CODE_INPUT, C.PROCESSING_TASK_INPUT, C.PROCESSING_STATE_INPUT}
    if name.startswith("ssm_") or (job_type is JobType.PROCESSING and name in reserved):
        raise _err(view, f"input name {name!r} is reserved by ssm_rules: rename the input")


# --- outputs ------------------------------------------------------------------------------


def _outputs(view: JobView, job_type: JobType, backend: str) -> tuple[Output, ...]:
    training = job_type is JobType.TRAINING
    dirs = {
        OutputKind.MODEL: C.MODEL_DIR if training else C.PROCESSING_MODEL_DIR,
        OutputKind.OUTPUT_DATA: C.OUTPUT_DATA_DIR if training else C.PROCESSING_OUTPUT_DATA_DIR,
        OutputKind.STATE: C.CHECKPOINT_DIR if training else C.PROCESSING_STATE_DIR,
    }
    files_dir = C.FILES_DIR if training else C.PROCESSING_FILES_DIR
    outputs: list[Output] = []
    for item in view.outputs:
        uri = _uri_of(view, item, backend, "output")
        kind = (
            OutputKind(item.flags[ARTIFACT_FLAG])
            if ARTIFACT_FLAG in item.flags
            else OutputKind.FILE
        )
        if kind is OutputKind.TENSORBOARD:
            if not training:
                raise _err(
                    view,
                    f"output tensorboard({item.path!r}) on a processing rule: SageMaker "
                    "processing jobs have no TensorBoard output; write job_type='training' or "
                    "put the files into output_data(...)",
                )
            outputs.append(
                Output(kind, uri if uri.endswith("/") else uri + "/", C.TENSORBOARD_DIR, "")
            )
            continue
        if item.is_directory:
            raise _err(
                view,
                f"output directory({item.path!r}): write the files into "
                "output_data(...) or model(...) (a tar.gz of a directory) instead",
            )
        if kind is OutputKind.FILE:
            member = _member_name(uri, view.workdir)
            outputs.append(Output(kind, uri, f"{files_dir}/{member}", member))
        else:
            outputs.append(Output(kind, uri, dirs[kind], ""))
    for kind in (
        OutputKind.MODEL,
        OutputKind.OUTPUT_DATA,
        OutputKind.STATE,
        OutputKind.TENSORBOARD,
    ):
        declared = [o.uri for o in outputs if o.kind is kind]
        if len(declared) > 1:
            raise _err(
                view,
                f"{len(declared)} {kind}(...) outputs {declared}: a job has one {kind}; keep one",
            )
    return tuple(outputs)


def _member_name(uri: str, workdir: Path) -> str:
    """The plain output's name inside the job's files carrier: its S3 key, or its path
    relative to the working directory (readable in ``{output.x}``)."""
    u = ObjectURI.parse(uri)
    if u.scheme == "s3":
        return u.key.lstrip("/")
    return os.path.relpath(u.key, workdir).replace("../", "_up/")


# --- hyperparameters and the shell command -------------------------------------------------


def _hyperparameters(view: JobView) -> tuple[tuple[str, Any], ...]:
    hps: list[tuple[str, Any]] = []
    for name, value in view.params:
        if isinstance(value, JobOptions):
            continue
        if name is None:
            raise _err(
                view,
                f"unnamed param {value!r}: every param is a hyperparameter and needs "
                "a name, e.g. params: lr=0.01",
            )
        if name.startswith(C.RESERVED_HP_PREFIXES):
            raise _err(
                view, f"param {name!r} uses a reserved prefix {C.RESERVED_HP_PREFIXES}: rename it"
            )
        if len(name) > MAX_HP_KEY:
            raise _err(view, f"param name {name[:40]!r}... is longer than {MAX_HP_KEY} characters")
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError):
            raise _err(
                view,
                f"param {name}={value!r} is not JSON-serialisable, so it cannot be a "
                "SageMaker hyperparameter: pass a number, string, bool, list or dict",
            ) from None
        if len(encoded) > MAX_HP_VALUE:
            raise _err(
                view,
                f"param {name} is {len(encoded)} characters as JSON; SageMaker allows "
                f"{MAX_HP_VALUE}: put large values in a file input instead",
            )
        hps.append((name, value))
    if len(hps) > MAX_HYPERPARAMETERS - RESERVED_HYPERPARAMETERS:
        raise _err(
            view,
            f"{len(hps)} params: SageMaker takes at most {MAX_HYPERPARAMETERS} "
            "hyperparameters including ssm_rules' own; pass a config file input instead",
        )
    return tuple(hps)


def _format_shell(view: JobView, channels: tuple[Channel, ...], outputs: tuple[Output, ...]) -> str:
    from ssm_rules._snakemake_internals import named_list

    # a sharded list of files is one directory in the job: {input.x} is that directory
    inputs = [(ch.input_name, ch.job_path) for ch in channels]
    outs = [(item.name, o.job_path) for item, o in zip(view.outputs, outputs, strict=True)]
    # Everything a job prints, on every instance, goes to the rule's log: so does {log}.
    logs = [(item.name, "/dev/stderr") for item in view.logs]
    params = [(n, v) for n, v in view.params if not isinstance(v, JobOptions)]
    return view.format(
        view.shell_template,
        input=named_list("input", inputs),
        output=named_list("output", outs),
        log=named_list("log", logs),
        params=named_list("params", params),
    )
