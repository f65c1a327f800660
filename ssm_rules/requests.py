"""TaskSpec + where things were staged → the CreateTrainingJob / CreateProcessingJob request.

Pure functions, no I/O: the request is the whole contract with SageMaker, and the local
backend runs a job from it alone.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ssm_rules.aws_names import job_name_problem, job_name_rule
from ssm_rules.backends.base import JobRequest, JobType
from ssm_rules.objects import ObjectURI
from ssm_rules.spec import Channel, OutputKind, SpecError, TaskSpec
from worker_toolkit import contract as C
from worker_toolkit.task import TaskDescription

# ContainerEntrypoint items are limited to 256 characters: unpack the code bundle with sh/tar
# (in every framework image) and hand over to our launcher. SSM_OPT_ML_ROOT is only set by the
# local backend when it cannot mount the sandbox at /opt/ml.
PROCESSING_ENTRYPOINT = [
    "/bin/sh",
    "-c",
    'R="${SSM_OPT_ML_ROOT:-/opt/ml}"; W="$R/processing/work"; mkdir -p "$W" && '
    'tar -xzf "$R/processing/input/code/sourcedir.tar.gz" -C "$W" && '
    'cd "$W" && exec python3 "$W/ssm_launch.py" "$@"',
    "ssm_launch",
]
PROCESSING_STATE_INPUT_PATH = f"{C.PROCESSING_INPUT_DIR}/{C.PROCESSING_STATE_INPUT}"


@dataclass(frozen=True)
class Placement:
    """Where the executor put what the job needs, and the account-level settings."""

    job_name: str
    code_uri: str  # the code bundle (sourcedir.tar.gz)
    channel_uris: dict[str, str]  # channel name → URI (after syncing local inputs)
    jobs_uri: str  # S3OutputPath: SageMaker writes <jobs_uri>/<job>/output/model.tar.gz
    image_uri: str
    role_arn: str
    region: str
    kms_key: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    identity_tags: dict[str, str] = field(default_factory=dict)
    # processing: the task state has objects to restore (SageMaker refuses an input whose
    # prefix is empty, so a first run, or one after clean_state, gets no state input)
    restore_state: bool = True


JOB_SUFFIX_LENGTH = len("-MMDDHHMMSS-abcdef")


def max_job_name() -> int:
    """The longest name SageMaker takes for either job type (botocore's model: 63)."""
    return min(job_name_rule(job_type)[1] for job_type in JobType)


def _slug(text: str) -> str:
    """Letters and digits, every other run of characters one '-' (SageMaker's name pattern)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9]", "-", text)).strip("-")


def job_name_prefix(rule: str) -> str:
    """The rule's part of its job names (also what finding its earlier jobs filters on: every
    job of the rule, whatever its wildcards, starts with it; the task tag tells them apart)."""
    slug = _slug(rule)
    if not slug:
        raise SpecError(
            f"rule {rule!r}: its name has no letter or digit, so it cannot start a "
            "SageMaker job name: rename the rule (letters, digits, '_')"
        )
    return slug[: max_job_name() - JOB_SUFFIX_LENGTH].rstrip("-") + "-"


def wildcards_part(rule: str, wildcards: Sequence[tuple[str, str]]) -> str:
    """The wildcard values as far as the name has room, '-'-joined and ending with '-': the
    jobs of a sweep (``lr=0.01``, ``lr=0.1``) read apart in the console (``train-0-01-...``,
    ``train-0-1-...``). Cut at the 63-character limit: the task tag holds them whole."""
    # name = prefix + part + "MMDDHHMMSS-abcdef"; part = values + "-"
    room = max(0, max_job_name() - JOB_SUFFIX_LENGTH - len(job_name_prefix(rule)))
    values = _slug("-".join(value for _, value in wildcards))
    part = values[:room].rstrip("-")
    return part + "-" if part else ""


def job_name(
    rule: str,
    wildcards: Sequence[tuple[str, str]] = (),
    now: float | None = None,
    token: str | None = None,
) -> str:
    """``<rule>-<wildcard values>-<MMDDHHMMSS>-<6 hex>``: readable, unique per submission,
    valid for SageMaker (``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``)."""
    stamp = time.strftime("%m%d%H%M%S", time.gmtime(now if now is not None else time.time()))
    head = job_name_prefix(rule) + wildcards_part(rule, wildcards)
    name = f"{head}{stamp}-{token or secrets.token_hex(3)}"
    assert all(job_name_problem(name, job_type) is None for job_type in JobType), name
    return name


def adopted_placement(name: str, jobs_uri: str) -> Placement:
    """Enough of a Placement to find the outputs of a job submitted by an earlier run."""
    return Placement(
        job_name=name,
        code_uri="",
        channel_uris={},
        jobs_uri=jobs_uri,
        image_uri="",
        role_arn="",
        region="",
    )


def tensorboard_uri(place: Placement) -> str:
    """Where the job's TensorBoard files are synced before promotion (a folder)."""
    return str(ObjectURI.parse(place.jobs_uri).join(place.job_name, "tensorboard")) + "/"


def carrier_uri(spec: TaskSpec, place: Placement) -> str:
    """Where the job leaves its outputs before promotion."""
    if spec.job_type is JobType.TRAINING:
        return str(ObjectURI.parse(place.jobs_uri).join(place.job_name, "output"))
    return str(ObjectURI.parse(place.jobs_uri).join(place.job_name, C.PROCESSING_CARRIER_OUTPUT))


def task_file_uri(place: Placement) -> str:
    return str(ObjectURI.parse(place.jobs_uri).join(place.job_name, C.TASK_FILE_NAME))


def task_description(spec: TaskSpec, restore_state: bool = True) -> TaskDescription:
    """What the in-job launcher runs (worker_toolkit.task documents the fields)."""
    kinds = {o.kind for o in spec.outputs}
    processing = spec.job_type is JobType.PROCESSING
    return TaskDescription(
        kind=spec.kind,
        program=spec.program or "",
        command=spec.command or "",
        job_type=str(spec.job_type),
        files={o.job_path: o.member for o in spec.outputs if o.kind is OutputKind.FILE},
        state_dir=spec.state_output.job_path if spec.state_output else None,
        model=OutputKind.MODEL in kinds,
        # named inputs/outputs → SSM_INPUT_<NAME> / SSM_OUTPUT_<NAME> for script: bodies
        inputs={c.name: c.job_path for c in spec.channels},
        outputs={name: o.job_path for name, o in spec.named_outputs},
        output_data=OutputKind.OUTPUT_DATA in kinds,
        args=tuple(spec.options.args),
        setup=spec.options.setup or "",
        unpack={c.name: (c.job_path, c.packed_path) for c in spec.channels if c.packed_path},
        snakemake=spec.snakemake_object,
        hps=dict(spec.hyperparameters) if processing else {},
        state_input=PROCESSING_STATE_INPUT_PATH
        if processing and spec.state_prefix and restore_state
        else None,
    )


def _data_type(ch: Channel) -> str:
    # a list of files is a ManifestFile: [{"prefix": "s3://b/p/"}, "key1", ...]; SageMaker
    # places each object at <channel>/<key> and shards the list across the instances
    return "ManifestFile" if ch.parts else "S3Prefix"


def build_request(spec: TaskSpec, place: Placement) -> JobRequest:
    if spec.job_type is JobType.TRAINING:
        return JobRequest(JobType.TRAINING, training_request(spec, place))
    return JobRequest(JobType.PROCESSING, processing_request(spec, place))


def _tags(spec: TaskSpec, place: Placement) -> list[dict[str, str]]:
    tags = {**spec.options.tags, **place.identity_tags}
    return [{"Key": str(k), "Value": str(v)} for k, v in sorted(tags.items())]


def training_request(spec: TaskSpec, place: Placement) -> dict[str, Any]:
    task = task_description(spec).to_json()
    hps = {name: json.dumps(value) for name, value in spec.hyperparameters}
    # distributed training: the settings the framework container reads, as the SDK sends them
    hps.update({name: json.dumps(value) for name, value in spec.distribution_hps})
    hps.update(
        {
            C.HP_PROGRAM: json.dumps(C.LAUNCHER_PROGRAM),
            C.HP_SUBMIT_DIRECTORY: json.dumps(place.code_uri),
            C.HP_REGION: json.dumps(place.region),
            C.HP_CONTAINER_LOG_LEVEL: "20",
            C.HP_TASK: json.dumps(task),
        }
    )
    if len(hps[C.HP_TASK]) > 2500:
        raise SpecError(
            f"rule {spec.rule}: the shell command and outputs take "
            f"{len(hps[C.HP_TASK])} characters as a hyperparameter (SageMaker allows "
            "2500): move the command into a script (script: 'code/run.sh')"
        )
    instance = spec.instance
    body: dict[str, Any] = {
        "TrainingJobName": place.job_name,
        "AlgorithmSpecification": {
            "TrainingImage": place.image_uri,
            "TrainingInputMode": "File",
        },
        "RoleArn": place.role_arn,
        "HyperParameters": hps,
        "OutputDataConfig": {"S3OutputPath": place.jobs_uri},
        "ResourceConfig": {
            "InstanceType": instance.instance_type,
            "InstanceCount": instance.count,
            "VolumeSizeInGB": instance.volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": instance.max_run_seconds},
        "EnableManagedSpotTraining": instance.spot,
        "Tags": _tags(spec, place),
    }
    if spec.options.metric_definitions:
        body["AlgorithmSpecification"]["MetricDefinitions"] = [
            {"Name": k, "Regex": v} for k, v in spec.options.metric_definitions.items()
        ]
        body["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] = True
    if spec.channels:
        body["InputDataConfig"] = [
            {
                "ChannelName": ch.name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": _data_type(ch),
                        "S3Uri": place.channel_uris[ch.name],
                        "S3DataDistributionType": "ShardedByS3Key"
                        if ch.sharded
                        else "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
            for ch in spec.channels
        ]
    if instance.spot:
        body["StoppingCondition"]["MaxWaitTimeInSeconds"] = instance.max_wait_seconds
    if instance.keep_alive_seconds:
        # a managed warm pool for the next matching job (ssm_rules.warm_pools decides)
        assert not instance.spot, "SageMaker refuses warm pools with managed spot"
        body["ResourceConfig"]["KeepAlivePeriodInSeconds"] = instance.keep_alive_seconds
    if spec.state_prefix:
        # SageMaker syncs CheckpointConfig.LocalPath to S3Uri during the job and restores it
        # on a spot restart; the URI must end with "/" so that keys stay under the prefix.
        body["CheckpointConfig"] = {"S3Uri": spec.state_prefix, "LocalPath": C.CHECKPOINT_DIR}
    if spec.options.environment:
        body["Environment"] = {str(k): str(v) for k, v in spec.options.environment.items()}
    if spec.tensorboard_output is not None:
        # SageMaker syncs LocalPath to S3OutputPath while the job runs; promoted at its end
        body["TensorBoardOutputConfig"] = {
            "LocalPath": C.TENSORBOARD_DIR,
            "S3OutputPath": tensorboard_uri(place),
        }
    if place.kms_key:
        body["OutputDataConfig"]["KmsKeyId"] = place.kms_key
        body["ResourceConfig"]["VolumeKmsKeyId"] = place.kms_key
    if place.subnets:
        body["VpcConfig"] = {
            "Subnets": list(place.subnets),
            "SecurityGroupIds": list(place.security_groups),
        }
    return body


def processing_request(spec: TaskSpec, place: Placement) -> dict[str, Any]:
    def s3_input(
        name: str, uri: str, local: str, sharded: bool = False, data_type: str = "S3Prefix"
    ) -> dict[str, Any]:
        return {
            "InputName": name,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": local,
                "S3DataType": data_type,
                "S3InputMode": "File",
                "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
            },
        }

    inputs = [
        s3_input(C.PROCESSING_CODE_INPUT, place.code_uri, C.PROCESSING_CODE_DIR),
        s3_input(C.PROCESSING_TASK_INPUT, task_file_uri(place), C.PROCESSING_TASK_DIR),
    ]
    for ch in spec.channels:
        inputs.append(
            s3_input(
                ch.name,
                place.channel_uris[ch.name],
                f"{C.PROCESSING_INPUT_DIR}/{ch.name}",
                ch.sharded,
                _data_type(ch),
            )
        )
    outputs = [
        {
            "OutputName": C.PROCESSING_CARRIER_OUTPUT,
            "S3Output": {
                "S3Uri": carrier_uri(spec, place),
                "LocalPath": C.PROCESSING_CARRIER_DIR,
                "S3UploadMode": "EndOfJob",
            },
        }
    ]
    if spec.state_prefix and place.restore_state:
        inputs.append(
            s3_input(C.PROCESSING_STATE_INPUT, spec.state_prefix, PROCESSING_STATE_INPUT_PATH)
        )
    if spec.state_prefix:
        # Continuous upload keeps the state of a job that fails or is stopped.
        outputs.append(
            {
                "OutputName": C.PROCESSING_STATE_OUTPUT,
                "S3Output": {
                    "S3Uri": spec.state_prefix,
                    "LocalPath": C.PROCESSING_STATE_DIR,
                    "S3UploadMode": "Continuous",
                },
            }
        )
    instance = spec.instance
    cluster: dict[str, Any] = {
        "InstanceCount": instance.count,
        "InstanceType": instance.instance_type,
        "VolumeSizeInGB": instance.volume_gb,
    }
    body: dict[str, Any] = {
        "ProcessingJobName": place.job_name,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": instance.max_run_seconds},
        "AppSpecification": {
            "ImageUri": place.image_uri,
            "ContainerEntrypoint": list(PROCESSING_ENTRYPOINT),
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs},
        "RoleArn": place.role_arn,
        "Tags": _tags(spec, place),
    }
    if spec.options.environment:
        body["Environment"] = {str(k): str(v) for k, v in spec.options.environment.items()}
    if place.kms_key:
        cluster["VolumeKmsKeyId"] = place.kms_key
        body["ProcessingOutputConfig"]["KmsKeyId"] = place.kms_key
    if place.subnets:
        body["NetworkConfig"] = {
            "VpcConfig": {
                "Subnets": list(place.subnets),
                "SecurityGroupIds": list(place.security_groups),
            }
        }
    return body
