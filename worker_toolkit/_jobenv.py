"""The environment the launcher gives the user program.

On a framework image, sagemaker-training-toolkit has already exported the SM_* variables; on a
bare image, a processing job, or the local backend some are missing. Every variable is only set
when absent (setdefault), from the files SageMaker writes under /opt/ml, so the toolkit's values
win wherever it ran; except those where the toolkit described the launcher (its entry point,
args and hyperparameters with ``ssm_task``): they describe the user program instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from . import _common as u
from . import contract as c
from . import hyperparameters as hp
from .task import MemberTask, TaskDescription

TYPE_CHECKING = False  # typing is not imported on the launcher's path
if TYPE_CHECKING:
    from typing import Any

# Sub-directory of worker_toolkit holding the ``task_toolkit`` shim for pre-0.9 workers.
COMPAT_DIR = Path(__file__).resolve().parent / "_compat"


def _training_env(env: dict[str, str], root: str, task: TaskDescription) -> None:
    resource = u.read_json(c.RESOURCE_CONFIG_FILE) or {}
    _host_env(env, resource)
    env.setdefault(c.ENV_RESOURCE_CONFIG, hp.env_value(resource))
    if isinstance(task, MemberTask):  # a group member: its own, from the task (the job's
        hps = hp.user_hps(task.hps)  # hyperparameters are ssm_rules')
    else:
        raw = u.read_json(c.HYPERPARAMETERS_FILE) or {}
        hps = hp.user_hps(hp.decode(raw))
    _hps_env(env, hps)
    data_config = u.read_json(c.INPUT_DATA_CONFIG_FILE) or {}
    if isinstance(task, MemberTask):  # its channels' entries, under its own names
        _channel_env(env, dict(task.channels))
        data_config = _member_data_config(task, data_config)
    else:
        _channel_env(env, {n: u.reroot(f"{c.INPUT_DATA_DIR}/{n}", root) for n in data_config})
    env.setdefault(c.ENV_INPUT_DATA_CONFIG, hp.env_value(data_config))
    env.setdefault(c.ENV_MODEL_DIR, c.MODEL_DIR)
    env.setdefault(c.ENV_OUTPUT_DATA_DIR, c.OUTPUT_DATA_DIR)
    env.setdefault(c.ENV_INPUT_DIR, c.INPUT_DIR)
    env.setdefault(c.ENV_INPUT_CONFIG_DIR, c.INPUT_CONFIG_DIR)
    # TRAINING_JOB_NAME is what SageMaker sets; simple-sagemaker workers read SAGEMAKER_JOB_NAME.
    env.setdefault(c.ENV_JOB_NAME, env.get(c.ENV_TRAINING_JOB_NAME, ""))


def _processing_env(env: dict[str, str], task: TaskDescription) -> None:
    resource = u.read_json(c.PROCESSING_RESOURCE_CONFIG_FILE) or {}
    _host_env(env, resource)
    env.setdefault(c.ENV_RESOURCE_CONFIG, hp.env_value(resource))
    _hps_env(env, hp.user_hps(task.hps))
    # a group member sees its own channels (linked to the job's by the launcher)
    _channel_env(
        env, dict(task.channels) if isinstance(task, MemberTask) else u.processing_inputs()
    )
    env.setdefault(c.ENV_MODEL_DIR, c.PROCESSING_MODEL_DIR)
    env.setdefault(c.ENV_OUTPUT_DATA_DIR, c.PROCESSING_OUTPUT_DATA_DIR)
    env.setdefault(c.ENV_INPUT_DIR, c.PROCESSING_INPUT_DIR)
    env.setdefault(c.ENV_INPUT_CONFIG_DIR, f"{c.OPT_ML}/config")
    config = u.read_json(c.PROCESSING_CONFIG_FILE) or {}
    name = env.get(c.ENV_PROCESSING_JOB_NAME) or config.get("ProcessingJobName", "")
    env.setdefault(c.ENV_JOB_NAME, name)


def _member_data_config(task: MemberTask, data_config: dict[str, Any]) -> dict[str, Any]:
    """inputdataconfig.json as the member would see it alone: each of its channels linked to
    one of the job's gets that channel's entry; one another member produced, a File entry."""
    job_channel = {path: Path(target).name for path, target in task.links}
    file_entry = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
    return {
        name: data_config.get(job_channel.get(path, ""), file_entry)
        for name, path in task.channels.items()
    }


def _host_env(env: dict[str, str], resource: dict[str, Any]) -> None:
    current = resource.get("current_host") or "algo-1"
    env.setdefault(c.ENV_CURRENT_HOST, current)
    env.setdefault(c.ENV_HOSTS, hp.env_value(resource.get("hosts") or [current]))
    env.setdefault(c.ENV_NETWORK_INTERFACE_NAME, resource.get("network_interface_name", "eth0"))
    if resource.get("current_instance_type"):
        env.setdefault(c.ENV_CURRENT_INSTANCE_TYPE, resource["current_instance_type"])


def _hps_env(env: dict[str, str], hps: dict[str, Any]) -> None:
    # The toolkit's SM_HPS also holds our ssm_task: the program sees its own hps only.
    env[c.ENV_HPS] = hp.env_value(hps)
    for key in [k for k in env if k.startswith("SM_HP_") and hp.is_reserved(k[6:].lower())]:
        del env[key]
    for key, value in hps.items():  # the toolkit also exports SM_HP_<KEY>
        env.setdefault(f"SM_HP_{key.upper()}", hp.env_value(value))


def _program_env(env: dict[str, str], task: TaskDescription, args: list[str]) -> None:
    """The toolkit described its entry point, the launcher: describe the program instead."""
    env[c.ENV_USER_ARGS] = hp.env_value(args)
    updates: dict[str, Any] = {"user_args": args, "hyperparameters": json.loads(env[c.ENV_HPS])}
    if task.kind == "script":
        program = task.program
        module = program[: -len(".py")] if program.endswith(".py") else program
        env[c.ENV_USER_ENTRY_POINT] = program
        env[c.ENV_MODULE_NAME] = module
        updates.update(user_entry_point=program, module_name=module)
    try:
        training_env = json.loads(env.get(c.ENV_TRAINING_ENV) or "null")
    except ValueError:
        training_env = None
    if isinstance(training_env, dict):
        training_env.update(updates)
        env[c.ENV_TRAINING_ENV] = hp.env_value(training_env)


def _channel_env(env: dict[str, str], channels: dict[str, str]) -> None:
    env.setdefault(c.ENV_CHANNELS, hp.env_value(sorted(channels)))
    for name, path in channels.items():
        env.setdefault(u.channel_env_name(name), path)


def _ssm_env(env: dict[str, str], task: TaskDescription) -> None:
    default_state = c.PROCESSING_STATE_DIR if task.job_type == "processing" else c.CHECKPOINT_DIR
    state = u.reroot(env.get(c.ENV_STATE) or task.state_dir or default_state)
    env[c.ENV_STATE] = state
    hosts = json.loads(env[c.ENV_HOSTS])
    current = env[c.ENV_CURRENT_HOST]
    env.setdefault(c.ENV_INSTANCE_STATE, f"{state}/{current}")
    env.setdefault(c.ENV_TENSORBOARD_DIR, c.TENSORBOARD_DIR)
    # simple-sagemaker's processing jobs had SSM_OUTPUT (/opt/ml/processing/output, uploaded
    # at the end): a shell worker writes `$SSM_OUTPUT/x`. Set in training jobs too.
    env.setdefault(c.ENV_OUTPUT, env[c.ENV_OUTPUT_DATA_DIR])
    # simple-sagemaker's WorkerConfig set this (smdebug's logger otherwise hides the rest);
    # its shell tasks ran under a WorkerConfig, so shell commands had it too.
    env.setdefault("SMDEBUG_LOG_LEVEL", "warning")
    env.setdefault(c.ENV_NUM_NODES, str(len(hosts)))
    env.setdefault(c.ENV_HOST_RANK, str(hosts.index(current) if current in hosts else 0))
    # The rule's named inputs/outputs as in-job paths, for scripts and shell commands alike.
    for name, path in task.inputs.items():
        env.setdefault(c.ENV_INPUT_PREFIX + _env_suffix(name), path)
    for name, path in task.outputs.items():
        env.setdefault(c.ENV_OUTPUT_PREFIX + _env_suffix(name), path)


def _env_suffix(name: str) -> str:
    """<NAME> of SSM_INPUT_<NAME>: upper case, like SM_CHANNEL_<NAME>; non-alnum become "_"."""
    return "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in name.upper())


def _reroot_env(env: dict[str, str], root: str) -> None:
    """Move every /opt/ml path held by an SM_*/SSM_* variable onto the real root."""
    for key, value in env.items():
        if key.startswith(("SM_", "SSM_")) and key != c.ENV_OPT_ML_ROOT:
            env[key] = u.reroot(value, root)


def build_env(
    task: TaskDescription,
    root: str,
    code_dir: Path,
    base: Mapping[str, str],
    args: list[str] | None = None,
) -> dict[str, str]:
    """The complete environment of the user program, whose args are ``args``."""
    env = dict(base)
    if isinstance(task, MemberTask):  # a group member sees its own channels, not the job's
        own = (c.ENV_CHANNELS, c.ENV_INPUT_DATA_CONFIG)
        for key in [k for k in env if k.startswith(c.ENV_CHANNEL_PREFIX) or k in own]:
            del env[key]
    if task.job_type == "processing":
        _processing_env(env, task)
    else:
        _training_env(env, root, task)
    env.setdefault(c.ENV_OUTPUT_DIR, c.OUTPUT_DIR)
    env.setdefault(c.ENV_NUM_CPUS, str(os.cpu_count() or 1))
    env.setdefault(c.ENV_NUM_GPUS, str(u.count_gpus()))
    _program_env(env, task, list(args or []))
    env.setdefault(c.ENV_MODULE_DIR, str(code_dir))
    _ssm_env(env, task)
    _reroot_env(env, root)
    # `import worker_toolkit` (and the old `task_toolkit`) from the program, like
    # simple-sagemaker which copied its toolkit next to the entry point.
    paths = [str(code_dir), str(COMPAT_DIR)] + [p for p in [env.get("PYTHONPATH")] if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # Python children flush line by line, so their logs stream instead of arriving at exit.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def prepare_dirs(env: Mapping[str, str], task: TaskDescription, root: str) -> None:
    """Create the directories the program may write to before it runs."""
    files_dir = c.PROCESSING_FILES_DIR if task.job_type == "processing" else c.FILES_DIR
    # $SSM_INSTANCE_STATE too: simple-sagemaker's shell workers write there straight away
    keys = (c.ENV_MODEL_DIR, c.ENV_OUTPUT_DATA_DIR, c.ENV_STATE, c.ENV_INSTANCE_STATE)
    dirs = [env[k] for k in keys]
    dirs += [env[c.ENV_TENSORBOARD_DIR], u.reroot(files_dir, root)]
    for path in dirs:
        Path(path).mkdir(parents=True, exist_ok=True)
    # Snakemake creates the parent directories of a job's outputs before it runs: so do we.
    for path in [*task.files, *task.outputs.values()]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    hosts = json.loads(env[c.ENV_HOSTS])
    _restore_state(task.state_input, env[c.ENV_STATE], env[c.ENV_CURRENT_HOST], hosts)


def _restore_state(source: str | None, state: str, host: str, hosts: list[str]) -> None:
    """Processing jobs have no CheckpointConfig: the state arrives as a ProcessingInput and is
    copied into the state directory (which a ProcessingOutput uploads again afterwards).

    Every host uploads its whole state directory, so each host restores only what is its
    own: ``<host>/``, and on the main host also everything at the top that is not another
    host's directory. A host holding a copy of another's files would upload it over that
    host's new ones."""
    main = not hosts or host == hosts[0]
    if not source or not Path(source).is_dir() or Path(source).resolve() == Path(state).resolve():
        return
    import shutil  # shutil loads bz2 and lzma: not on the launcher's path

    for entry in sorted(Path(source).iterdir()):
        if entry.name == host or (main and entry.name not in hosts):
            target = Path(state) / entry.name
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(entry, target, follow_symlinks=False)


def _on_path(program: str) -> bool:
    """``shutil.which(program) is not None``, without importing shutil."""
    for directory in os.get_exec_path():
        path = os.path.join(directory, program)
        if os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path):
            return True
    return False


def shell_argv(command: str) -> list[str]:
    """Snakemake's strict shell mode; plain sh (no pipefail) when the image lacks bash."""
    if _on_path("bash"):
        return ["bash", "-c", f"set -euo pipefail; {command}"]
    return ["/bin/sh", "-c", f"set -eu; {command}"]
