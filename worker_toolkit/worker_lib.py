"""The job's view of its environment: a superset of simple-sagemaker's ``worker_lib``.

A worker written for simple-sagemaker runs unmodified::

    from worker_toolkit import worker_lib
    worker_config = worker_lib.WorkerConfig()
    open(f"{worker_config.instance_state}/x", "w").write(str(worker_config.hps["task"]))

Every value comes from the environment that SageMaker (sagemaker-training-toolkit's ``SM_*``
variables) and our launcher (``SSM_*``) set, with fallbacks to the JSON files SageMaker writes
under /opt/ml (re-rooted onto $SSM_OPT_ML_ROOT), so it also works when a program is started
without the launcher. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from . import _common as u
from . import contract as c

logger = logging.getLogger(__name__)

__all__ = [
    "WorkerConfig",
    "initMultiWorkersState",
    "markCompleted",
    "parseArgs",
    "setDebugLevel",
]


# --- reading the environment ---------------------------------------------------------------
def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _env_json(name: str) -> Any:
    raw = _env(name)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _env_path(name: str, default: str) -> str:
    """A path variable, re-rooted: the local backend may hand out /opt/ml paths."""
    return u.reroot(_env(name) or default)


def _env_int(name: str, default: int) -> int:
    try:
        return int(_env(name) or default)
    except ValueError:
        return default


def _job_type() -> str:
    return "processing" if u.is_processing() else "training"


def _job_name() -> str:
    # SageMaker sets TRAINING_JOB_NAME in training containers; simple-sagemaker documented
    # SAGEMAKER_JOB_NAME; processing containers only have it in processingjobconfig.json.
    for name in (c.ENV_JOB_NAME, c.ENV_TRAINING_JOB_NAME, c.ENV_PROCESSING_JOB_NAME):
        if _env(name):
            return str(_env(name))
    config = u.read_json(c.PROCESSING_CONFIG_FILE) or {}
    return str(config.get("ProcessingJobName", ""))


def _resource_config() -> dict[str, Any]:
    for value in (
        _env_json(c.ENV_RESOURCE_CONFIG),
        u.read_json(c.RESOURCE_CONFIG_FILE),
        u.read_json(c.PROCESSING_RESOURCE_CONFIG_FILE),
    ):
        if isinstance(value, dict) and value:
            return value
    return {}


def _input_data_config() -> dict[str, Any]:
    for value in (_env_json(c.ENV_INPUT_DATA_CONFIG), u.read_json(c.INPUT_DATA_CONFIG_FILE)):
        if isinstance(value, dict):
            return value
    return {}


def _channels() -> dict[str, str]:
    """Channel name -> local path (SM_CHANNELS + SM_CHANNEL_<NAME>, else the config files)."""
    processing = u.processing_inputs() if u.is_processing() else {}
    names = _env_json(c.ENV_CHANNELS)
    if not isinstance(names, list):
        names = sorted(processing) if processing else sorted(_input_data_config())
    channels: dict[str, str] = {}
    for name in names:
        default = processing.get(name) or f"{c.INPUT_DATA_DIR}/{name}"
        channels[str(name)] = _env_path(u.channel_env_name(str(name)), default)
    return channels


def _hps() -> dict[str, Any]:
    """User hyperparameters, decoded (numbers are numbers), without sagemaker_/ssm_ keys."""
    hps = _env_json(c.ENV_HPS)
    if not isinstance(hps, dict):
        raw = u.read_json(c.HYPERPARAMETERS_FILE)
        if isinstance(raw, dict):
            hps = {k: u.decode_hp(v) for k, v in raw.items()}
        else:
            task = u.read_json(f"{c.PROCESSING_TASK_DIR}/{c.TASK_FILE_NAME}") or {}
            hps = task.get("hps") or {}
    return u.user_hps(hps)


def _may_create(path: str) -> bool:
    """State directories are created in a job, or anywhere SSM_STATE points outside /opt/ml;
    never in a machine's /opt/ml merely assumed because no job was found."""
    return u.in_job() or not (path == c.OPT_ML or path.startswith(c.OPT_ML + "/"))


def _default_state_dir(job_type: str) -> str:
    return c.PROCESSING_STATE_DIR if job_type == "processing" else c.CHECKPOINT_DIR


# --- the configuration ---------------------------------------------------------------------
class WorkerConfig:
    """The job configuration: paths, hyperparameters, hosts (simple-sagemaker's ``WorkerConfig``).

    Fields (environment variable in brackets): ``job_name`` [SAGEMAKER_JOB_NAME], ``channels``
    [SM_CHANNELS], ``channel_<name>`` [SM_CHANNEL_<NAME>] for every channel (``channel_data``
    and ``channel_model`` always exist, "" when absent), ``hps`` [SM_HPS], ``state``
    [SSM_STATE], ``instance_state`` [SSM_INSTANCE_STATE], ``output_data_dir``
    [SM_OUTPUT_DATA_DIR], ``model_dir`` [SM_MODEL_DIR], ``tensorboard_dir``
    [SSM_TENSORBOARD_DIR], ``num_cpus``, ``num_gpus``, ``current_host``, ``hosts``,
    ``network_interface_name``, ``num_nodes`` [SSM_NUM_NODES], ``host_rank`` [SSM_HOST_RANK];
    extras: ``per_instance_state``, ``input_dir``, ``input_config_dir``, ``output_dir``,
    ``input_data_config``, ``resource_config``, ``current_instance_type``, ``job_type``,
    ``is_main_host``, ``channel_paths`` (name -> path).
    """

    def __init__(
        self,
        per_instance_state: bool = True,
        set_debug_level: bool = True,
        update_argv: bool = True,
    ) -> None:
        if set_debug_level:
            self.setDebugLevel()
        self.parseArgs()
        self.per_instance_state = False
        if per_instance_state:
            self.initMultiWorkersState()
        if update_argv:
            self._updateArgv()
        logger.info("Worker config: %s", self.config)

    # -- simple-sagemaker's methods --
    def setDebugLevel(self) -> None:
        """Root logger level from SM_LOG_LEVEL (the estimator's container_log_level)."""
        setDebugLevel()

    def parseArgs(self) -> None:
        """(Re)read the whole configuration from the environment."""
        job_type = _job_type()
        resource = _resource_config()
        self.job_type = job_type
        self.job_name = _job_name()
        self._set_channels(_channels())
        self.hps = _hps()
        self._set_paths(job_type)
        self._set_hosts(resource)
        self.input_data_config = _input_data_config()
        self.resource_config = resource
        self.current_instance_type = _env(c.ENV_CURRENT_INSTANCE_TYPE) or resource.get(
            "current_instance_type", ""
        )
        # Like simple-sagemaker: publish the derived values for shell sub-processes.
        os.environ[c.ENV_STATE] = self.state
        os.environ[c.ENV_NUM_NODES] = str(self.num_nodes)
        os.environ[c.ENV_HOST_RANK] = str(self.host_rank)

    def initMultiWorkersState(self) -> None:
        """Use (and create) ``<state>/<current_host>`` as this instance's state directory.

        State directories of all instances are merged after the job, so each instance writes
        below its own host name to avoid collisions (simple-sagemaker behaviour). Unlike
        simple-sagemaker we do not delete the other hosts' sub-directories: on a shared state
        directory (the local backend runs hosts as processes) that would destroy their work.
        """
        if self.per_instance_state:
            return
        self.per_instance_state = True
        self.instance_state = _instance_state_dir(self.state, self.current_host)

    def markCompleted(self) -> None:
        """Kept for old workers; does nothing.

        simple-sagemaker marked completion with a file in the state; here completion is the
        program's exit code (0 = success), which SageMaker turns into the job status.
        """

    def updateNamespace(self, namespace: Any, fields_mapping: dict[str, str]) -> None:
        """Copy configuration fields into another namespace, e.g. {"num_cpus": "num_workers"}."""
        for config_field, ns_field in fields_mapping.items():
            setattr(namespace, ns_field, getattr(self, config_field))

    @property
    def config(self) -> argparse.Namespace:
        """All public fields as a namespace (simple-sagemaker kept them in ``.config``)."""
        return argparse.Namespace(**{k: v for k, v in vars(self).items() if not k.startswith("_")})

    def __getattr__(self, item: str) -> Any:
        # Only reached for missing attributes: name the channels that do exist.
        if item.startswith("channel_"):
            raise AttributeError(
                f"no input channel {item[len('channel_') :]!r}; channels: {self.channels}"
            )
        raise AttributeError(item)

    def __repr__(self) -> str:
        return f"WorkerConfig({self.config})"

    # -- helpers --
    def _set_channels(self, channels: dict[str, str]) -> None:
        self.channels = list(channels)
        self.channel_paths = dict(channels)
        # simple-sagemaker always defined these two ("" when the channel is absent).
        self.channel_data = channels.get("data", "")
        self.channel_model = channels.get("model", "")
        for name, path in channels.items():
            setattr(self, f"channel_{name}", path)

    def _set_paths(self, job_type: str) -> None:
        processing = job_type == "processing"
        self.model_dir = _env_path(
            c.ENV_MODEL_DIR, c.PROCESSING_MODEL_DIR if processing else c.MODEL_DIR
        )
        self.output_data_dir = _env_path(
            c.ENV_OUTPUT_DATA_DIR, c.PROCESSING_OUTPUT_DATA_DIR if processing else c.OUTPUT_DATA_DIR
        )
        self.output_dir = _env_path(c.ENV_OUTPUT_DIR, c.OUTPUT_DIR)
        self.input_dir = _env_path(
            c.ENV_INPUT_DIR, c.PROCESSING_INPUT_DIR if processing else c.INPUT_DIR
        )
        self.input_config_dir = _env_path(
            c.ENV_INPUT_CONFIG_DIR, f"{c.OPT_ML}/config" if processing else c.INPUT_CONFIG_DIR
        )
        self.tensorboard_dir = _env_path(c.ENV_TENSORBOARD_DIR, c.TENSORBOARD_DIR)
        self.state = _env_path(c.ENV_STATE, _default_state_dir(job_type))
        if _may_create(self.state):
            Path(self.state).mkdir(parents=True, exist_ok=True)
        # Without per-instance state the instance writes to the shared state directory.
        self.instance_state = self.state

    def _set_hosts(self, resource: dict[str, Any]) -> None:
        self.current_host = _env(c.ENV_CURRENT_HOST) or resource.get("current_host") or "algo-1"
        hosts = _env_json(c.ENV_HOSTS) or resource.get("hosts") or [self.current_host]
        self.hosts = [str(h) for h in hosts]
        self.network_interface_name = _env(c.ENV_NETWORK_INTERFACE_NAME) or resource.get(
            "network_interface_name", "eth0"
        )
        self.num_cpus = _env_int(c.ENV_NUM_CPUS, os.cpu_count() or 1)
        self.num_gpus = _env_int(c.ENV_NUM_GPUS, u.count_gpus())
        self.num_nodes = _env_int(c.ENV_NUM_NODES, len(self.hosts))
        rank = self.hosts.index(self.current_host) if self.current_host in self.hosts else 0
        self.host_rank = _env_int(c.ENV_HOST_RANK, rank)
        self.is_main_host = self.host_rank == 0

    def _updateArgv(self) -> bool:
        """simple-sagemaker's ``--external_hps "<args>"``: splice those args into sys.argv."""
        if "--external_hps" not in sys.argv[:-1]:
            return False
        idx = sys.argv.index("--external_hps")
        external = shlex.split(sys.argv[idx + 1].strip('"'))
        sys.argv = sys.argv[:1] + external + sys.argv[1:idx] + sys.argv[idx + 2 :]
        logger.info("sys.argv was updated to: %s", sys.argv)
        return True


# --- the old module-level API (simple-sagemaker <= 0.9: ``args = worker_lib.parseArgs()``) -----
def setDebugLevel() -> None:
    """Set the root logger level from SM_LOG_LEVEL (default INFO)."""
    logging.getLogger().setLevel(_env_int(c.ENV_LOG_LEVEL, logging.INFO))


def parseArgs() -> argparse.Namespace:
    """The configuration as a namespace; channels also as ``input_<name>`` (old name)."""
    config = WorkerConfig(per_instance_state=False, set_debug_level=False, update_argv=False)
    args = config.config
    for name, path in config.channel_paths.items():
        if not hasattr(args, f"input_{name}"):
            setattr(args, f"input_{name}", path)
    return args


def initMultiWorkersState(args: Any) -> str:
    """Create ``<state>/<current_host>``, store it in ``args.instance_state``, return it."""
    args.instance_state = _instance_state_dir(args.state, args.current_host)
    return args.instance_state


def _instance_state_dir(state: str, host: str) -> str:
    """``<state>/<host>``, created (inside a job) and exported as SSM_INSTANCE_STATE."""
    path = Path(state) / host
    if not path.is_dir() and _may_create(str(path)):
        logger.info("Creating instance specific state dir")
        path.mkdir(parents=True, exist_ok=True)
    os.environ[c.ENV_INSTANCE_STATE] = str(path)
    return str(path)


def markCompleted(args: Any = None) -> None:
    """Kept for old workers; does nothing: completion is the exit code (0 = completed)."""
