"""Helpers shared by WorkerConfig and the launcher (standard library only, Python >= 3.9)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from . import contract as c

TYPE_CHECKING = False  # typing is not imported on the launcher's path
if TYPE_CHECKING:
    from typing import Any

# "/opt/ml" as a whole path component inside free text (a shell command): not "/opt/mlflow",
# not "/x/opt/ml". Used to move every job path onto SSM_OPT_ML_ROOT when the local backend
# could not mount the sandbox at /opt/ml.
_OPT_ML_IN_TEXT = re.compile(r"(?<![\w.\-/])" + re.escape(c.OPT_ML) + r"(?![\w.\-])")


def opt_ml_root() -> str:
    """The real directory that stands for /opt/ml.

    $SSM_OPT_ML_ROOT when set (our local backend without a mount namespace); /opt/ml when it
    holds a job (SageMaker); otherwise a container emulation that placed the job elsewhere
    is recognised by where it unpacked our code (``<root>/code`` for training,
    ``<root>/processing/work`` for processing) or by the SM_* directories it set.
    """
    root = os.environ.get(c.ENV_OPT_ML_ROOT, "").strip()
    if root:
        return root.rstrip("/")
    # what SageMaker writes before the container starts (training / processing)
    if os.path.isfile(c.RESOURCE_CONFIG_FILE) or os.path.isfile(c.PROCESSING_CONFIG_FILE):
        return c.OPT_ML
    inferred = _inferred_root()
    return inferred or c.OPT_ML


def in_job() -> bool:
    """True when a job's /opt/ml was found (see opt_ml_root), not just assumed."""
    return bool(
        os.environ.get(c.ENV_OPT_ML_ROOT, "").strip()
        or os.path.isfile(c.RESOURCE_CONFIG_FILE)
        or os.path.isfile(c.PROCESSING_CONFIG_FILE)
        or _inferred_root()
    )


def _inferred_root() -> str | None:
    bundle = Path(__file__).resolve().parent.parent  # the code dir the job unpacked us into
    if bundle.name == "code" and (bundle.parent / "input").is_dir():
        return str(bundle.parent)
    if bundle.name == "work" and bundle.parent.name == "processing":
        return str(bundle.parent.parent)
    for var, up in ((c.ENV_INPUT_DIR, 1), (c.ENV_MODEL_DIR, 1), (c.ENV_OUTPUT_DATA_DIR, 2)):
        value = os.environ.get(var, "").rstrip("/")
        if value and not value.startswith(c.OPT_ML + "/"):
            path = Path(value)
            for _ in range(up):
                path = path.parent
            return str(path)
    return None


def reroot(path: str, root: str | None = None) -> str:
    """Map an /opt/ml path onto the real root; other paths are returned unchanged."""
    real = root if root is not None else opt_ml_root()
    if path == c.OPT_ML or path.startswith(c.OPT_ML + "/"):
        return real + path[len(c.OPT_ML) :]
    return path


def reroot_text(text: str, root: str | None = None) -> str:
    """Re-root every /opt/ml path occurring in free text, e.g. a shell command."""
    real = root if root is not None else opt_ml_root()
    if real == c.OPT_ML:
        return text
    return _OPT_ML_IN_TEXT.sub(lambda _m: real, text)


def read_json(path: str) -> Any:
    """The decoded JSON file at an /opt/ml path (re-rooted), or None when it is absent/bad."""
    try:
        return json.loads(Path(reroot(path)).read_text())
    except (OSError, ValueError):
        return None


def channel_env_name(channel: str) -> str:
    """SM_CHANNEL_<NAME>: the toolkit upper-cases the channel name (environment.py)."""
    return c.ENV_CHANNEL_PREFIX + channel.upper()


def count_gpus() -> int:
    """GPUs visible on this instance (the NVIDIA driver lists one entry per GPU)."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def is_processing() -> bool:
    """True inside a processing job: it has processingjobconfig.json, no training config."""
    return (
        Path(reroot(c.PROCESSING_CONFIG_FILE)).is_file()
        and not Path(reroot(c.RESOURCE_CONFIG_FILE)).is_file()
    )


def processing_inputs() -> dict[str, str]:
    """User ProcessingInputs (name -> re-rooted LocalPath) from processingjobconfig.json.

    The inputs ssm_rules reserves for itself (code bundle, task description, state) are left
    out: they are not the rule's channels.
    """
    config = read_json(c.PROCESSING_CONFIG_FILE) or {}
    reserved = {c.PROCESSING_CODE_INPUT, c.PROCESSING_TASK_INPUT, c.PROCESSING_STATE_INPUT}
    inputs: dict[str, str] = {}
    for item in config.get("ProcessingInputs") or []:
        name = item.get("InputName", "")
        source = item.get("S3Input") or item.get("DatasetDefinition") or {}
        if name and name not in reserved and source.get("LocalPath"):
            inputs[name] = reroot(source["LocalPath"])
    return inputs
