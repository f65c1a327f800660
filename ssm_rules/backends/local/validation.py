"""What the local SageMaker refuses, and how: the service's own errors plus our subset.

SageMaker answers a bad Create*Job with ``ValidationException`` and a duplicate name with
``ResourceInUse``; both are raised here before anything is written. The local backend runs
a subset of the API (S3Prefix File-mode inputs, script mode or an explicit entrypoint);
a request outside it is refused with what to write instead, never half-run.
"""

from __future__ import annotations

from typing import Any

from ssm_rules.aws_names import job_name_problem
from ssm_rules.backends.base import BackendError, JobType
from ssm_rules.objects import ObjectURI, ObjectURIError
from worker_toolkit import contract

DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")


class LocalSageMakerError(BackendError):
    """Base of the errors the local service raises for a request."""


class ValidationError(LocalSageMakerError, ValueError):
    """SageMaker's ValidationException; the message starts with that code, as the other
    local errors' do and as the aws backend quotes SageMaker's."""

    def __init__(self, message: str) -> None:
        super().__init__(f"ValidationException: {message}")


class ResourceInUse(LocalSageMakerError, ValueError):
    """SageMaker's ResourceInUse: a job with this name already exists."""


class JobNotFound(LocalSageMakerError, LookupError):
    """DescribeTrainingJob's 'Requested resource not found'."""


def duplicate_name(job_type: JobType, name: str, arn: str) -> ResourceInUse:
    what = "Training" if job_type is JobType.TRAINING else "Processing"
    return ResourceInUse(
        f"ResourceInUse: {what} job names must be unique within an AWS account and region, "
        f"and a {what.lower()} job with this name already exists ({arn}); choose a new name"
    )


def validate(job_type: JobType, body: dict[str, Any]) -> None:
    key = "TrainingJobName" if job_type is JobType.TRAINING else "ProcessingJobName"
    name = body.get(key)
    problem = job_name_problem(name, job_type)
    if problem is not None:
        raise ValidationError(f"{key}: {problem}")
    if job_type is JobType.TRAINING:
        _validate_training(body)
    else:
        _validate_processing(body)


def _uri(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be an s3:// or file:// URI, got {value!r}")
    try:
        ObjectURI.parse(value)
    except ObjectURIError as e:
        raise ValidationError(f"{where}: {e}") from e


def _under(path: str, root: str, where: str) -> None:
    norm = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
    if ".." in path.split("/") or not (norm == root or norm.startswith(root + "/")):
        raise ValidationError(
            f"{where} {path!r} must be an absolute path under {root}/ "
            "(the local backend maps only that tree into the job)"
        )


def _validate_training(body: dict[str, Any]) -> None:
    algo = body.get("AlgorithmSpecification") or {}
    mode = algo.get("TrainingInputMode", "File")
    if mode not in ("File", "FastFile"):
        raise ValidationError(f"TrainingInputMode {mode!r} is not supported locally: use 'File'")
    hps = body.get("HyperParameters") or {}
    for k, v in hps.items():
        if not isinstance(v, str):
            raise ValidationError(
                f"HyperParameters[{k!r}] = {v!r}: SageMaker takes string values only; "
                "JSON-encode it"
            )
    if not algo.get("ContainerEntrypoint") and contract.HP_PROGRAM not in hps:
        raise ValidationError(
            "the local backend runs framework images in script mode: set the hyperparameters "
            f"{contract.HP_PROGRAM!r} and {contract.HP_SUBMIT_DIRECTORY!r} "
            "(or AlgorithmSpecification.ContainerEntrypoint)"
        )
    if contract.HP_PROGRAM in hps and not algo.get("ContainerEntrypoint"):
        _uri(
            _json_str(hps.get(contract.HP_SUBMIT_DIRECTORY), contract.HP_SUBMIT_DIRECTORY),
            f"HyperParameters[{contract.HP_SUBMIT_DIRECTORY!r}]",
        )
    names = set()
    for ch in body.get("InputDataConfig") or []:
        cname = ch.get("ChannelName")
        if not cname or cname in names:
            raise ValidationError(f"ChannelName {cname!r} is missing or repeated")
        names.add(cname)
        src = (ch.get("DataSource") or {}).get("S3DataSource")
        if not src:
            raise ValidationError(f"channel {cname!r}: only DataSource.S3DataSource is supported")
        _s3_source(src, f"channel {cname!r}", "S3DataType", "S3DataDistributionType")
        if ch.get("InputMode", mode) not in ("File", "FastFile"):
            raise ValidationError(f"channel {cname!r}: InputMode {ch['InputMode']!r}: use 'File'")
        if ch.get("CompressionType", "None") != "None":
            raise ValidationError(f"channel {cname!r}: CompressionType applies to Pipe mode only")
    out = body.get("OutputDataConfig") or {}
    _uri(out.get("S3OutputPath"), "OutputDataConfig.S3OutputPath")
    if out.get("CompressionType", "GZIP") != "GZIP":
        raise ValidationError("OutputDataConfig.CompressionType: only GZIP is supported locally")
    keep_alive = (body.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds", 0)
    if keep_alive and body.get("EnableManagedSpotTraining"):
        # AWS: "SageMaker Managed Warm Pools cannot be used with spot instances"
        raise ValidationError(
            "ResourceConfig.KeepAlivePeriodInSeconds with EnableManagedSpotTraining: warm "
            "pools cannot be used with spot instances; drop one of them"
        )
    count = (body.get("ResourceConfig") or {}).get("InstanceCount", 1)
    if not isinstance(count, int) or count < 1:
        raise ValidationError(f"ResourceConfig.InstanceCount {count!r} must be an integer >= 1")
    ckpt = body.get("CheckpointConfig")
    if ckpt:
        _uri(ckpt.get("S3Uri"), "CheckpointConfig.S3Uri")
        _under(
            ckpt.get("LocalPath", contract.CHECKPOINT_DIR),
            contract.OPT_ML,
            "CheckpointConfig.LocalPath",
        )


def _validate_processing(body: dict[str, Any]) -> None:
    app = body.get("AppSpecification") or {}
    if not app.get("ContainerEntrypoint"):
        raise ValidationError(
            "AppSpecification.ContainerEntrypoint is required locally (the image's own "
            "entrypoint is unknown here): e.g. ['python3', '/opt/ml/processing/input/code/x.py']"
        )
    cluster = (body.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    count = cluster.get("InstanceCount", 1)
    if not isinstance(count, int) or count < 1:
        raise ValidationError(f"ClusterConfig.InstanceCount {count!r} must be an integer >= 1")
    inputs = body.get("ProcessingInputs") or []
    _unique_names(inputs, "InputName")
    for inp in inputs:
        iname = inp.get("InputName")
        src = inp.get("S3Input")
        if not src:
            raise ValidationError(f"input {iname!r}: only S3Input is supported locally")
        _s3_source(src, f"input {iname!r}", "S3DataType", "S3DataDistributionType")
        if src.get("S3InputMode", "File") != "File":
            raise ValidationError(f"input {iname!r}: S3InputMode must be 'File' locally")
        _under(src.get("LocalPath", ""), contract.PROCESSING_DIR, f"input {iname!r} LocalPath")
    outputs = (body.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    _unique_names(outputs, "OutputName")
    for out in outputs:
        oname = out.get("OutputName")
        dst = out.get("S3Output")
        if not dst:
            raise ValidationError(f"output {oname!r}: only S3Output is supported locally")
        _uri(dst.get("S3Uri"), f"output {oname!r} S3Uri")
        _under(dst.get("LocalPath", ""), contract.PROCESSING_DIR, f"output {oname!r} LocalPath")
        if dst.get("S3UploadMode", "EndOfJob") not in ("EndOfJob", "Continuous"):
            raise ValidationError(f"output {oname!r}: S3UploadMode must be EndOfJob or Continuous")


def _s3_source(src: dict[str, Any], where: str, type_key: str, dist_key: str) -> None:
    _uri(src.get("S3Uri"), f"{where} S3Uri")
    if src.get(type_key, "S3Prefix") not in ("S3Prefix", "ManifestFile"):
        raise ValidationError(
            f"{where}: {type_key} {src.get(type_key)!r} is not supported locally: use "
            "'S3Prefix' or 'ManifestFile'"
        )
    dist = src.get(dist_key, "FullyReplicated")
    if dist not in DISTRIBUTIONS:
        raise ValidationError(f"{where}: {dist_key} {dist!r} must be one of {DISTRIBUTIONS}")


def _json_str(value: Any, key: str) -> str:
    """Script-mode hyperparameters are JSON-encoded strings (the SageMaker Python SDK)."""
    import json

    if not isinstance(value, str):
        raise ValidationError(f"hyperparameter {key!r} is missing")
    try:
        decoded = json.loads(value)
    except ValueError:
        decoded = value
    if not isinstance(decoded, str):
        raise ValidationError(f"hyperparameter {key!r} = {value!r} must be a (JSON) string")
    return decoded


def _unique_names(items: list[dict[str, Any]], key: str) -> None:
    names: set[str] = set()
    for item in items:
        name = item.get(key)
        if not name or name in names:
            raise ValidationError(f"{key} {name!r} is missing or repeated")
        names.add(name)
