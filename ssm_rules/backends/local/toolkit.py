"""Script mode, as the sagemaker-training-toolkit in SageMaker's framework images runs it.

Followed from aws/sagemaker-training-toolkit (``environment.py``, ``mapping.py``,
``entry_point.py``, ``process.py``); the hyperparameter rules are worker_toolkit.hyperparameters',
shared with the in-job launcher:

- hyperparameters.json values are JSON-decoded where they parse (``read_hyperparameters``);
  keys starting with ``sagemaker_`` are the toolkit's and are split off; the rest become the
  user's hyperparameters.
- ``sagemaker_submit_directory`` (a tar.gz URI) is downloaded and extracted into
  /opt/ml/code; ``sagemaker_program`` runs there: ``*.py`` as ``python prog args``, a
  directory with setup.py as ``python -m module args``, anything else made executable and
  run as ``/bin/sh -c "./prog args"`` (arguments shell-quoted).
- args are ``mapping.to_cmd_args(hyperparameters)``: sorted keys, ``--key value`` (``-k``
  for one-letter keys), dict values as ``k=v,k2=v2``, other values ``str()``-ed.
- the environment is ``Environment.to_env_vars()``: ``SM_<KEY>`` for every property,
  strings as-is and everything else compact sorted JSON, plus SM_CHANNEL_<NAME> and
  SM_HP_<KEY>, and PYTHONPATH with the code directory.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssm_rules.backends.local.sandbox import GROUP_NAME, NETWORK_INTERFACE, Sandbox
from ssm_rules.objects import ObjectURI, S3Objects, store_for
from worker_toolkit import _common, contract
from worker_toolkit._tarballs import extract_tarball
from worker_toolkit.hyperparameters import (
    SAGEMAKER_HYPERPARAMETERS,
    decode,
    env_value,
    split_sagemaker,
    to_cmd_args,
)

DEFAULT_LOG_LEVEL = 20  # logging.INFO


def fetch_code(submit_dir: str, cache: Path, s3: S3Objects | None = None) -> Path:
    """The code bundle on this disk (downloaded once per job, shared by its hosts).

    Like ``files.download_and_extract``: an s3:// (here also file://) tar.gz, or a plain
    local path that is either a tar.gz or a directory.
    """
    if "://" not in submit_dir:
        return Path(submit_dir)
    ObjectURI.parse(submit_dir)
    target = cache / "sourcedir.tar.gz"
    if not target.exists():
        store_for(submit_dir, s3).download(submit_dir, target)
    return target


# A code bundle up to this size is kept extracted (with the launcher's bytecode) in the cache
# given to install_code, and copied from there into each host's /opt/ml/code: a copy takes
# a third of the time of gunzip, untar and the checks of a safe extraction.
TREE_CACHE_MAX_BYTES = 8 * 1024 * 1024


def install_code(bundle: Path, code_dir: Path, cache: Path | None = None) -> None:
    """The bundle's files in ``code_dir``. With ``cache`` (the hosts see the code at one
    path): the launcher's modules get their bytecode (add_toolkit_bytecode), and a small
    bundle is extracted once per content there and copied (modes and times kept)."""
    import shutil

    if bundle.is_dir():
        shutil.copytree(bundle, code_dir, dirs_exist_ok=True, symlinks=True)
    elif cache is not None and bundle.stat().st_size <= TREE_CACHE_MAX_BYTES:
        tree = _extracted(bundle, cache)
        shutil.copytree(tree, code_dir, dirs_exist_ok=True, symlinks=True)
        return
    else:
        extract_tarball(bundle, code_dir, skip_carrier=False)
    if cache is not None:
        add_toolkit_bytecode(code_dir, cache / "pyc")


def _extracted(bundle: Path, cache: Path) -> Path:
    """The bundle extracted under ``cache``, by the SHA-256 of its bytes (done once: a
    directory appears whole, by rename, so runners side by side never see half of one)."""
    import shutil

    from ssm_rules.digests import file_sha256

    key = file_sha256(bundle)[:40]
    tree = cache / "trees" / key
    if tree.is_dir():
        return tree
    tmp = tree.with_name(f".{key}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    extract_tarball(bundle, tmp, skip_carrier=False)
    add_toolkit_bytecode(tmp, cache / "pyc")
    try:
        os.rename(tmp, tree)
    except OSError:  # another runner was first: its tree is the same
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def add_toolkit_bytecode(code_dir: Path, cache: Path) -> None:
    """Give the bundle's ``worker_toolkit`` package (the launcher, which starts every job)
    its compiled bytecode, as an image's pre-installed toolkit has it: the job's Python
    (PYTHONDONTWRITEBYTECODE, as in SageMaker's images) would otherwise compile it from
    source at every job. Each module is compiled once per content (``cache``, keyed by the
    source's SHA-256) into a checked-hash .pyc: Python verifies it against the source
    before use, so a changed source is never run from stale bytecode. The user's code is
    left as the bundle has it."""
    import py_compile
    import shutil

    from ssm_rules.digests import file_sha256

    package = code_dir / "worker_toolkit"
    tag = sys.implementation.cache_tag
    if tag is None or not package.is_dir():
        return
    for source in sorted(package.glob("*.py")):
        digest = file_sha256(source)[:40]
        cached = cache / f"{source.stem}.{digest}.{tag}.pyc"
        try:
            if not cached.is_file():
                cache.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
                py_compile.compile(
                    str(source),
                    cfile=str(tmp),
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
                )
                os.replace(tmp, cached)  # atomic: runners side by side share the cache
            target = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(cached, target)
        except (OSError, py_compile.PyCompileError):
            return  # only ever costs the compilation the job then does itself


@dataclass(frozen=True)
class ScriptPlan:
    argv: list[str]
    env: dict[str, str]  # the toolkit's variables (applied over the container env)
    cwd: str  # as the job sees it
    warnings: tuple[str, ...] = ()


def plan(
    body: dict[str, Any],
    sandbox: Sandbox,
    hosts: list[str],
    num_cpus: int,
    python: str = sys.executable,
) -> ScriptPlan:
    """What ``train`` (the toolkit's entry) would execute on ``sandbox.host``, with
    ``python`` as the image's interpreter."""
    raw = dict(body.get("HyperParameters") or {})
    sm, user = split_sagemaker(decode(raw))
    program = str(sm[contract.HP_PROGRAM])
    module_dir = str(sm.get(contract.HP_SUBMIT_DIRECTORY, sandbox.visible(contract.CODE_DIR)))
    log_level = sm.get(contract.HP_CONTAINER_LOG_LEVEL, DEFAULT_LOG_LEVEL)
    additional = {k: v for k, v in sm.items() if k not in SAGEMAKER_HYPERPARAMETERS}
    job_name = body["TrainingJobName"]
    instance_type = (body.get("ResourceConfig") or {}).get("InstanceType", "local")
    code_dir = sandbox.visible(contract.CODE_DIR)
    channels = {
        ch["ChannelName"]: sandbox.visible(f"{contract.INPUT_DATA_DIR}/{ch['ChannelName']}")
        for ch in body.get("InputDataConfig") or []
    }
    from ssm_rules.backends.local.sandbox import input_data_config, training_resource_config

    resource_config = training_resource_config(sandbox.host, hosts, instance_type)
    num_gpus = _common.count_gpus()  # this machine's GPUs are the instance's
    data_config = input_data_config(body)
    module_name = program[:-3] if program.endswith(".py") else program
    user_args = to_cmd_args(user)
    groups_dict = {g["instance_group_name"]: g for g in resource_config["instance_groups"]}

    props: dict[str, Any] = {
        "additional_framework_parameters": additional,
        "channel_input_dirs": channels,
        "current_host": sandbox.host,
        "current_instance_group": GROUP_NAME,
        "current_instance_group_hosts": hosts,
        "current_instance_type": instance_type,
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": None,
        "hosts": hosts,
        "hyperparameters": user,
        "input_config_dir": sandbox.visible(contract.INPUT_CONFIG_DIR),
        "input_data_config": data_config,
        "input_dir": sandbox.visible(contract.INPUT_DIR),
        "instance_groups": [GROUP_NAME],
        "instance_groups_dict": groups_dict,
        "is_hetero": False,
        "is_master": sandbox.host == hosts[0],
        "is_modelparallel_enabled": None,
        "job_name": job_name,
        "log_level": log_level,
        "master_hostname": hosts[0],
        "model_dir": sandbox.visible(contract.MODEL_DIR),
        "module_dir": module_dir,
        "module_name": module_name,
        "network_interface_name": NETWORK_INTERFACE,
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "num_neurons": 0,
        "output_data_dir": sandbox.visible(contract.OUTPUT_DATA_DIR),
        "output_dir": sandbox.visible(contract.OUTPUT_DIR),
        "output_intermediate_dir": sandbox.visible(f"{contract.OUTPUT_DIR}/intermediate"),
        "resource_config": resource_config,
        "user_entry_point": program,
    }
    env_map: dict[str, Any] = {
        "hosts": hosts,
        "network_interface_name": NETWORK_INTERFACE,
        "hps": user,
        "user_entry_point": program,
        "framework_params": additional,
        "resource_config": resource_config,
        "input_data_config": data_config,
        "output_data_dir": props["output_data_dir"],
        "channels": sorted(channels),
        "current_host": sandbox.host,
        "current_instance_type": instance_type,
        "current_instance_group": GROUP_NAME,
        "current_instance_group_hosts": hosts,
        "instance_groups": [GROUP_NAME],
        "instance_groups_dict": groups_dict,
        "distribution_instance_groups": [],
        "is_hetero": False,
        "module_name": module_name,
        "log_level": log_level,
        "framework_module": None,
        "input_dir": props["input_dir"],
        "input_config_dir": props["input_config_dir"],
        "output_dir": props["output_dir"],
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "model_dir": props["model_dir"],
        "module_dir": module_dir,
        "training_env": props,
        "user_args": user_args,
        "output_intermediate_dir": props["output_intermediate_dir"],
    }
    for name, path in channels.items():
        env_map[f"channel_{name}"] = path
    for key, value in user.items():
        env_map[f"hp_{key}"] = value
    env = {f"SM_{k.upper()}": env_value(v) for k, v in env_map.items()}
    # Set by the toolkit in Environment.__init__ / entry_point.run
    env["CURRENT_HOST"] = sandbox.host
    env["SAGEMAKER_REGION"] = str(sm.get(contract.HP_REGION, ""))
    env[contract.ENV_JOB_NAME] = str(sm.get("sagemaker_job_name", job_name))

    argv, warnings = _command(program, user_args, sandbox.real(contract.CODE_DIR), python)
    return ScriptPlan(argv=argv, env=env, cwd=code_dir, warnings=warnings)


def _command(
    program: str, args: list[str], real_code_dir: Path, python: str
) -> tuple[list[str], tuple[str, ...]]:
    """``ProcessRunner._create_command``, with ``python`` as the image's interpreter (this
    machine's, or the environment holding the job's requirements.txt)."""
    warnings: list[str] = []
    if (real_code_dir / "setup.py").exists():  # _entry_point_type.PYTHON_PACKAGE
        warnings.append("setup.py found: the local backend runs the module without installing")
        return [python, "-m", program.replace(".py", ""), *args], tuple(warnings)
    if program.endswith(".py"):  # PYTHON_PROGRAM
        return [python, program, *args], tuple(warnings)
    # COMMAND: entry_point.install makes it executable (chmod 511 == 0o777)
    prog = real_code_dir / program
    if prog.exists():
        os.chmod(prog, 0o777)
    quoted = " ".join(shlex.quote(a) for a in args)
    return ["/bin/sh", "-c", f"./{program} {quoted}"], tuple(warnings)


def python_argv(argv: list[str], python: str = sys.executable) -> list[str]:
    """ContainerEntrypoint: the image's ``python``/``python3`` is ``python`` (this machine's
    interpreter, or the environment holding the job's requirements.txt)."""
    if argv and (argv[0] in ("python", "python3") or _is_versioned_python(argv[0])):
        return [python, *argv[1:]]
    return list(argv)


def _is_versioned_python(word: str) -> bool:
    return word.startswith("python3.") and word[len("python3.") :].isdigit()
