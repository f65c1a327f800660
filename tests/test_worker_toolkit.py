"""worker_toolkit: WorkerConfig and the in-job launcher, run as real processes in a sandbox.

Each test builds a fake /opt/ml tree under tmp_path and points SSM_OPT_ML_ROOT at it, the way
the local backend does when it cannot mount the sandbox at /opt/ml.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# worker_toolkit ships inside every job's code bundle; import it from this checkout even when
# the project is not installed into the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worker_toolkit  # noqa: E402
from ssm_rules.requests import PROCESSING_ENTRYPOINT  # noqa: E402
from worker_toolkit import _common, _jobenv, _outputs, hyperparameters, worker_lib  # noqa: E402
from worker_toolkit import contract as c  # noqa: E402
from worker_toolkit.launcher import failure_text, launcher_template_path  # noqa: E402
from worker_toolkit.task import SUPPORTED_VERSIONS, TASK_VERSION, TaskDescription  # noqa: E402

PACKAGE_DIR = Path(worker_toolkit.__file__).resolve().parent
RUN_TIMEOUT = 20


# --- sandbox helpers ---------------------------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _write_json(path: Path, value: Any) -> Path:
    return _write(path, json.dumps(value))


def _job_path(root: Path, opt_ml_path: str) -> Path:
    return Path(_common.reroot(opt_ml_path, str(root)))


def _make_bundle(code: Path, programs: dict[str, str]) -> Path:
    """A code dir like the staged bundle: ssm_launch.py + worker_toolkit/ + the user's files."""
    code.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        PACKAGE_DIR, code / "worker_toolkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(launcher_template_path(), code / c.LAUNCHER_PROGRAM)
    for name, text in programs.items():
        _write(code / name, textwrap.dedent(text))
    return code


def _training_tree(
    root: Path, hps: dict[str, Any], hosts: tuple[str, ...] = ("algo-1",), current: str = "algo-1"
) -> None:
    """The files SageMaker writes into a training container (JSON-encoded hyperparameters)."""
    config = _job_path(root, c.INPUT_CONFIG_DIR)
    _write_json(config / "hyperparameters.json", {k: json.dumps(v) for k, v in hps.items()})
    resource = {"current_host": current, "hosts": list(hosts), "network_interface_name": "eth0"}
    _write_json(config / "resourceconfig.json", resource)
    channels = {"data": {"TrainingInputMode": "File"}, "model": {"TrainingInputMode": "File"}}
    _write_json(config / "inputdataconfig.json", channels)
    data = _job_path(root, c.INPUT_DATA_DIR)
    _write(data / "data" / "sample_data.txt", "sample")
    _write(data / "model" / "base.bin", "base")


def _toolkit_args(hps: dict[str, Any]) -> list[str]:
    """argv as sagemaker-training-toolkit builds it: JSON-decoded, then str()'d, sorted."""
    return hyperparameters.to_cmd_args(
        hyperparameters.decode({k: json.dumps(v) for k, v in hps.items()})
    )


def _clean_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SSM_", "PYTHON"))}
    for name in (c.ENV_JOB_NAME, c.ENV_TRAINING_JOB_NAME, c.ENV_PROCESSING_JOB_NAME):
        env.pop(name, None)
    env[c.ENV_OPT_ML_ROOT] = str(root)
    env.update(extra)
    return env


def _launch(code: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages, so the launcher proves it needs the standard library only.
    return subprocess.run(
        [sys.executable, "-S", str(code / c.LAUNCHER_PROGRAM), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def _task(**fields: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "version": TASK_VERSION,
        "job_type": "training",
        "files": {},
        "state_dir": c.CHECKPOINT_DIR,
    }
    task.update(fields)
    return task


def _task_arg(task: dict[str, Any]) -> list[str]:
    """--ssm_task as the toolkit passes a string hyperparameter (the client double-encodes)."""
    return _toolkit_args({c.HP_TASK: json.dumps(task)})


@pytest.fixture
def restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


# --- WorkerConfig --------------------------------------------------------------------------------
def test_worker_config_reads_every_documented_variable(
    tmp_path: Path, restore_environ: None, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "optml"
    for key in [k for k in os.environ if k.startswith(("SM_", "SSM_"))]:
        del os.environ[key]
    env = {
        c.ENV_OPT_ML_ROOT: str(root),
        c.ENV_JOB_NAME: "task1-2020-09-23-17-12-46-0JNcrR6H",
        c.ENV_CHANNELS: json.dumps(["data", "model", "bucket"]),
        "SM_CHANNEL_DATA": "/opt/ml/input/data/data",
        "SM_CHANNEL_MODEL": "/opt/ml/input/data/model",
        "SM_CHANNEL_BUCKET": "/opt/ml/input/data/bucket",
        c.ENV_HPS: json.dumps({"arg": "hello world!", "task": 1, "ssm_task": "{}"}),
        c.ENV_STATE: str(tmp_path / "state"),
        c.ENV_OUTPUT_DATA_DIR: "/opt/ml/output/data",
        c.ENV_MODEL_DIR: "/opt/ml/model",
        c.ENV_TENSORBOARD_DIR: "/opt/ml/output/tensorboard",
        c.ENV_NUM_CPUS: "2",
        c.ENV_NUM_GPUS: "1",
        c.ENV_CURRENT_HOST: "algo-2",
        c.ENV_HOSTS: json.dumps(["algo-1", "algo-2"]),
        c.ENV_NETWORK_INTERFACE_NAME: "eth0",
        c.ENV_NUM_NODES: "2",
        c.ENV_HOST_RANK: "1",
    }
    os.environ.update(env)
    with caplog.at_level(logging.INFO):
        wc = worker_lib.WorkerConfig()

    assert wc.job_name == "task1-2020-09-23-17-12-46-0JNcrR6H"
    assert wc.channels == ["data", "model", "bucket"]
    assert wc.channel_data == f"{root}/input/data/data"  # /opt/ml re-rooted
    assert wc.channel_model == f"{root}/input/data/model"
    assert wc.channel_bucket == f"{root}/input/data/bucket"
    assert wc.hps == {"arg": "hello world!", "task": 1}
    assert wc.state == str(tmp_path / "state")
    assert wc.per_instance_state is True
    assert wc.instance_state == str(tmp_path / "state" / "algo-2")
    assert Path(wc.instance_state).is_dir()
    assert "Creating instance specific state dir" in caplog.text
    assert os.environ[c.ENV_INSTANCE_STATE] == wc.instance_state
    assert wc.output_data_dir == f"{root}/output/data"
    assert wc.model_dir == f"{root}/model"
    assert wc.tensorboard_dir == f"{root}/output/tensorboard"
    assert (wc.num_cpus, wc.num_gpus) == (2, 1)
    assert wc.current_host == "algo-2"
    assert wc.hosts == ["algo-1", "algo-2"]
    assert wc.network_interface_name == "eth0"
    assert (wc.num_nodes, wc.host_rank, wc.is_main_host) == (2, 1, False)
    assert wc.config.hps == wc.hps
    with pytest.raises(AttributeError, match="channels"):
        _ = wc.channel_nope


def test_worker_config_falls_back_to_sagemaker_files(tmp_path: Path, restore_environ: None) -> None:
    root = tmp_path / "optml"
    _training_tree(
        root, {"arg": "hello world!", "task": 1, "sagemaker_program": "x.py"}, ("algo-1", "algo-2")
    )
    for key in [k for k in os.environ if k.startswith(("SM_", "SSM_"))]:
        del os.environ[key]
    for name in (c.ENV_JOB_NAME, c.ENV_PROCESSING_JOB_NAME):
        os.environ.pop(name, None)
    os.environ[c.ENV_OPT_ML_ROOT] = str(root)
    os.environ[c.ENV_TRAINING_JOB_NAME] = "job-from-sagemaker"

    wc = worker_lib.WorkerConfig(False)

    assert wc.job_name == "job-from-sagemaker"
    assert wc.channels == ["data", "model"]
    assert wc.channel_data == f"{root}/input/data/data"
    assert wc.hps == {"arg": "hello world!", "task": 1}
    assert wc.state == f"{root}/checkpoints" and Path(wc.state).is_dir()
    assert wc.instance_state == wc.state  # per_instance_state=False: the shared directory
    assert wc.model_dir == f"{root}/model"
    assert wc.output_data_dir == f"{root}/output/data"
    assert (wc.current_host, wc.hosts, wc.num_nodes, wc.host_rank) == (
        "algo-1",
        ["algo-1", "algo-2"],
        2,
        0,
    )
    assert wc.num_cpus == os.cpu_count()
    assert os.environ[c.ENV_NUM_NODES] == "2" and os.environ[c.ENV_HOST_RANK] == "0"
    # The old module-level API (simple-sagemaker <= 0.9).
    args = worker_lib.parseArgs()
    assert args.input_data == wc.channel_data and args.hps["task"] == 1
    assert worker_lib.initMultiWorkersState(args) == f"{root}/checkpoints/algo-1"
    assert worker_lib.markCompleted(args) is None


def test_path_and_hyperparameter_helpers() -> None:
    text = "cp /opt/ml/input/data/x /opt/ml/model/ && ls /opt/mlflow /x/opt/ml '/opt/ml'"
    assert _common.reroot_text(text, "/r") == (
        "cp /r/input/data/x /r/model/ && ls /opt/mlflow /x/opt/ml '/r'"
    )
    assert (
        _common.reroot("/opt/ml", "/r") == "/r" and _common.reroot("/opt/mlx", "/r") == "/opt/mlx"
    )


# --- launcher: training --------------------------------------------------------------------------
WORKER = """
    import json, os, sys
    from pathlib import Path
    from worker_toolkit import worker_lib

    wc = worker_lib.WorkerConfig()
    print("argv", json.dumps(sys.argv[1:]))
    print("hps", json.dumps(wc.hps))
    if int(wc.hps["task"]) == 1:
        Path(wc.instance_state, "state_" + wc.current_host).write_text("state")
        for f in Path(wc.channel_data).rglob("*"):
            if f.is_file():
                out = Path(wc.model_dir, f.name + "_proc_by_" + wc.current_host)
                out.write_text(f.read_text() + " processed")
        Path(wc.output_data_dir, "output_data_dir").write_text("output")
        Path(wc.state, "state_dir").write_text("state")
    # A rule's plain output: /opt/ml/output/ssm_files/<relpath>, re-rooted in this sandbox.
    metrics = os.environ["SSM_OPT_ML_ROOT"] + "/output/ssm_files/runs/metrics.json"
    Path(metrics).write_text(json.dumps({"loss": 0.5}))
"""

OLD_WORKER = """
    from task_toolkit import algo_lib
    args = algo_lib.parseArgs()
    state_dir = algo_lib.initMultiWorkersState(args)
    open(state_dir + "/old", "w").write(args.hps["arg"] + " " + args.input_data)
    algo_lib.markCompleted(args)
"""


@pytest.mark.parametrize("declared", [True, False])
def test_state_written_without_a_state_output_is_warned_about(
    tmp_path: Path, declared: bool
) -> None:
    """simple-sagemaker kept every task's state; here a rule without state(...) has no
    checkpoint sync, so what the program writes there is lost: the job's log says so."""
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {})
    _training_tree(root, {}, hosts=("algo-1", "algo-2"), current="algo-2")
    command = 'echo s > "$SSM_INSTANCE_STATE/s.txt"'
    fields = {} if declared else {"state_dir": None}
    proc = _launch(
        code, _task_arg(_task(kind="shell", command=command, **fields)), _clean_env(root)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warned = "declares no state(...) output: they are discarded" in proc.stdout + proc.stderr
    assert warned is not declared, proc.stdout + proc.stderr
    if not declared:
        assert "wrote 1 file to its state directory" in proc.stdout + proc.stderr
        assert "on algo-2" in proc.stdout + proc.stderr  # not only the main host says it


@pytest.mark.parametrize("task_in_argv", [True, False])
def test_simple_sagemaker_worker_runs_unmodified(tmp_path: Path, task_in_argv: bool) -> None:
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {"worker.py": WORKER})
    metrics = "/opt/ml/output/ssm_files/runs/metrics.json"
    task = _task(kind="script", program="worker.py", files={metrics: "runs/metrics.json"})
    user_hps = {"arg": "hello world!", "task": 1}
    # What the client sends: the task JSON-encoded into a string hyperparameter.
    _training_tree(
        root, {**user_hps, c.HP_TASK: json.dumps(task), c.HP_PROGRAM: c.LAUNCHER_PROGRAM}
    )
    args = _toolkit_args(user_hps) + (_task_arg(task) if task_in_argv else [])

    proc = _launch(code, args, _clean_env(root, TRAINING_JOB_NAME="job-1"))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'argv ["--arg", "hello world!", "--task", "1"]' in proc.stdout
    assert 'hps {"arg": "hello world!", "task": 1}' in proc.stdout
    assert (root / "checkpoints" / "algo-1" / "state_algo-1").read_text() == "state"
    assert (root / "checkpoints" / "state_dir").is_file()
    assert (root / "model" / "sample_data.txt_proc_by_algo-1").read_text() == "sample processed"
    assert (root / "output" / "data" / "output_data_dir").read_text() == "output"
    # The declared plain output travels inside output.tar.gz, under .ssm_files/<relpath>.
    moved = root / "output" / "data" / c.SSM_FILES_MEMBER / "runs" / "metrics.json"
    assert json.loads(moved.read_text()) == {"loss": 0.5}
    assert not (root / "output" / "ssm_files" / "runs" / "metrics.json").exists()
    assert not (root / "output" / "failure").exists()


def test_old_task_toolkit_worker_runs(tmp_path: Path) -> None:
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {"old.py": OLD_WORKER})
    _training_tree(root, {"arg": "hi"})
    task = _task(kind="script", program="old.py")
    proc = _launch(code, _toolkit_args({"arg": "hi"}) + _task_arg(task), _clean_env(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    old = (root / "checkpoints" / "algo-1" / "old").read_text()
    assert old == f"hi {root}/input/data/data"


def test_shell_command_paths_are_rerooted(tmp_path: Path) -> None:
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {"helper.sh": "echo from-helper\n"})
    _training_tree(root, {})
    command = (
        "cat /opt/ml/input/data/data/sample_data.txt > /opt/ml/model/copy.txt && "
        'echo "$SM_NUM_GPUS $SSM_HOST_RANK" > /opt/ml/output/ssm_files/out/x.txt && '
        "sh helper.sh && "  # cwd is the code dir
        'echo "$SSM_INPUT_DATA" > "$SSM_OUTPUT_WHERE"'
    )
    out = "/opt/ml/output/ssm_files/out/x.txt"
    where = "/opt/ml/output/ssm_files/deep/where.txt"
    task = _task(
        kind="shell",
        command=command,
        files={out: "out/x.txt", where: "deep/where.txt"},
        inputs={"data": "/opt/ml/input/data/data/sample_data.txt"},
        outputs={"x": out, "where": where},
    )
    proc = _launch(code, _task_arg(task), _clean_env(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from-helper" in proc.stdout
    where_moved = root / "output" / "data" / c.SSM_FILES_MEMBER / "deep" / "where.txt"
    assert where_moved.read_text() == f"{root}/input/data/data/sample_data.txt\n"
    assert (root / "model" / "copy.txt").read_text() == "sample"
    moved = root / "output" / "data" / c.SSM_FILES_MEMBER / "out" / "x.txt"
    assert moved.read_text().split() == [str(_common.count_gpus()), "0"]


def test_shell_command_finds_its_instance_state_dir(tmp_path: Path) -> None:
    """simple-sagemaker's shell workers write to $SSM_INSTANCE_STATE without creating it."""
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {})
    _training_tree(root, {}, hosts=("algo-1", "algo-2"), current="algo-2")
    task = _task(kind="shell", command='echo s > "$SSM_INSTANCE_STATE/s.txt"')
    proc = _launch(code, _task_arg(task), _clean_env(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "checkpoints" / "algo-2" / "s.txt").read_text() == "s\n"


def test_failure_file_has_exit_code_and_last_lines(tmp_path: Path) -> None:
    root = tmp_path / "optml"
    failing = """
        import sys
        for i in range(80):
            print("line", i)
        print("ValueError: the real reason", file=sys.stderr)
        sys.exit(3)
    """
    code = _make_bundle(tmp_path / "code", {"fail.py": failing})
    _training_tree(root, {"epochs": 2})
    task = _task(kind="script", program="fail.py")
    proc = _launch(code, _toolkit_args({"epochs": 2}) + _task_arg(task), _clean_env(root))
    assert proc.returncode == 3
    assert "line 79" in proc.stdout  # streamed through
    text = (root / "output" / "failure").read_text()
    reason = text[: c.FAILURE_REASON_MAX]
    assert reason.startswith(
        "ExitCode 3: fail.py --epochs 2 | last line: ValueError: the real reason"
    )
    assert "line 78" in reason
    assert "line 31" in text and "line 30" not in text  # the last 50 lines are kept


def test_pipefail_and_user_failure_file_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {})
    _training_tree(root, {})
    proc = _launch(code, _task_arg(_task(kind="shell", command="false | true")), _clean_env(root))
    assert proc.returncode == 1
    assert (root / "output" / "failure").read_text().startswith("ExitCode 1: false | true")

    (root / "output" / "failure").unlink()
    command = "echo 'my own reason' > /opt/ml/output/failure; exit 4"
    proc = _launch(code, _task_arg(_task(kind="shell", command=command)), _clean_env(root))
    assert proc.returncode == 4
    assert (root / "output" / "failure").read_text() == "my own reason\n"


def test_failure_text_puts_the_reason_first() -> None:
    text = failure_text(2, "train.py", ["x" * 2000, "Traceback", "KeyError: 'lr'"])
    first = text[: c.FAILURE_REASON_MAX]
    assert first.startswith("ExitCode 2: train.py | last line: KeyError: 'lr'")
    assert "Traceback" in first and "x" * 2000 in text


@pytest.mark.parametrize(("trap", "expected"), [(True, 7), (False, 128 + signal.SIGTERM)])
def test_sigterm_is_forwarded_to_the_program(tmp_path: Path, trap: bool, expected: int) -> None:
    root = tmp_path / "optml"
    marker = tmp_path / "got-sigterm"
    trapping = "trap 'echo saved > " + str(marker) + "; exit 7' TERM; " if trap else ""
    command = trapping + "echo ready; while true; do sleep 0.05; done"
    code = _make_bundle(tmp_path / "code", {})
    _training_tree(root, {})
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-S",
            str(code / c.LAUNCHER_PROGRAM),
            *_task_arg(_task(kind="shell", command=command)),
        ],
        env=_clean_env(root),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            if line.strip() == "ready":
                break
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=RUN_TIMEOUT) == expected
    finally:
        if launcher.poll() is None:
            launcher.kill()
    if trap:
        assert marker.read_text() == "saved\n"
    assert (root / "output" / "failure").read_text().startswith(f"ExitCode {expected}:")


def test_missing_declared_output_fails(tmp_path: Path) -> None:
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {})
    _training_tree(root, {})
    files = {"/opt/ml/output/ssm_files/runs/a.json": "runs/a.json"}
    proc = _launch(
        code, _task_arg(_task(kind="shell", command="true", files=files)), _clean_env(root)
    )
    assert proc.returncode == 1
    text = (root / "output" / "failure").read_text()
    assert "'runs/a.json'" in text and f"{root}/output/ssm_files/runs/a.json" in text


def test_bad_task_description_fails_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {})
    proc = _launch(code, ["--ssm_task", "kind=script,program=x.py"], _clean_env(root))
    assert proc.returncode == 2
    assert "no task description" in (root / "output" / "failure").read_text()


def test_task_of_an_unknown_version_is_refused_before_the_program_runs(tmp_path: Path) -> None:
    """A launcher must not guess at a description written for another version: keys it does
    not know would be dropped silently (an output never checked, a member never run)."""
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {})
    marker = tmp_path / "ran"
    unknown = max(SUPPORTED_VERSIONS) + 1
    task = _task(kind="shell", command=f"touch {marker}", version=unknown)
    proc = _launch(code, _task_arg(task), _clean_env(root))
    assert proc.returncode == 2 and not marker.exists()
    failure = (root / "output" / "failure").read_text()
    assert f"task description version {unknown} is not one this launcher reads" in failure


# --- launcher: processing ------------------------------------------------------------------------
PROCESSING_WORKER = """
    import json, os, sys
    from pathlib import Path
    from worker_toolkit import worker_lib

    wc = worker_lib.WorkerConfig()
    Path(wc.model_dir, "m.txt").write_text(Path(wc.channel_data, "in.txt").read_text())
    Path(wc.output_data_dir, "sub").mkdir()
    Path(wc.output_data_dir, "sub", "o.txt").write_text(json.dumps(sys.argv[1:]))
    files = os.environ["SSM_OPT_ML_ROOT"] + "/processing/ssm_files/res/r.json"
    result = {"hps": wc.hps, "job": wc.job_name, "state": wc.instance_state}
    Path(files).write_text(json.dumps(result))
"""


def _tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_processing_job_builds_the_carrier(tmp_path: Path) -> None:
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {"proc.py": PROCESSING_WORKER})
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as tar:
        tar.add(str(code), arcname=".")
    _write(_job_path(root, c.PROCESSING_CODE_DIR) / c.CODE_BUNDLE_NAME, "").write_bytes(
        bundle.getvalue()
    )
    files = {"/opt/ml/processing/ssm_files/res/r.json": "res/r.json"}
    task = _task(
        job_type="processing", kind="script", program="proc.py", files=files,
        state_dir=c.PROCESSING_STATE_DIR, model=True, output_data=True, hps={"n": 2, "ssm_x": 1},
        state_input=f"{c.PROCESSING_INPUT_DIR}/{c.PROCESSING_STATE_INPUT}",
    )  # fmt: skip
    # The previous run's state arrives as a ProcessingInput and is copied into the state dir.
    _write(_job_path(root, task["state_input"]) / "algo-1" / "previous", "old state")
    _write_json(_job_path(root, c.PROCESSING_TASK_DIR) / c.TASK_FILE_NAME, task)
    data_dir = f"{c.PROCESSING_INPUT_DIR}/data"
    _write(_job_path(root, data_dir) / "in.txt", "input")
    inputs = [
        {"InputName": name, "S3Input": {"LocalPath": path}}
        for name, path in [
            ("code", c.PROCESSING_CODE_DIR),
            ("ssm_task", c.PROCESSING_TASK_DIR),
            ("data", data_dir),
        ]
    ]
    config = {"ProcessingJobName": "proc-job", "ProcessingInputs": inputs}
    _write_json(_job_path(root, c.PROCESSING_CONFIG_FILE), config)
    _write_json(
        _job_path(root, c.PROCESSING_RESOURCE_CONFIG_FILE),
        {"current_host": "algo-1", "hosts": ["algo-1"]},
    )

    env = _clean_env(root)  # the image's python3 is this one
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    proc = subprocess.run(
        PROCESSING_ENTRYPOINT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    carrier = _job_path(root, c.PROCESSING_CARRIER_DIR)
    assert sorted(p.name for p in carrier.iterdir()) == ["files", "model.tar.gz", "output.tar.gz"]
    assert _tar_names(carrier / c.MODEL_ARCHIVE) == ["m.txt"]
    assert _tar_names(carrier / c.OUTPUT_ARCHIVE) == ["sub", "sub/o.txt"]
    with tarfile.open(carrier / c.OUTPUT_ARCHIVE) as tar:
        member = tar.extractfile("sub/o.txt")
        assert member is not None and json.loads(member.read()) == [
            "-n",
            "2",
        ]  # toolkit: one letter, one dash
    result = json.loads((carrier / "files" / "res" / "r.json").read_text())
    state = str(_job_path(root, c.PROCESSING_STATE_DIR) / "algo-1")
    assert result == {"hps": {"n": 2}, "job": "proc-job", "state": state}
    assert (_job_path(root, c.PROCESSING_WORK_DIR) / c.LAUNCHER_PROGRAM).is_file()
    assert (Path(state) / "previous").read_text() == "old state"
    # Deterministic archives: the same tree gives the same bytes.
    first = (carrier / c.MODEL_ARCHIVE).read_bytes()
    time.sleep(0.01)
    _outputs.write_tar_gz(_job_path(root, c.PROCESSING_MODEL_DIR), tmp_path / "again.tar.gz")
    assert (tmp_path / "again.tar.gz").read_bytes() == first


def _host_env(root: Path, host: str, hosts: list[str]) -> dict[str, str]:
    return {
        c.ENV_MODEL_DIR: str(root / "model"),
        c.ENV_OUTPUT_DATA_DIR: str(root / "output"),
        c.ENV_STATE: str(root / "state"),
        c.ENV_TENSORBOARD_DIR: str(root / "tb"),
        c.ENV_INSTANCE_STATE: str(root / "state" / host),
        c.ENV_HOSTS: json.dumps(hosts),
        c.ENV_CURRENT_HOST: host,
    }


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_processing_state_is_restored_per_host(tmp_path: Path) -> None:
    """Each host uploads its whole state dir: it must hold no stale copy of another host's
    files, or that copy would overwrite the other host's new ones."""
    source = tmp_path / "state-input"
    _write(source / "algo-1" / "a.txt", "a1")
    _write(source / "algo-2" / "b.txt", "a2")
    _write(source / "top.txt", "top")
    _write(source / "algo-3" / "c.txt", "a host of an earlier, larger run")
    hosts = ["algo-1", "algo-2"]
    for host in hosts:
        root = tmp_path / host
        task = TaskDescription(
            kind="shell", command="true", job_type="processing", state_input=str(source)
        )
        _jobenv.prepare_dirs(_host_env(root, host, hosts), task, str(root))
    assert _files(tmp_path / "algo-1" / "state") == {"algo-1/a.txt", "top.txt", "algo-3/c.txt"}
    assert _files(tmp_path / "algo-2" / "state") == {"algo-2/b.txt"}


def test_root_is_found_in_an_emulation_that_does_not_mount_opt_ml(tmp_path: Path) -> None:
    """A container emulation may unpack the job under any directory and only set SM_*
    variables: the launcher finds the root from where its code was unpacked (<root>/code)."""
    root = tmp_path / "job"
    code = _make_bundle(root / "code", {})
    _training_tree(root, {})
    env = _clean_env(root)
    del env[c.ENV_OPT_ML_ROOT]
    env[c.ENV_MODEL_DIR] = str(root / "model")
    task = _task(
        kind="shell", command="cp /opt/ml/input/data/data/sample_data.txt /opt/ml/model/m.txt"
    )
    proc = _launch(code, _task_arg(task), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "model" / "m.txt").read_text() == "sample"


def test_worker_config_outside_a_job_creates_nothing_in_opt_ml(tmp_path: Path) -> None:
    """No job found: /opt/ml is only assumed, and this machine's must stay untouched."""
    before = {str(p) for p in Path("/opt/ml").rglob("*")} if Path("/opt/ml").is_dir() else set()
    env = _clean_env(tmp_path)
    del env[c.ENV_OPT_ML_ROOT]
    env["PYTHONPATH"] = str(PACKAGE_DIR.parent)
    code = (
        "from worker_toolkit import worker_lib\n"
        "wc = worker_lib.WorkerConfig()\n"
        "print(wc.state, wc.instance_state)\n"
        "worker_lib.initMultiWorkersState(worker_lib.parseArgs())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [c.CHECKPOINT_DIR, f"{c.CHECKPOINT_DIR}/algo-1"]
    after = {str(p) for p in Path("/opt/ml").rglob("*")} if Path("/opt/ml").is_dir() else set()
    assert after == before


# --- compatibility with simple-sagemaker's WorkerConfig and job environment ----------------------
# Every field of simple-sagemaker's WorkerConfig().config (worker_toolkit/worker_lib.py at
# be441720, parseArgs + initMultiWorkersState) and its type there: raw JSON strings stay strings.
ORIGINAL_FIELDS: dict[str, type] = {
    "model_dir": str, "output_data_dir": str, "output_dir": str, "input_dir": str,
    "input_config_dir": str, "input_data_config": str, "hps": dict, "channels": list,
    "channel_data": str, "channel_model": str, "current_host": str, "hosts": list,
    "num_gpus": int, "num_cpus": int, "network_interface_name": str, "job_name": str,
    "resource_config": str, "num_nodes": int, "host_rank": int, "tensorboard_dir": str,
    "state": str, "instance_state": str,
}  # fmt: skip
ORIGINAL_METHODS = (
    "setDebugLevel", "parseArgs", "initMultiWorkersState", "updateNamespace", "_updateArgv",
    "_getInstanceStatePath", "_deleteOtherInstancesState", "_initProcessingEnvVars",
)  # fmt: skip
# Variables simple-sagemaker's jobs had (sm_task.py, shell_launcher.py, worker_lib.py, and the
# sagemaker-training-toolkit's SM_* for training); a shell worker reads them without Python.
ORIGINAL_ENV = (
    "SAGEMAKER_JOB_NAME", "SM_CHANNEL_DATA", "SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR",
    "SM_OUTPUT_DIR", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_HPS", "SM_CHANNELS",
    "SM_CURRENT_HOST", "SM_HOSTS", "SM_NUM_CPUS", "SM_NUM_GPUS", "SM_NETWORK_INTERFACE_NAME",
    "SM_RESOURCE_CONFIG", "SSM_STATE", "SSM_INSTANCE_STATE", "SSM_OUTPUT",
    "SSM_TENSORBOARD_DIR", "SSM_NUM_NODES", "SSM_HOST_RANK", "SMDEBUG_LOG_LEVEL",
)  # fmt: skip

COMPAT_WORKER = """
    import json, os, sys
    from pathlib import Path
    from worker_toolkit import worker_lib

    worker_config = worker_lib.WorkerConfig()
    fields = {k: [type(v).__name__, v] for k, v in vars(worker_config.config).items()}
    # simple-sagemaker's examples call __getattr__ explicitly for a channel by name
    explicit = {n: worker_config.__getattr__(f"channel_{n}") for n in worker_config.channels}
    env = {k: os.environ.get(k) for k in ENV_NAMES}
    methods = {m: callable(getattr(worker_config, m, None)) for m in METHOD_NAMES}
    Path(os.environ["SSM_OUTPUT"], "written-at-ssm-output").write_text("x")
    out = {"fields": fields, "explicit": explicit, "env": env, "methods": methods}
    Path(os.environ["SSM_OPT_ML_ROOT"], "compat.json").write_text(json.dumps(out))
"""


def _processing_tree(root: Path, code: Path, task: dict[str, Any], data: dict[str, str]) -> None:
    """The files SageMaker puts into a processing container: the code bundle, task.json,
    processingjobconfig.json with one input per ``data`` channel, resourceconfig.json."""
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as tar:
        tar.add(str(code), arcname=".")
    _write(_job_path(root, c.PROCESSING_CODE_DIR) / c.CODE_BUNDLE_NAME, "").write_bytes(
        bundle.getvalue()
    )
    _write_json(_job_path(root, c.PROCESSING_TASK_DIR) / c.TASK_FILE_NAME, task)
    inputs = [
        {"InputName": "code", "S3Input": {"LocalPath": c.PROCESSING_CODE_DIR}},
        {"InputName": "ssm_task", "S3Input": {"LocalPath": c.PROCESSING_TASK_DIR}},
    ]
    for name, text in data.items():
        local = f"{c.PROCESSING_INPUT_DIR}/{name}"
        _write(_job_path(root, local) / "in.txt", text)
        inputs.append({"InputName": name, "S3Input": {"LocalPath": local}})
    config = {"ProcessingJobName": "proc-job", "ProcessingInputs": inputs}
    _write_json(_job_path(root, c.PROCESSING_CONFIG_FILE), config)
    _write_json(
        _job_path(root, c.PROCESSING_RESOURCE_CONFIG_FILE),
        {"current_host": "algo-1", "hosts": ["algo-1"]},
    )


def _run_processing(root: Path) -> subprocess.CompletedProcess[str]:
    env = _clean_env(root)  # the image's python3 is this one
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return subprocess.run(
        PROCESSING_ENTRYPOINT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


@pytest.mark.parametrize("job_type", ["training", "processing"])
def test_worker_config_and_environment_match_simple_sagemaker(
    tmp_path: Path, job_type: str
) -> None:
    """Every field of the original WorkerConfig, with its type; the explicit
    ``__getattr__("channel_<name>")``; every variable its jobs had, also SSM_OUTPUT in
    processing jobs (a worker writing to $SSM_OUTPUT must not write at /)."""
    root = tmp_path / "optml"
    worker = COMPAT_WORKER.replace("ENV_NAMES", repr(ORIGINAL_ENV)).replace(
        "METHOD_NAMES", repr(ORIGINAL_METHODS)
    )
    code = _make_bundle(tmp_path / "code", {"compat.py": worker})
    if job_type == "training":
        _training_tree(root, {"task": 1}, hosts=("algo-1", "algo-2"))
        task = _task(kind="script", program="compat.py")
        env = _clean_env(root, TRAINING_JOB_NAME="train-job")
        proc = _launch(code, _toolkit_args({"task": 1}) + _task_arg(task), env)
        output_dir = root / "output" / "data"
    else:
        task = _task(
            job_type="processing", kind="script", program="compat.py", hps={"task": 1},
            state_dir=c.PROCESSING_STATE_DIR, output_data=True,
        )  # fmt: skip
        _processing_tree(root, code, task, {"data": "in", "model": "m"})
        proc = _run_processing(root)
        output_dir = _job_path(root, c.PROCESSING_OUTPUT_DATA_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads((root / "compat.json").read_text())
    fields = seen["fields"]
    for name, kind in ORIGINAL_FIELDS.items():
        assert name in fields, name
        assert fields[name][0] == kind.__name__, (name, fields[name])
    for raw in ("input_data_config", "resource_config"):  # JSON text, as SageMaker's SM_* hold
        assert isinstance(json.loads(fields[raw][1]), dict)
    assert fields["hps"][1] == {"task": 1}
    assert seen["methods"] == dict.fromkeys(ORIGINAL_METHODS, True)
    assert set(seen["explicit"]) >= {"data", "model"}
    assert Path(seen["explicit"]["data"]).is_dir()
    assert seen["explicit"]["data"] == fields["channel_data"][1]
    missing = [k for k, v in seen["env"].items() if v in (None, "")]
    assert not missing, missing
    assert seen["env"]["SSM_OUTPUT"] == str(output_dir)
    assert (output_dir / "written-at-ssm-output").is_file()
    expected_state = c.PROCESSING_STATE_DIR if job_type == "processing" else c.CHECKPOINT_DIR
    assert fields["state"][1] == _common.reroot(expected_state, str(root))
    assert fields["instance_state"][1] == fields["state"][1] + "/algo-1"
    assert (fields["num_nodes"][1], fields["host_rank"][1]) == (
        (2, 0) if job_type == "training" else (1, 0)
    )


def test_worker_config_attribute_fallback_and_argv_overrides(
    tmp_path: Path, restore_environ: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As simple-sagemaker's parseArgs: ``--model_dir`` style args win over the environment;
    fields live in ``.config`` and attribute access falls back to it; unknown args (the
    user's own hyperparameters, abbreviations of ours included) are left alone."""
    for key in [k for k in os.environ if k.startswith(("SM_", "SSM_"))]:
        del os.environ[key]
    os.environ.update(
        {
            c.ENV_OPT_ML_ROOT: str(tmp_path / "optml"),
            c.ENV_CHANNELS: json.dumps(["data", "bucket"]),
            "SM_CHANNEL_DATA": "/opt/ml/input/data/data",
            "SM_CHANNEL_BUCKET": "/opt/ml/input/data/bucket",
            "SM_CHANNEL_EXTRA": "/opt/ml/input/data/extra",  # listed by --channels only
            c.ENV_HOSTS: json.dumps(["algo-1"]),
            c.ENV_CURRENT_HOST: "algo-1",
        }
    )
    argv = [
        "worker.py", "--epochs", "3", "--host", "x", "--model_dir", "/opt/ml/model/sub",
        "--num_gpus", "3", "--hosts", '["algo-1", "algo-2"]', "--current_host", "algo-2",
        "--hps", '{"a": 1}', "--channel-data", "/elsewhere",
        "--channels", '["data", "bucket", "extra"]',
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    wc = worker_lib.WorkerConfig(per_instance_state=False)
    root = str(tmp_path / "optml")
    assert wc.model_dir == f"{root}/model/sub"
    assert (wc.num_gpus, wc.hosts, wc.current_host) == (3, ["algo-1", "algo-2"], "algo-2")
    assert (wc.num_nodes, wc.host_rank) == (2, 1)
    assert wc.hps == {"a": 1}
    # The original: SM_CHANNEL_<NAME> of a listed channel wins over --channel-data.
    assert wc.channel_data == f"{root}/input/data/data"
    assert wc.__getattr__("channel_bucket") == f"{root}/input/data/bucket"
    assert wc.channel_extra == f"{root}/input/data/extra"
    assert wc.__getattr__("hps") == {"a": 1}
    wc.config.extra = "set on the namespace"  # what a worker may do with .config
    assert wc.extra == "set on the namespace"
    with pytest.raises(AttributeError, match="no input channel 'nope'; channels"):
        wc.__getattr__("channel_nope")
    with pytest.raises(AttributeError):
        _ = wc.no_such_field
    assert sys.argv == argv  # parseArgs reads argv, never changes it


def test_other_hosts_state_is_deleted_only_inside_a_job(tmp_path: Path) -> None:
    """simple-sagemaker's initMultiWorkersState deletes the other instances' sub-directories
    (copies from the task state) so a host never lists or re-uploads them; only in a job."""
    root = tmp_path / "optml"
    code = _make_bundle(tmp_path / "code", {"w.py": WORKER})
    _training_tree(root, {"task": 2}, hosts=("algo-1", "algo-2"), current="algo-2")
    _write(root / "checkpoints" / "algo-1" / "theirs", "algo-1's")
    _write(root / "checkpoints" / "top.txt", "shared")
    task = _task(kind="script", program="w.py", files={})
    metrics = root / "output" / "ssm_files" / "runs"
    metrics.mkdir(parents=True)
    proc = _launch(code, _toolkit_args({"task": 2}) + _task_arg(task), _clean_env(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (root / "checkpoints" / "algo-1").exists()
    assert (root / "checkpoints" / "top.txt").is_file()
    assert (root / "checkpoints" / "algo-2").is_dir()
    # Outside a job SSM_STATE may be any shared directory: nothing is deleted there.
    shared = tmp_path / "shared-state"
    _write(shared / "algo-2" / "kept", "another host's")
    env = _clean_env(tmp_path, SSM_STATE=str(shared), SM_CURRENT_HOST="algo-1")
    del env[c.ENV_OPT_ML_ROOT]
    env["PYTHONPATH"] = str(PACKAGE_DIR.parent)
    script = (
        "from worker_toolkit import worker_lib; print(worker_lib.WorkerConfig().instance_state)"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", script], env=env, capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(shared / "algo-1")
    assert (shared / "algo-2" / "kept").is_file()
