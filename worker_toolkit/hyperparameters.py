"""Hyperparameters as SageMaker hands them to a program (standard library only).

One copy, used by the in-job launcher (processing jobs, where no toolkit runs), WorkerConfig,
and the local backend's emulation of the training toolkit. The behaviour is
sagemaker-training-toolkit's, which runs script mode in every framework image:

- ``environment.read_hyperparameters``: each value of hyperparameters.json is JSON-decoded,
  and kept as the raw string when that fails (``"1"`` → 1, ``'"a"'`` → "a", ``"a"`` → "a");
- ``params.SAGEMAKER_HYPERPARAMETERS`` and every ``sagemaker_`` key are the toolkit's, split
  off before the program sees the rest (``mapping.split_by_criteria``);
- ``mapping.to_cmd_args``: sorted keys, ``--key value`` (``-k`` for a one-letter key, nothing
  for an empty one), a dict value as ``k=v,k2=v2``, None as "", bytes latin-1, others ``str()``;
- ``mapping.to_env_vars``: strings as they are, everything else compact sorted JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from . import contract as c

TYPE_CHECKING = False  # typing is not imported on the launcher's path
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "SAGEMAKER_HYPERPARAMETERS",
    "decode",
    "decode_value",
    "env_value",
    "is_reserved",
    "split_sagemaker",
    "to_cmd_args",
    "user_hps",
]

SAGEMAKER_PREFIX = "sagemaker_"
# params.SAGEMAKER_HYPERPARAMETERS: the toolkit's own, split off even without the prefix
SAGEMAKER_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
)


def decode_value(value: Any) -> Any:
    """One hyperparameters.json value as ``read_hyperparameters`` decodes it."""
    try:
        return json.loads(value)
    except (ValueError, TypeError):  # not JSON, or not a string at all: kept as it is
        return value


def decode(raw: Mapping[str, Any]) -> dict[str, Any]:
    """hyperparameters.json (SageMaker writes every value as a string), decoded."""
    return {key: decode_value(value) for key, value in raw.items()}


def split_sagemaker(decoded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the toolkit's hyperparameters, the program's): ``mapping.split_by_criteria``."""
    sm = {
        k: v
        for k, v in decoded.items()
        if k in SAGEMAKER_HYPERPARAMETERS or k.startswith(SAGEMAKER_PREFIX)
    }
    return sm, {k: v for k, v in decoded.items() if k not in sm}


def is_reserved(key: str) -> bool:
    """True for hyperparameters that belong to SageMaker or ssm_rules, not to the user."""
    return key.startswith(c.RESERVED_HP_PREFIXES)


def user_hps(hps: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters without the reserved ``sagemaker_`` / ``ssm_`` keys."""
    return {k: v for k, v in hps.items() if not is_reserved(k)}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def to_cmd_args(mapping: Mapping[str, Any]) -> list[str]:
    """The program's command line for these (decoded) hyperparameters."""
    args: list[str] = []
    for key in sorted(mapping):
        name = _text(key)
        args.append(("--" if len(name) > 1 else "-") + name if name else "")
        value = mapping[key]
        if hasattr(value, "items"):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_text(value))
    return args


def env_value(value: Any) -> str:
    """A value as the toolkit puts it into an SM_* variable."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
