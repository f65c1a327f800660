"""``job(distribution=...)``: distributed training, sent as SageMaker's framework containers
read it.

The framework containers (sagemaker-training-toolkit and the PyTorch/TensorFlow toolkits)
start torchrun, mpirun or parameter servers from hyperparameters that the SageMaker Python
SDK derives from the estimator's ``distribution``; this module derives the same ones,
following the SDK's ``Framework._distribution_configuration`` and
``PyTorch._pytorch_distribution_configuration`` (sagemaker-python-sdk v2, estimator.py and
pytorch/estimator.py), and lets sagemaker-core's ``fw_utils.validate_distribution`` (what the
SDK checks before a job: supported versions, instance types) refuse what SageMaker would.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

# the SDK's names (EstimatorBase / Framework / PyTorch class constants)
PARAMETER_SERVER = "sagemaker_parameter_server_enabled"
MPI = "sagemaker_mpi_enabled"
MPI_PROCESSES_PER_HOST = "sagemaker_mpi_num_of_processes_per_host"
MPI_CUSTOM_OPTIONS = "sagemaker_mpi_custom_mpi_options"
SM_DDP = "sagemaker_distributed_dataparallel_enabled"
SM_DDP_CUSTOM_OPTIONS = "sagemaker_distributed_dataparallel_custom_mpi_options"
INSTANCE_TYPE = "sagemaker_instance_type"
PYTORCH_XLA = "sagemaker_pytorch_xla_multi_worker_enabled"
MWMS = "sagemaker_multi_worker_mirrored_strategy_enabled"
PYTORCH_DDP = "sagemaker_pytorch_ddp_enabled"
TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"

# the hyperparameters that make a framework container start a launcher around the program
LAUNCHERS = (PARAMETER_SERVER, MPI, SM_DDP, PYTORCH_XLA, MWMS, PYTORCH_DDP, TORCH_DISTRIBUTED)

STRATEGIES = (
    "torch_distributed",
    "pytorchddp",
    "mpi",
    "smdistributed",
    "parameter_server",
    "pytorchxla",
    "multi_worker_mirrored_strategy",
)
# the framework images whose toolkits read these settings
FRAMEWORKS = ("pytorch", "tensorflow", "mxnet", "huggingface")
# strategies whose workers live on different hosts only (no multi-process launcher)
HOSTS_ONLY = ("parameter_server", "multi_worker_mirrored_strategy")
MAX_HYPERPARAMETERS = 5  # the most this adds (mpi + smdistributed)


class DistributionError(ValueError):
    """A distribution SageMaker would refuse, or one that would silently do nothing."""


def _enabled(distribution: Mapping[str, Any], key: str) -> bool:
    return bool((distribution.get(key) or {}).get("enabled", False))


def check(
    distribution: Mapping[str, Any],
    *,
    framework: str,
    framework_version: str | None,
    py_version: str | None,
    image_uri: str | None,
    instance_type: str,
    instance_count: int,
    entry_point: str,
) -> dict[str, Any]:
    """The distribution as the SDK would send it (``pytorchddp`` becomes ``smdistributed``
    data parallelism on PyTorch, as the SDK's PyTorch estimator rewrites it); raises
    DistributionError with what to write instead."""
    if not isinstance(distribution, Mapping):
        raise DistributionError(
            f"distribution={distribution!r} is not a dict: write e.g. "
            "distribution={'torch_distributed': {'enabled': True}}"
        )
    for key, value in distribution.items():
        if key not in STRATEGIES and key != "instance_groups":
            close = difflib.get_close_matches(str(key), STRATEGIES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DistributionError(
                f"distribution strategy {key!r} is not one SageMaker knows: {hint}"
                f"use one of {', '.join(STRATEGIES)}"
            )
        if not isinstance(value, Mapping):
            raise DistributionError(
                f"distribution {key}={value!r}: each strategy takes a dict, e.g. "
                f"{{'{key}': {{'enabled': True}}}}"
            )
    if "instance_groups" in distribution:
        raise DistributionError(
            "distribution instance_groups: heterogeneous clusters are not supported; "
            "drop instance_groups"
        )
    enabled = [k for k in STRATEGIES if _enabled(distribution, k) or _sm_enabled(distribution, k)]
    if not enabled:
        raise DistributionError(
            f"distribution={dict(distribution)!r} enables nothing: add 'enabled': True to "
            "the strategy, or drop distribution"
        )
    if instance_count == 1:
        one_host = [k for k in enabled if k in HOSTS_ONLY]
        if one_host:
            raise DistributionError(
                f"distribution {one_host[0]} on instance_count=1: its workers run on "
                "separate instances; set instance_count>=2"
            )
        if _gpus(instance_type) < 2 and _mpi_processes_per_host(distribution) < 2:
            raise DistributionError(
                f"distribution {enabled[0]} on one {instance_type} (fewer than 2 GPUs) "
                "runs a single worker: set instance_count>=2, a multi-GPU instance_type, or "
                "mpi processes_per_host>=2"
            )
    sent = dict(distribution)
    if framework == "pytorch" and "pytorchddp" in sent:
        if "smdistributed" in sent:
            raise DistributionError(
                "distribution pytorchddp and smdistributed together: keep one (the SDK "
                "runs pytorchddp as smdistributed data parallelism)"
            )
        sent["smdistributed"] = {"dataparallel": sent.pop("pytorchddp")}
    try:
        from sagemaker.core import fw_utils

        sent = fw_utils.validate_distribution(
            sent,
            None,
            framework,
            _full_version(framework, framework_version),
            py_version,
            image_uri,
            {"instance_type": instance_type, "entry_point": entry_point},
        )
    except ValueError as e:
        raise DistributionError(
            f"SageMaker refuses distribution={dict(distribution)!r}: {e}"
        ) from None
    return sent


def _full_version(framework: str, version: str | None) -> str | None:
    """The image's full version: its tables list "2.8.0" where the image tag "2.8" is the
    same image (training version_aliases), and the SDK's checks compare full versions."""
    if version is None:
        return None
    from sagemaker.core import image_uris

    try:
        aliases = image_uris.config_for_framework(framework)["training"]["version_aliases"]
    except (KeyError, ValueError, FileNotFoundError):
        return version
    return str(aliases.get(version, version))


def _sm_enabled(distribution: Mapping[str, Any], key: str) -> bool:
    if key != "smdistributed":
        return False
    sm = distribution.get("smdistributed") or {}
    return any(bool((v or {}).get("enabled")) for v in sm.values() if isinstance(v, Mapping))


def _mpi_processes_per_host(distribution: Mapping[str, Any]) -> int:
    if not _enabled(distribution, "mpi"):
        return 0
    try:
        return int((distribution.get("mpi") or {}).get("processes_per_host") or 1)
    except (TypeError, ValueError):
        return 1


def _gpus(instance_type: str) -> int:
    """GPUs of an instance type (sagemaker-core's per-region table; the count does not
    depend on the region, so any region that lists the type answers)."""
    import json
    from pathlib import Path

    from sagemaker.core import instance_types_gpu_info

    table = Path(instance_types_gpu_info.__file__).parent / "image_uri_config"
    regions = json.loads((table / "instance_gpu_info.json").read_text())
    for info in regions.values():
        if instance_type in info:
            return int(info[instance_type].get("Count", 0))
    return 0


def hyperparameters(
    distribution: Mapping[str, Any], framework: str, instance_type: str
) -> dict[str, Any]:
    """The hyperparameters the SDK adds for ``distribution`` (values before JSON encoding)."""
    if framework == "pytorch" and _enabled(distribution, "torch_distributed"):
        # PyTorch._pytorch_distribution_configuration (pytorchddp was rewritten to
        # smdistributed data parallelism by check(), as the SDK's PyTorch.__init__ does)
        config = _generic(distribution, instance_type) if "smdistributed" in distribution else {}
        return {**config, TORCH_DISTRIBUTED: True, INSTANCE_TYPE: instance_type}
    return _generic(distribution, instance_type)


def _generic(distribution: Mapping[str, Any], instance_type: str) -> dict[str, Any]:
    """Framework._distribution_configuration."""
    config: dict[str, Any] = {}
    if "pytorchxla" in distribution:
        config[PYTORCH_XLA] = _enabled(distribution, "pytorchxla")
    if "parameter_server" in distribution:
        config[PARAMETER_SERVER] = _enabled(distribution, "parameter_server")
    if "mpi" in distribution:
        mpi = distribution["mpi"]
        config[MPI] = bool(mpi.get("enabled", False))
        if mpi.get("processes_per_host"):
            config[MPI_PROCESSES_PER_HOST] = mpi["processes_per_host"]
        config[MPI_CUSTOM_OPTIONS] = mpi.get("custom_mpi_options", "")
        from sagemaker.core import fw_utils

        mp = fw_utils.get_mp_parameters(distribution)
        if mp:
            config["mp_parameters"] = mp
    elif "modelparallel" in (distribution.get("smdistributed") or {}):
        raise DistributionError(
            "distribution smdistributed modelparallel needs mpi: add 'mpi': {'enabled': True}"
        )
    if "smdistributed" in distribution:
        sm = distribution["smdistributed"]
        dp = bool((sm.get("dataparallel") or {}).get("enabled", False))
        config[SM_DDP] = dp
        config[INSTANCE_TYPE] = instance_type
        if dp:
            config[SM_DDP_CUSTOM_OPTIONS] = sm["dataparallel"].get("custom_mpi_options", "")
    if "multi_worker_mirrored_strategy" in distribution:
        config[MWMS] = _enabled(distribution, "multi_worker_mirrored_strategy")
    return config
