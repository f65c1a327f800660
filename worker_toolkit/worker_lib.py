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
import shutil
import sys
from pathlib import Path
from typing import Any

from . import _common as u
from . import contract as c
from . import hyperparameters as hp

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
            hps = hp.decode(raw)
        else:
            task = u.read_json(f"{c.PROCESSING_TASK_DIR}/{c.TASK_FILE_NAME}") or {}
            hps = task.get("hps") or {}
    return hp.user_hps(hps)


def _may_create(path: str) -> bool:
    """State directories are created in a job, or anywhere SSM_STATE points outside /opt/ml;
    never in a machine's /opt/ml merely assumed because no job was found."""
    return u.in_job() or not (path == c.OPT_ML or path.startswith(c.OPT_ML + "/"))


def _default_state_dir(job_type: str) -> str:
    return c.PROCESSING_STATE_DIR if job_type == "processing" else c.CHECKPOINT_DIR


# --- command-line overrides -------------------------------------------------------------
# simple-sagemaker's parseArgs read every field from the environment *or* from the command
# line (argparse, parse_known_args): ``--model_dir /x`` among a script's hyperparameters wins
# over SM_MODEL_DIR. Same option spellings (some with "-", some with "_"), same types.
_ARGV_OPTIONS: tuple[tuple[str, str, Any], ...] = (
    ("--model_dir", "model_dir", str),
    ("--output-data-dir", "output_data_dir", str),
    ("--output-dir", "output_dir", str),
    ("--input-dir", "input_dir", str),
    ("--input-config-dir", "input_config_dir", str),
    ("--input-data-config", "input_data_config", str),
    ("--hps", "hps", json.loads),
    ("--channels", "channels", json.loads),
    ("--channel-data", "channel_data", str),
    ("--channel-model", "channel_model", str),
    ("--current_host", "current_host", str),
    ("--hosts", "hosts", json.loads),
    ("--num_gpus", "num_gpus", int),
    ("--num_cpus", "num_cpus", int),
    ("--network_interface_name", "network_interface_name", str),
    ("--job_name", "job_name", str),
    ("--resource-config", "resource_config", str),
)


def _argv_overrides(argv: list[str]) -> dict[str, Any]:
    """The fields given on the command line (unknown args, the user's own, are left alone).

    Unlike the original, abbreviations are off: a user hyperparameter ``--host 2`` must not
    be read as an ambiguous prefix of ``--hosts``/``--host_rank`` and end the program."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag, dest, kind in _ARGV_OPTIONS:
        parser.add_argument(flag, dest=dest, type=kind, default=None)
    known, _rest = parser.parse_known_args(argv)
    return {k: v for k, v in vars(known).items() if v is not None}


# --- the configuration ---------------------------------------------------------------------
class WorkerConfig:
    """The job configuration: paths, hyperparameters, hosts (simple-sagemaker's ``WorkerConfig``).

    Every field lives in ``self.config`` (an ``argparse.Namespace``, as in simple-sagemaker)
    and attribute access falls back to it, also through an explicit
    ``worker_config.__getattr__("channel_data")``. Fields (environment variable in brackets;
    a ``--flag`` on the command line wins, as in the original): ``job_name``
    [SAGEMAKER_JOB_NAME], ``channels`` [SM_CHANNELS], ``channel_<name>`` [SM_CHANNEL_<NAME>]
    for every channel (``channel_data`` and ``channel_model`` always exist, "" when absent),
    ``hps`` [SM_HPS], ``state`` [SSM_STATE], ``instance_state`` [SSM_INSTANCE_STATE],
    ``output_data_dir`` [SM_OUTPUT_DATA_DIR], ``model_dir`` [SM_MODEL_DIR], ``output_dir``
    [SM_OUTPUT_DIR], ``input_dir`` [SM_INPUT_DIR], ``input_config_dir`` [SM_INPUT_CONFIG_DIR],
    ``input_data_config`` [SM_INPUT_DATA_CONFIG] and ``resource_config`` [SM_RESOURCE_CONFIG]
    (raw JSON strings, as the original), ``tensorboard_dir`` [SSM_TENSORBOARD_DIR],
    ``num_cpus``, ``num_gpus``, ``current_host``, ``hosts``, ``network_interface_name``,
    ``num_nodes`` [SSM_NUM_NODES], ``host_rank`` [SSM_HOST_RANK]; extras: ``job_type``,
    ``current_instance_type``, ``is_main_host``, ``channel_paths`` (name -> path),
    ``output`` [SSM_OUTPUT, the original's processing output directory].
    ``per_instance_state`` is an attribute of the object itself.
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
        # As the original: smdebug's logger hides everything else at its default level.
        os.environ["SMDEBUG_LOG_LEVEL"] = "warning"
        logger.info("Worker config: %s", self.config)

    def __getattr__(self, item: str) -> Any:
        """Fall back (from __getattribute__) to the configuration, like simple-sagemaker."""
        config = self.__dict__.get("config")
        if config is not None and item in vars(config):
            return vars(config)[item]
        if item.startswith("channel_") and config is not None:
            raise AttributeError(
                f"no input channel {item[len('channel_') :]!r}; channels: {config.channels}"
            )
        raise AttributeError(item)

    def __repr__(self) -> str:
        return f"WorkerConfig({self.config})"

    # -- simple-sagemaker's methods --
    def setDebugLevel(self) -> None:
        """Root logger level from SM_LOG_LEVEL (the estimator's container_log_level)."""
        setDebugLevel()

    def parseArgs(self) -> None:
        """(Re)read the whole configuration: the environment, then the command line."""
        job_type = _job_type()
        resource = _resource_config()
        cfg = argparse.Namespace()
        cfg.job_type = job_type
        cfg.job_name = _job_name()
        _set_paths(cfg, job_type)
        cfg.input_data_config = _env(c.ENV_INPUT_DATA_CONFIG) or hp.env_value(_input_data_config())
        cfg.resource_config = _env(c.ENV_RESOURCE_CONFIG) or hp.env_value(resource)
        cfg.hps = _hps()
        channels = _channels()
        cfg.channels = list(channels)
        # simple-sagemaker always defined these two ("" when the channel is absent).
        cfg.channel_data = channels.get("data", "")
        cfg.channel_model = channels.get("model", "")
        _set_hosts(cfg, resource)
        cfg.current_instance_type = _env(c.ENV_CURRENT_INSTANCE_TYPE) or resource.get(
            "current_instance_type", ""
        )
        for key, value in _argv_overrides(sys.argv[1:]).items():
            setattr(cfg, key, u.reroot(value) if key in _PATH_FIELDS else value)
        # The original: SM_CHANNEL_<NAME> of every listed channel wins over --channel-data.
        cfg.channel_paths = {}
        for name in cfg.channels:
            path = channels.get(name) or u.reroot(_env(u.channel_env_name(str(name))) or "")
            if path:
                cfg.channel_paths[str(name)] = path
                setattr(cfg, f"channel_{name}", path)
        _set_rank(cfg)
        self.config = cfg
        if _may_create(cfg.state):
            Path(cfg.state).mkdir(parents=True, exist_ok=True)
        # Like simple-sagemaker: publish the derived values for shell sub-processes.
        os.environ[c.ENV_STATE] = cfg.state
        os.environ[c.ENV_NUM_NODES] = str(cfg.num_nodes)
        os.environ[c.ENV_HOST_RANK] = str(cfg.host_rank)
        os.environ[c.ENV_TENSORBOARD_DIR] = cfg.tensorboard_dir
        if job_type == "processing":
            self._initProcessingEnvVars()

    def initMultiWorkersState(self) -> None:
        """Use (and create) ``<state>/<current_host>`` as this instance's state directory.

        State directories of all instances are merged after the job, so each instance writes
        below its own host name to avoid collisions; the other instances' sub-directories
        (copies restored from the task state) are deleted, as simple-sagemaker did, so this
        host never holds, lists or re-uploads another host's files.
        """
        if self.per_instance_state:
            return
        self.per_instance_state = True
        self._deleteOtherInstancesState()
        self.config.instance_state = self._getInstanceStatePath()
        os.environ[c.ENV_INSTANCE_STATE] = self.config.instance_state

    def markCompleted(self) -> None:
        """Kept for old workers; does nothing.

        simple-sagemaker marked completion with a file in the state; here completion is the
        program's exit code (0 = success), which SageMaker turns into the job status.
        """

    def updateNamespace(self, namespace: Any, fields_mapping: dict[str, str]) -> None:
        """Copy configuration fields into another namespace, e.g. {"num_cpus": "num_workers"}."""
        for config_field, ns_field in fields_mapping.items():
            setattr(namespace, ns_field, getattr(self.config, config_field))

    # -- simple-sagemaker's helpers (same names) --
    def _getInstanceStatePath(self) -> str:
        if self.per_instance_state:
            return _instance_state_dir(self.config.state, self.config.current_host)
        return self.config.state

    def _deleteOtherInstancesState(self) -> None:
        # Only inside a job: each host's state directory is its own there (SageMaker: one
        # per instance; the local backend: one per host sandbox). Outside a job, SSM_STATE
        # may be any shared directory: nothing is deleted.
        if not u.in_job():
            return
        state = Path(self.config.state)
        others = [p for p in state.glob("algo-*") if p.is_dir() and p.name != self.current_host]
        if others:
            logger.info("Deleting other instances' state")
        for path in others:
            shutil.rmtree(path, ignore_errors=True)

    def _initProcessingEnvVars(self) -> None:
        """Export what a processing job has only in its config files (the original's names)."""
        os.environ.setdefault(c.ENV_JOB_NAME, self.config.job_name)
        os.environ.setdefault(c.ENV_HOSTS, json.dumps(self.config.hosts))
        os.environ.setdefault(c.ENV_CURRENT_HOST, self.config.current_host)

    def _updateArgv(self) -> bool:
        """simple-sagemaker's ``--external_hps "<args>"``: splice those args into sys.argv."""
        if "--external_hps" not in sys.argv[:-1]:
            return False
        idx = sys.argv.index("--external_hps")
        external = shlex.split(sys.argv[idx + 1].strip('"'))
        sys.argv = sys.argv[:1] + external + sys.argv[1:idx] + sys.argv[idx + 2 :]
        logger.info("sys.argv was updated to: %s", sys.argv)
        return True


_PATH_FIELDS = {"model_dir", "output_data_dir", "output_dir", "input_dir", "input_config_dir"}


def _set_paths(cfg: argparse.Namespace, job_type: str) -> None:
    processing = job_type == "processing"
    cfg.model_dir = _env_path(
        c.ENV_MODEL_DIR, c.PROCESSING_MODEL_DIR if processing else c.MODEL_DIR
    )
    cfg.output_data_dir = _env_path(
        c.ENV_OUTPUT_DATA_DIR, c.PROCESSING_OUTPUT_DATA_DIR if processing else c.OUTPUT_DATA_DIR
    )
    # simple-sagemaker's processing jobs had SSM_OUTPUT (their EndOfJob output directory).
    cfg.output = _env_path(c.ENV_OUTPUT, cfg.output_data_dir)
    cfg.output_dir = _env_path(c.ENV_OUTPUT_DIR, c.OUTPUT_DIR)
    cfg.input_dir = _env_path(
        c.ENV_INPUT_DIR, c.PROCESSING_INPUT_DIR if processing else c.INPUT_DIR
    )
    cfg.input_config_dir = _env_path(
        c.ENV_INPUT_CONFIG_DIR, f"{c.OPT_ML}/config" if processing else c.INPUT_CONFIG_DIR
    )
    cfg.tensorboard_dir = _env_path(c.ENV_TENSORBOARD_DIR, c.TENSORBOARD_DIR)
    cfg.state = _env_path(c.ENV_STATE, _default_state_dir(job_type))
    # Without per-instance state the instance writes to the shared state directory.
    cfg.instance_state = cfg.state


def _set_hosts(cfg: argparse.Namespace, resource: dict[str, Any]) -> None:
    cfg.current_host = _env(c.ENV_CURRENT_HOST) or resource.get("current_host") or "algo-1"
    hosts = _env_json(c.ENV_HOSTS) or resource.get("hosts") or [cfg.current_host]
    cfg.hosts = [str(h) for h in hosts]
    cfg.network_interface_name = _env(c.ENV_NETWORK_INTERFACE_NAME) or resource.get(
        "network_interface_name", "eth0"
    )
    cfg.num_cpus = _env_int(c.ENV_NUM_CPUS, os.cpu_count() or 1)
    cfg.num_gpus = _env_int(c.ENV_NUM_GPUS, u.count_gpus())


def _set_rank(cfg: argparse.Namespace) -> None:
    """num_nodes / host_rank from the hosts (after command-line overrides), as the original
    (-1 without hosts)."""
    if cfg.hosts:
        cfg.num_nodes = len(cfg.hosts)
        cfg.host_rank = cfg.hosts.index(cfg.current_host) if cfg.current_host in cfg.hosts else 0
    else:
        cfg.num_nodes = cfg.host_rank = -1
    cfg.is_main_host = cfg.host_rank in (0, -1)


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
