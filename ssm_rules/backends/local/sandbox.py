"""One host's /opt/ml: a real directory that stands for /opt/ml inside the job.

``hosts/algo-i/`` is what SageMaker's agent prepares before the container starts: the
config JSON files under input/config (training) or config (processing), the channel
directories, model/ and output/data/. When the host runs in its own mount namespace the
directory is bind-mounted at the real /opt/ml and ``visible`` paths are /opt/ml paths;
otherwise they are paths inside the sandbox (and the job is told via SSM_OPT_ML_ROOT).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker_toolkit import contract

GROUP_NAME = "homogeneousCluster"  # SageMaker's name when no InstanceGroups are given
NETWORK_INTERFACE = "eth0"


def host_names(count: int) -> list[str]:
    return [f"algo-{i}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class Sandbox:
    root: Path  # the real directory
    host: str  # "algo-1"
    index: int  # 0-based
    mounted: bool  # True: the job sees root at /opt/ml

    @property
    def visible_root(self) -> str:
        return contract.OPT_ML if self.mounted else str(self.root)

    def real(self, opt_ml_path: str) -> Path:
        """Where an /opt/ml/... path of the job is on this machine."""
        return self.root / _below_opt_ml(opt_ml_path)

    def visible(self, opt_ml_path: str) -> str:
        """How the job must spell an /opt/ml/... path."""
        rel = _below_opt_ml(opt_ml_path)
        return self.visible_root + ("/" + rel if rel else "")

    def write_json(self, opt_ml_path: str, obj: Any) -> None:
        path = self.real(opt_ml_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=1))


def _below_opt_ml(path: str) -> str:
    if path == contract.OPT_ML:
        return ""
    if not path.startswith(contract.OPT_ML + "/"):
        raise ValueError(f"{path!r} is not under {contract.OPT_ML}")
    return path[len(contract.OPT_ML) + 1 :].strip("/")


def remap_arg(arg: str, sandbox: Sandbox) -> str:
    """A command-line word that is an /opt/ml path, spelled for this host (no-mount mode)."""
    if arg == contract.OPT_ML or arg.startswith(contract.OPT_ML + "/"):
        return sandbox.visible(arg.rstrip("/") or arg)
    return arg


def training_resource_config(host: str, hosts: list[str], instance_type: str) -> dict[str, Any]:
    # resourceconfig.json as SageMaker writes it (sagemaker-training-toolkit reads these keys).
    return {
        "current_host": host,
        "current_instance_type": instance_type,
        "current_group_name": GROUP_NAME,
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": GROUP_NAME, "instance_type": instance_type, "hosts": hosts}
        ],
        "network_interface_name": NETWORK_INTERFACE,
    }


def input_data_config(body: dict[str, Any]) -> dict[str, Any]:
    mode = (body.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    config = {}
    for ch in body.get("InputDataConfig") or []:
        src = ch["DataSource"]["S3DataSource"]
        entry = {
            "TrainingInputMode": ch.get("InputMode", mode),
            "S3DistributionType": src.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": ch.get("RecordWrapperType", "None"),
        }
        if "ContentType" in ch:
            entry["ContentType"] = ch["ContentType"]
        config[ch["ChannelName"]] = entry
    return config


def checkpoint_local_path(body: dict[str, Any]) -> str | None:
    ckpt = body.get("CheckpointConfig")
    if not ckpt:
        return None
    return ckpt.get("LocalPath") or contract.CHECKPOINT_DIR


# --- the other files SageMaker writes under /opt/ml/input (observed on the service, see
# docs/in-job.md); nothing reads them but a worker that looks: their shape follows the service.
CHECKPOINT_CONFIG_FILE = f"{contract.INPUT_CONFIG_DIR}/checkpointconfig.json"
INIT_CONFIG_FILE = f"{contract.INPUT_CONFIG_DIR}/init-config.json"
TRAINING_JOB_CONFIG_FILE = f"{contract.INPUT_CONFIG_DIR}/trainingjobconfig.json"
METRIC_DEFINITIONS_FILE = f"{contract.INPUT_CONFIG_DIR}/metric-definition-regex.json"
TENSORBOARD_CONFIG_FILE = f"{contract.INPUT_CONFIG_DIR}/tensorboardoutputconfig.json"
UPSTREAM_OUTPUT_CONFIG_FILE = f"{contract.INPUT_CONFIG_DIR}/upstreamoutputdataconfig.json"
CHECKPOINTS_MANIFEST = f"{contract.INPUT_DATA_DIR}/checkpoints-manifest"
MANIFEST_SUFFIX = "-manifest"  # data/<channel>-manifest, next to the channel's directory
_DISTRIBUTION = {"FullyReplicated": "FULLY_REPLICATED", "ShardedByS3Key": "SHARDED_BY_S3_KEY"}


def _init_channel(source: dict[str, Any]) -> dict[str, Any]:
    """One channel as init-config.json spells it (the service's own enum spellings)."""
    distribution = source.get("S3DataDistributionType", "FullyReplicated")
    return {
        "s3DataSource": {
            "s3DataType": "S3_PREFIX",
            "s3Uri": source["S3Uri"],
            "s3DataDistributionType": _DISTRIBUTION.get(distribution, distribution),
            "attributeNames": None,
        },
        "fileSystemDataSource": None,
        "compressionType": "NONE",
        "recordWrapper": "NONE",
        "shuffleConfig": None,
        "inputMode": "FILE",
        "sharded": distribution == "ShardedByS3Key",
    }


def init_config(body: dict[str, Any], host_index: int, host_count: int) -> dict[str, Any]:
    channels = {
        ch["ChannelName"]: _init_channel(ch["DataSource"]["S3DataSource"])
        for ch in body.get("InputDataConfig") or []
    }
    config: dict[str, Any] = {"inputMode": "FILE", "channels": channels}
    ckpt = body.get("CheckpointConfig")
    if ckpt:
        config["checkpointChannel"] = {
            "name": "checkpoints",
            "channel": _init_channel({"S3Uri": ckpt["S3Uri"]}),
            # the service wrote /opt/ml/checkpoints here even with another LocalPath
            "outputPath": contract.CHECKPOINT_DIR,
            "allowEmpty": True,
        }
    config["hostConfig"] = {"clusterSize": host_count, "hostNumber": host_index + 1}
    config["enableAdditionalPlatformLoggingForCustomer"] = False
    config["jobRunInfo"] = {"jobRunNumber": 1}
    return config


def tensorboard_config(body: dict[str, Any]) -> dict[str, Any]:
    given = body.get("TensorBoardOutputConfig") or {}
    base = body["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return {
        "S3OutputPath": given.get("S3OutputPath")
        or f"{base}/{body['TrainingJobName']}/tensorboard-output",
        "LocalPath": given.get("LocalPath") or contract.TENSORBOARD_DIR + "/",
    }


def _key_of(uri: str) -> str:
    """A manifest's first line: the prefix without ``s3://bucket/``."""
    rest = uri.split("://", 1)[-1]
    return rest.split("/", 1)[1] if "/" in rest else ""


def write_channel_manifest(
    sandbox: Sandbox, channel_dir: str, prefix: str, uris: list[str]
) -> None:
    """``data/<channel>-manifest``: the channel's prefix, then the objects this host got."""
    path = sandbox.real(channel_dir.rstrip("/") + MANIFEST_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([_key_of(prefix), *uris]) + "\n")


def prepare_training(sandbox: Sandbox, body: dict[str, Any], hosts: list[str]) -> None:
    instance_type = (body.get("ResourceConfig") or {}).get("InstanceType", "local")
    sandbox.write_json(contract.HYPERPARAMETERS_FILE, dict(body.get("HyperParameters") or {}))
    sandbox.write_json(
        contract.RESOURCE_CONFIG_FILE,
        training_resource_config(sandbox.host, hosts, instance_type),
    )
    sandbox.write_json(contract.INPUT_DATA_CONFIG_FILE, input_data_config(body))
    sandbox.write_json(INIT_CONFIG_FILE, init_config(body, sandbox.index, len(hosts)))
    # the request as the service stored it (it holds no credentials)
    sandbox.write_json(TRAINING_JOB_CONFIG_FILE, body)
    metrics = (body.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
    sandbox.write_json(METRIC_DEFINITIONS_FILE, metrics)
    sandbox.write_json(TENSORBOARD_CONFIG_FILE, tensorboard_config(body))
    sandbox.write_json(UPSTREAM_OUTPUT_CONFIG_FILE, [])
    ckpt = body.get("CheckpointConfig")
    if ckpt:
        sandbox.write_json(
            CHECKPOINT_CONFIG_FILE, {"LocalPath": ckpt.get("LocalPath") or contract.CHECKPOINT_DIR}
        )
        manifest = sandbox.real(CHECKPOINTS_MANIFEST)
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(_key_of(ckpt["S3Uri"]) + "\n")
    for path in (contract.MODEL_DIR, contract.OUTPUT_DATA_DIR, contract.CODE_DIR):
        sandbox.real(path).mkdir(parents=True, exist_ok=True)
    for ch in body.get("InputDataConfig") or []:
        sandbox.real(f"{contract.INPUT_DATA_DIR}/{ch['ChannelName']}").mkdir(
            parents=True, exist_ok=True
        )
    local = checkpoint_local_path(body)
    if local:
        sandbox.real(local).mkdir(parents=True, exist_ok=True)


def prepare_processing(
    sandbox: Sandbox, body: dict[str, Any], hosts: list[str], job_arn: str
) -> None:
    # processingjobconfig.json is the request as SageMaker received it, plus the ARN.
    config = {k: v for k, v in body.items() if k != "Tags"}
    config["ProcessingJobArn"] = job_arn
    sandbox.write_json(contract.PROCESSING_CONFIG_FILE, config)
    sandbox.write_json(
        contract.PROCESSING_RESOURCE_CONFIG_FILE, {"current_host": sandbox.host, "hosts": hosts}
    )
    sandbox.real(contract.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    for inp in body.get("ProcessingInputs") or []:
        sandbox.real(inp["S3Input"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    for out in (body.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        sandbox.real(out["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
