"""The local SageMaker, end to end: real runner and host processes, file:// "S3".

Every job here is a hand-built CreateTrainingJob / CreateProcessingJob body, and the
programs are tiny scripts in a code tar.gz built by the test, so what is checked is the
container contract itself (paths, env, args, sharding, artifacts, state, signals).
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ssm_rules.backends.base import JobRequest, JobState, JobStatus, JobType
from ssm_rules.backends.local import LocalBackend, ResourceInUse, ValidationError
from ssm_rules.backends.local.hosts import MountMode, mount_mode
from ssm_rules.objects import file_uri

T = JobType.TRAINING
P = JobType.PROCESSING


@pytest.fixture(autouse=True)
def _fast_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner inherits the client's environment: short grace and sync periods.
    monkeypatch.setenv("SSM_STOP_GRACE_SECONDS", "2")
    monkeypatch.setenv("SSM_LOCAL_CHECKPOINT_SYNC_SECONDS", "0.2")
    monkeypatch.delenv("SSM_LOCAL_NO_MOUNT", raising=False)


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "jobs")


def code_tar(tmp_path: Path, files: dict[str, str], name: str = "sourcedir.tar.gz") -> str:
    path = tmp_path / "code" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return file_uri(path)


def data_dir(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    root = tmp_path / "s3" / name
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return file_uri(root, directory=True)


def training(
    tmp_path: Path,
    name: str,
    program: str,
    code: str,
    *,
    hps: dict[str, str] | None = None,
    channels: dict[str, tuple[str, str]] | None = None,
    count: int = 1,
    checkpoint: str | None = None,
    **extra: Any,
) -> JobRequest:
    body: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8",
            "TrainingInputMode": "File",
        },
        "RoleArn": "arn:aws:iam::000000000000:role/sm",
        "HyperParameters": {
            "sagemaker_program": json.dumps(program),
            "sagemaker_submit_directory": json.dumps(code),
            **(hps or {}),
        },
        "InputDataConfig": [
            {
                "ChannelName": ch,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": dist,
                    }
                },
            }
            for ch, (uri, dist) in (channels or {}).items()
        ],
        "OutputDataConfig": {"S3OutputPath": file_uri(tmp_path / "s3" / "out")},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": count,
            "VolumeSizeInGB": 5,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        **extra,
    }
    if checkpoint:
        body["CheckpointConfig"] = {"S3Uri": checkpoint, "LocalPath": "/opt/ml/checkpoints"}
    return JobRequest(T, body)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def run(backend: LocalBackend, request: JobRequest, timeout: float = 20.0) -> JobStatus:
    backend.submit(request)
    return wait_for(backend, request.name, request.job_type, timeout)


def wait_for(backend: LocalBackend, name: str, jt: JobType, timeout: float = 20.0) -> JobStatus:
    def done() -> JobStatus | None:
        st = backend.poll([(name, jt)])[name]
        return st if st.is_done else None

    return wait_until(done, timeout)


def members(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def log_text(backend: LocalBackend, name: str, jt: JobType = T) -> str:
    return "\n".join(e.message for e in backend.logs(name, jt))


# --- training ---------------------------------------------------------------------------

PROBE = """
    import json, os, sys
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("SM_", "SSM_", "AWS_", "TRAINING_", "SAGEMAKER_", "PATH", "PYTHON"))}
    model = os.environ["SM_MODEL_DIR"]
    data = os.environ.get("SM_CHANNEL_TRAIN", "")
    files = sorted(os.listdir(data)) if data else []
    with open(os.path.join(model, os.environ["SM_CURRENT_HOST"] + ".json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "env": env, "cwd": os.getcwd(), "files": files,
                   "exe": sys.executable}, f)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "out.txt"), "w") as f:
        f.write(os.environ["SM_CURRENT_HOST"])
    print("hello from", os.environ["SM_CURRENT_HOST"])
"""


def test_single_host_training(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "client-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "client-key")
    code = code_tar(tmp_path, {"train.py": PROBE})
    train = data_dir(tmp_path, "train", {"a.csv": "1", "sub/b.csv": "2"})
    req = training(
        tmp_path,
        "job-1",
        "train.py",
        code,
        hps={"epochs": "3", "lr": "0.01", "msg": "hello world", "x": '"q"', "d": '{"a": 1}'},
        channels={"train": (train, "FullyReplicated")},
        Environment={"MY_VAR": "v"},
    )
    st = run(backend, req)
    assert st.state is JobState.COMPLETED, st.failure_reason
    out = tmp_path / "s3" / "out" / "job-1" / "output"
    assert st.model_artifacts == file_uri(out / "model.tar.gz")
    model = members(out / "model.tar.gz")
    probe = json.loads(model["algo-1.json"])
    assert members(out / "output.tar.gz") == {"out.txt": "algo-1"}
    # toolkit args: sorted keys, JSON-decoded values, dicts as k=v, one-letter keys as -k
    assert probe["argv"] == [
        "-d",
        "a=1",
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--msg",
        "hello world",
        "-x",
        "q",
    ]
    env = probe["env"]
    assert json.loads(env["SM_HPS"]) == {
        "d": {"a": 1},
        "epochs": 3,
        "lr": 0.01,
        "msg": "hello world",
        "x": "q",
    }
    assert env["SM_HP_EPOCHS"] == "3"
    assert json.loads(env["SM_USER_ARGS"]) == probe["argv"]
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert probe["files"] == ["a.csv", "sub"]
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_NUM_GPUS"] == "0"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert env["TRAINING_JOB_NAME"] == "job-1"
    assert env["SM_MODULE_DIR"] == code
    assert json.loads(env["SM_TRAINING_ENV"])["hyperparameters"]["epochs"] == 3
    assert env["PATH"].split(":")[0] == os.path.dirname(probe["exe"])
    assert env["PYTHONPATH"].split(":")[0] == env["SM_MODULE_DIR"].replace(code, probe["cwd"])
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    assert probe["cwd"].endswith("/code")
    # the host's /opt/ml as SageMaker writes it
    host = tmp_path / "jobs" / "job-1" / "hosts" / "algo-1"
    hps = json.loads((host / "input/config/hyperparameters.json").read_text())
    assert hps["epochs"] == "3" and all(isinstance(v, str) for v in hps.values())
    rc = json.loads((host / "input/config/resourceconfig.json").read_text())
    assert rc["current_host"] == "algo-1" and rc["hosts"] == ["algo-1"]
    assert rc["network_interface_name"] == "eth0"
    idc = json.loads((host / "input/config/inputdataconfig.json").read_text())
    assert idc["train"]["S3DistributionType"] == "FullyReplicated"
    assert (host / "input/data/train/sub/b.csv").read_text() == "2"
    # Describe*-shaped status and logs
    desc = backend.describe("job-1", T)
    assert desc["TrainingJobStatus"] == "Completed" and desc["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert desc["HyperParameters"] == req.body["HyperParameters"]
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]
    events = list(backend.logs("job-1", T))
    assert {e.stream.rsplit("-", 1)[0] for e in events} == {"job-1/algo-1"}
    assert "hello from algo-1" in [e.message for e in events]


def test_two_hosts_sharded_and_merged_model(backend: LocalBackend, tmp_path: Path) -> None:
    code = code_tar(tmp_path, {"train.py": PROBE})
    train = data_dir(tmp_path, "train", {f"part-{i}": str(i) for i in range(4)})
    req = training(
        tmp_path, "job-2", "train.py", code, channels={"train": (train, "ShardedByS3Key")}, count=2
    )
    st = run(backend, req)
    assert st.state is JobState.COMPLETED, st.failure_reason
    out = tmp_path / "s3" / "out" / "job-2" / "output"
    model = members(out / "model.tar.gz")
    assert sorted(model) == ["algo-1.json", "algo-2.json"]  # merged from both hosts
    assert json.loads(model["algo-1.json"])["files"] == ["part-0", "part-2"]
    assert json.loads(model["algo-2.json"])["files"] == ["part-1", "part-3"]
    assert json.loads(json.loads(model["algo-2.json"])["env"]["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert members(out / "output.tar.gz") == {"out.txt": "algo-1"}  # main host only
    streams = {e.stream for e in backend.logs("job-2", T)}
    assert sorted(s.rsplit("-", 1)[0] for s in streams) == ["job-2/algo-1", "job-2/algo-2"]


STATEFUL = """
    import os, sys
    ck = "/opt/ml/checkpoints" if os.path.isdir("/opt/ml/checkpoints/") and \\
        "SSM_OPT_ML_ROOT" not in os.environ else os.environ["SSM_OPT_ML_ROOT"] + "/checkpoints"
    prev = open(os.path.join(ck, "count.txt")).read()
    open(os.path.join(ck, "count.txt"), "w").write(str(int(prev) + 1))
    os.makedirs(os.path.join(ck, "deep"), exist_ok=True)
    open(os.path.join(ck, "deep", "new.txt"), "w").write("n")
    sys.exit(int(sys.argv[sys.argv.index("--rc") + 1]))
"""


@pytest.mark.parametrize("rc", [0, 3])
def test_checkpoint_state_placed_and_uploaded(
    backend: LocalBackend, tmp_path: Path, rc: int
) -> None:
    state = data_dir(tmp_path, "state", {"count.txt": "41"})
    code = code_tar(tmp_path, {"train.py": STATEFUL})
    req = training(
        tmp_path, f"ckpt-{rc}", "train.py", code, hps={"rc": str(rc)}, checkpoint=state.rstrip("/")
    )
    st = run(backend, req)
    assert st.state is (JobState.COMPLETED if rc == 0 else JobState.FAILED)
    root = tmp_path / "s3" / "state"
    assert (root / "count.txt").read_text() == "42"  # also after a failure
    assert (root / "deep" / "new.txt").read_text() == "n"
    assert not (root / "state").exists()  # S3Uri is a folder, not a relative_key prefix


def test_failure_file_becomes_failure_reason(backend: LocalBackend, tmp_path: Path) -> None:
    code = code_tar(
        tmp_path,
        {
            "train.py": """
                import os, sys
                failure = os.environ["SM_OUTPUT_DIR"] + "/failure"
                open(failure, "w").write("bad input: " + "x" * 2000)
                sys.exit(1)
            """
        },
    )
    st = run(backend, training(tmp_path, "fail-1", "train.py", code))
    assert st.state is JobState.FAILED
    assert st.failure_reason == ("bad input: " + "x" * 2000)[:1024]
    assert not (tmp_path / "s3" / "out" / "fail-1").exists()  # no artifacts of a failed job
    assert backend.describe("fail-1", T)["SecondaryStatus"] == "Failed"


def test_failure_without_file_reports_exit_code_and_log_tail(
    backend: LocalBackend, tmp_path: Path
) -> None:
    code = code_tar(
        tmp_path, {"run.sh": '#!/bin/sh\necho "got $1 $2"\necho boom-line >&2\nexit 7\n'}
    )
    st = run(backend, training(tmp_path, "fail-2", "run.sh", code, hps={"aa": '"b c"'}))
    assert st.state is JobState.FAILED
    reason = st.failure_reason or ""
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:")
    assert "ExitCode 7" in reason and "boom-line" in reason
    assert "got --aa b c" in reason  # .sh run by /bin/sh with shell-quoted toolkit args


def test_other_hosts_get_sigterm_when_one_fails(backend: LocalBackend, tmp_path: Path) -> None:
    # algo-1 would sleep past the wait's deadline: only a SIGTERM ends it in time, and it
    # says so in a file outside the job
    said = tmp_path / "algo-1-got-sigterm"
    ready = tmp_path / "algo-1-handles-sigterm"  # algo-2 fails only once algo-1 can say so
    code = code_tar(
        tmp_path,
        {
            "train.py": f"""
                import os, pathlib, signal, sys, time
                if os.environ["SM_CURRENT_HOST"] == "algo-2":
                    while not pathlib.Path({str(ready)!r}).exists():
                        time.sleep(0.05)
                    sys.exit(5)
                def ended(*_):
                    pathlib.Path({str(said)!r}).write_text("SIGTERM")
                    sys.exit(0)
                signal.signal(signal.SIGTERM, ended)
                pathlib.Path({str(ready)!r}).write_text("")
                time.sleep(600)
            """
        },
    )
    st = run(backend, training(tmp_path, "fail-3", "train.py", code, count=2), timeout=300)
    assert st.state is JobState.FAILED and "ExitCode 5" in (st.failure_reason or "")
    assert said.read_text() == "SIGTERM"


TRAP = """
    import os, signal, sys, time
    def on_term(signum, frame):
        open(os.path.join(os.environ["SM_MODEL_DIR"], "stopped.txt"), "w").write("saved")
        ck = os.environ.get("SSM_OPT_ML_ROOT", "/opt/ml") + "/checkpoints"
        open(os.path.join(ck, "state.txt"), "w").write("saved")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    time.sleep(60)
"""


def test_stop_sends_sigterm_then_stopped(backend: LocalBackend, tmp_path: Path) -> None:
    state = data_dir(tmp_path, "state", {})
    code = code_tar(tmp_path, {"train.py": TRAP})
    req = training(tmp_path, "stop-1", "train.py", code, checkpoint=state)
    backend.submit(req)
    wait_until(lambda: "ready" in log_text(backend, "stop-1"))
    backend.stop([("stop-1", T)])
    assert backend.poll([("stop-1", T)])["stop-1"].state in (JobState.STOPPING, JobState.STOPPED)
    st = wait_for(backend, "stop-1", T)
    assert st.state is JobState.STOPPED
    assert (tmp_path / "s3" / "state" / "state.txt").read_text() == "saved"
    # a stopped training job keeps what it saved: model.tar.gz is uploaded
    model = tmp_path / "s3" / "out" / "stop-1" / "output" / "model.tar.gz"
    assert st.model_artifacts and members(model) == {"stopped.txt": "saved"}
    statuses = [t["Status"] for t in backend.describe("stop-1", T)["SecondaryStatusTransitions"]]
    assert statuses[-2:] == ["Stopping", "Stopped"]
    backend.stop([("stop-1", T)])  # stopping a finished job is a no-op


def test_max_runtime_exceeded(backend: LocalBackend, tmp_path: Path) -> None:
    code = code_tar(tmp_path, {"train.py": "import time\ntime.sleep(60)\n"})
    req = training(tmp_path, "slow-1", "train.py", code)
    req.body["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    st = run(backend, req)
    assert st.state is JobState.STOPPED and st.secondary == "MaxRuntimeExceeded"


def test_runner_killed_fails_the_job(backend: LocalBackend, tmp_path: Path) -> None:
    code = code_tar(
        tmp_path, {"train.py": "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"}
    )
    backend.submit(training(tmp_path, "kill-1", "train.py", code))
    wait_until(lambda: "ready" in log_text(backend, "kill-1"))
    pid = int((tmp_path / "jobs" / "kill-1" / "runner.pid").read_text())
    status = json.loads((tmp_path / "jobs" / "kill-1" / "status.json").read_text())
    host_pid = status["Local"]["Hosts"][0]["Pid"]
    os.kill(pid, signal.SIGKILL)
    st = wait_for(backend, "kill-1", T)
    assert st.state is JobState.FAILED and "local runner died" in (st.failure_reason or "")
    wait_until(lambda: not _alive(host_pid), timeout=5)  # its hosts do not run on


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


# --- /opt/ml: mount namespace and fallback ----------------------------------------------

LITERAL = """
    import json, os
    os.makedirs("/opt/ml/model", exist_ok=True)
    host = os.environ["SM_CURRENT_HOST"]
    open("/opt/ml/model/" + host + ".txt", "w").write(host)
    json.dump({"seen": sorted(os.listdir("/opt/ml/model")), "model_dir": os.environ["SM_MODEL_DIR"],
               "root": os.environ.get("SSM_OPT_ML_ROOT")},
              open("/opt/ml/output/data/" + host + ".json", "w"))
"""


@pytest.mark.skipif(mount_mode() is MountMode.NONE, reason="no mount namespaces here")
def test_mount_namespace_gives_each_host_a_private_opt_ml(
    backend: LocalBackend, tmp_path: Path
) -> None:
    code = code_tar(tmp_path, {"train.py": LITERAL})
    st = run(backend, training(tmp_path, "mnt-1", "train.py", code, count=2))
    assert st.state is JobState.COMPLETED, st.failure_reason
    out = tmp_path / "s3" / "out" / "mnt-1" / "output"
    assert members(out / "model.tar.gz") == {"algo-1.txt": "algo-1", "algo-2.txt": "algo-2"}
    seen = json.loads(members(out / "output.tar.gz")["algo-1.json"])
    assert seen == {"seen": ["algo-1.txt"], "model_dir": "/opt/ml/model", "root": None}
    assert not os.path.exists("/opt/ml/model/algo-1.txt")  # nothing leaked to the real /opt/ml


def test_no_mount_fallback_points_into_the_sandbox(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSM_LOCAL_NO_MOUNT", "1")
    code = code_tar(tmp_path, {"train.py": PROBE})
    st = run(backend, training(tmp_path, "nomnt-1", "train.py", code))
    assert st.state is JobState.COMPLETED, st.failure_reason
    out = tmp_path / "s3" / "out" / "nomnt-1" / "output"
    env = json.loads(members(out / "model.tar.gz")["algo-1.json"])["env"]
    sandbox = str(tmp_path / "jobs" / "nomnt-1" / "hosts" / "algo-1")
    assert env["SSM_OPT_ML_ROOT"] == sandbox
    assert env["SM_MODEL_DIR"] == sandbox + "/model"
    assert backend.describe("nomnt-1", T)["TrainingJobStatus"] == "Completed"


# --- processing ----------------------------------------------------------------------------

PROC = """
    import json, os, sys
    cfg = json.load(open(sys.argv[1] + "/config/processingjobconfig.json"))
    rc = json.load(open(sys.argv[1] + "/config/resourceconfig.json"))
    data = sys.argv[1] + "/processing/input/data"
    out = sys.argv[1] + "/processing/output"
    os.makedirs(out + "/sub", exist_ok=True)
    json.dump({"name": cfg["ProcessingJobName"], "host": rc["current_host"], "hosts": rc["hosts"],
               "files": sorted(os.listdir(data)), "env": os.environ.get("MY_VAR")},
              open(out + "/sub/" + rc["current_host"] + ".json", "w"))
"""


def processing(tmp_path: Path, name: str, program: str) -> JobRequest:
    script = tmp_path / "s3" / "code" / "proc.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(textwrap.dedent(program))
    data = data_dir(tmp_path, "pdata", {f"f{i}": "x" for i in range(3)})
    body = {
        "ProcessingJobName": name,
        "RoleArn": "arn:aws:iam::000000000000:role/sm",
        "AppSpecification": {
            "ImageUri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8",
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/proc.py"],
            "ContainerArguments": ["/opt/ml"],
        },
        "Environment": {"MY_VAR": "yes"},
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": file_uri(script),
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            },
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": data,
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "ShardedByS3Key",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": file_uri(tmp_path / "s3" / "pout"),
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                },
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 2,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    return JobRequest(P, body)


@pytest.mark.parametrize("no_mount", ["", "1"])
def test_processing_job(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_mount: str
) -> None:
    monkeypatch.setenv("SSM_LOCAL_NO_MOUNT", no_mount)
    name = f"proc-{no_mount or 'mnt'}"
    st = run(backend, processing(tmp_path, name, PROC))
    assert st.state is JobState.COMPLETED, st.failure_reason
    a1 = json.loads((tmp_path / "s3" / "pout" / "sub" / "algo-1.json").read_text())
    a2 = json.loads((tmp_path / "s3" / "pout" / "sub" / "algo-2.json").read_text())
    assert a1 == {
        "name": name,
        "host": "algo-1",
        "hosts": ["algo-1", "algo-2"],
        "files": ["f0", "f2"],
        "env": "yes",
    }
    assert a2["files"] == ["f1"]
    desc = backend.describe(name, P)
    assert desc["ProcessingJobStatus"] == "Completed" and "ProcessingEndTime" in desc
    assert desc["ProcessingJobArn"].endswith(f"processing-job/{name}")


def test_failed_processing_uploads_continuous_outputs_only(
    backend: LocalBackend, tmp_path: Path
) -> None:
    req = processing(
        tmp_path,
        "proc-fail",
        """
        import os, sys
        for d in ("output", "logs"):
            os.makedirs(sys.argv[1] + "/processing/" + d, exist_ok=True)
            open(sys.argv[1] + "/processing/" + d + "/x.txt", "w").write(d)
        print("proc went wrong")
        sys.exit(4)
        """,
    )
    req.body["ProcessingOutputConfig"]["Outputs"].append(
        {
            "OutputName": "logs",
            "S3Output": {
                "S3Uri": file_uri(tmp_path / "s3" / "plogs"),
                "LocalPath": "/opt/ml/processing/logs",
                "S3UploadMode": "Continuous",
            },
        }
    )
    st = run(backend, req)
    assert st.state is JobState.FAILED
    assert "ExitCode 4" in (st.failure_reason or "") and "proc went wrong" in st.failure_reason
    assert (tmp_path / "s3" / "plogs" / "x.txt").read_text() == "logs"
    assert not (tmp_path / "s3" / "pout").exists()
    assert "ExitMessage" in backend.describe("proc-fail", P)


def test_training_container_entrypoint_bypasses_script_mode(
    backend: LocalBackend, tmp_path: Path
) -> None:
    req = training(tmp_path, "ep-1", "unused.py", "file:///nonexistent.tar.gz")
    req.body["HyperParameters"] = {"k": "v"}
    req.body["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python3", "-c"]
    req.body["AlgorithmSpecification"]["ContainerArguments"] = [
        "import json, os; json.dump(json.load(open(os.environ.get('SSM_OPT_ML_ROOT', '/opt/ml')"
        " + '/input/config/hyperparameters.json')), open(os.environ.get('SSM_OPT_ML_ROOT',"
        " '/opt/ml') + '/model/hp.json', 'w'))"
    ]
    st = run(backend, req)
    assert st.state is JobState.COMPLETED, st.failure_reason
    model = tmp_path / "s3" / "out" / "ep-1" / "output" / "model.tar.gz"
    assert json.loads(members(model)["hp.json"]) == {"k": "v"}


def test_empty_channel_fails_like_sagemaker(backend: LocalBackend, tmp_path: Path) -> None:
    code = code_tar(tmp_path, {"train.py": "print('hi')\n"})
    empty = data_dir(tmp_path, "empty", {})
    st = run(
        backend,
        training(
            tmp_path, "empty-1", "train.py", code, channels={"train": (empty, "FullyReplicated")}
        ),
    )
    assert st.state is JobState.FAILED
    assert "No S3 objects found under S3 URL" in (st.failure_reason or "")


# --- the service's refusals ---------------------------------------------------------------


def test_duplicate_name_and_bad_requests(backend: LocalBackend, tmp_path: Path) -> None:
    code = code_tar(tmp_path, {"train.py": "print('hi')\n"})
    req = training(tmp_path, "dup-1", "train.py", code)
    run(backend, req)
    with pytest.raises(ResourceInUse, match="must be unique"):
        backend.submit(req)
    with pytest.raises(ValidationError, match="must match"):
        backend.submit(training(tmp_path, "bad_name", "train.py", code))
    bad = training(tmp_path, "pipe-1", "train.py", code)
    bad.body["AlgorithmSpecification"]["TrainingInputMode"] = "Pipe"
    with pytest.raises(ValidationError, match="Pipe"):
        backend.submit(bad)
    with pytest.raises(LookupError):
        backend.poll([("nope", T)])


def test_unsafe_code_bundle_is_refused(backend: LocalBackend, tmp_path: Path) -> None:
    code = code_tar(tmp_path, {"../evil.py": "print('x')\n", "train.py": "print('hi')\n"})
    st = run(backend, training(tmp_path, "evil-1", "train.py", code))
    assert st.state is JobState.FAILED and "ClientError" in (st.failure_reason or "")
    assert not (tmp_path / "jobs" / "evil-1" / "hosts" / "evil.py").exists()


# --- units -----------------------------------------------------------------------------------


def test_script_mode_reports_this_machines_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssm_rules.backends.local import toolkit
    from ssm_rules.backends.local.sandbox import Sandbox
    from worker_toolkit import _common

    monkeypatch.setattr(_common, "count_gpus", lambda: 4)
    req = training(tmp_path, "gpu-1", "train.py", "file:///code.tar.gz")
    plan = toolkit.plan(req.body, Sandbox(tmp_path / "h", "algo-1", 0, False), ["algo-1"], 2)
    assert plan.env["SM_NUM_GPUS"] == "4"
    assert json.loads(plan.env["SM_TRAINING_ENV"])["num_gpus"] == 4


def test_fault_prefix_is_a_rule_name_not_any_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssm_rules.backends.local.faults import SpotFaults, spot_faults

    table = tmp_path / "faults.json"
    table.write_text(json.dumps({"train": {"spot_interruptions": 2}}))
    monkeypatch.setenv("SSM_LOCAL_FAULTS", str(table))
    spot = {"EnableManagedSpotTraining": True}
    assert spot_faults("train-0101000000-abcdef", spot).interruptions == 2
    assert spot_faults("trainer-0101000000-abcdef", spot) == SpotFaults()


# --- a runner that cannot run ------------------------------------------------------------


def test_runner_that_does_not_start_fails_its_job(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssm_rules.backends.local import service

    code = code_tar(tmp_path, {"train.py": "print('hi')\n"})
    monkeypatch.setattr(service, "RUNNER_MODULE", "ssm_rules.no_such_runner")
    with pytest.raises(RuntimeError, match="did not start"):
        backend.submit(training(tmp_path, "nostart-1", "train.py", code))
    st = backend.poll([("nostart-1", T)])["nostart-1"]
    assert st.state is JobState.FAILED
    reason = st.failure_reason or ""
    assert reason.startswith("InternalServerError: local runner did not start")
    assert "no_such_runner" in reason


def test_job_without_a_runner_is_failed_after_a_while(
    backend: LocalBackend, tmp_path: Path
) -> None:
    from ssm_rules.backends.local import status
    from ssm_rules.backends.local.jobdir import JobDir, write_json_atomic

    body = training(tmp_path, "orphan-1", "train.py", "file:///code.tar.gz").body
    jobdir = JobDir(tmp_path / "jobs" / "orphan-1")
    jobdir.path.mkdir(parents=True)
    write_json_atomic(jobdir.request_file, body)
    jobdir.write_status(status.initial(T, body))
    assert backend.poll([("orphan-1", T)])["orphan-1"].state is JobState.IN_PROGRESS  # starting
    old = time.time() - 120
    os.utime(jobdir.request_file, (old, old))
    st = backend.poll([("orphan-1", T)])["orphan-1"]
    assert st.state is JobState.FAILED and "did not start" in (st.failure_reason or "")


def test_runner_setup_error_is_the_jobs_failure_reason(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text("{not json")
    monkeypatch.setenv("SSM_LOCAL_FAULTS", str(faults))
    code = code_tar(tmp_path, {"train.py": "print('hi')\n"})
    req = training(tmp_path, "badfaults-1", "train.py", code, EnableManagedSpotTraining=True)
    req.body["StoppingCondition"]["MaxWaitTimeInSeconds"] = 600
    st = run(backend, req)
    assert st.state is JobState.FAILED
    assert "JSONDecodeError" in (st.failure_reason or ""), st.failure_reason
    assert "runner died" not in (st.failure_reason or "")


# --- spot time limits ------------------------------------------------------------------------

QUICK_TO_STOP = """
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(600)
"""


@pytest.mark.parametrize(
    ("max_run", "max_wait", "secondary"),
    [(2, 600, "MaxRuntimeExceeded"), (3, 3, "MaxWaitTimeExceeded")],
)
def test_spot_time_limits_span_interruptions(
    backend: LocalBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    max_run: int,
    max_wait: int,
    secondary: str,
) -> None:
    """Interrupted every 0.4 s: MaxRuntime counts the training of every attempt (a restart
    does not reset it); MaxWait counts from the start, interruptions included."""
    faults = tmp_path / "faults.json"
    fault = {"spot_interruptions": 1000, "interrupt_after_seconds": 0.4}
    faults.write_text(json.dumps({"spotlim": fault}))
    monkeypatch.setenv("SSM_LOCAL_FAULTS", str(faults))
    code = code_tar(tmp_path, {"train.py": QUICK_TO_STOP})
    name = f"spotlim-{max_run}"
    req = training(tmp_path, name, "train.py", code, EnableManagedSpotTraining=True)
    req.body["StoppingCondition"] = {
        "MaxRuntimeInSeconds": max_run,
        "MaxWaitTimeInSeconds": max_wait,
    }
    # QUICK_TO_STOP sleeps 600 s: a limit that restarted with each attempt would never stop
    # it before the wait's deadline
    st = run(backend, req, timeout=300)
    assert st.state is JobState.STOPPED and st.secondary == secondary
    transitions = [t["Status"] for t in backend.describe(name, T)["SecondaryStatusTransitions"]]
    assert transitions.count("Interrupted") >= 2


# --- symlinks in /opt/ml ---------------------------------------------------------------------

LINKS = """
    import os
    root = os.environ.get("SSM_OPT_ML_ROOT", "/opt/ml")
    model, ck = os.environ["SM_MODEL_DIR"], root + "/checkpoints"
    open(model + "/a.txt", "w").write("a")
    os.symlink("/etc/hostname", model + "/host.txt")  # this machine's file: not the job's
    os.symlink("/opt/ml/model/a.txt", model + "/b.txt")  # the job's own file
    open(ck + "/c.txt", "w").write("c")
    os.symlink("/etc/hostname", ck + "/host.txt")
    os.symlink("/opt/ml/checkpoints/c.txt", ck + "/d.txt")
    os.symlink("c.txt", ck + "/rel.txt")
"""


@pytest.mark.parametrize("no_mount", ["", "1"])
def test_symlinks_are_the_jobs_not_this_machines(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_mount: str
) -> None:
    monkeypatch.setenv("SSM_LOCAL_NO_MOUNT", no_mount)
    state = data_dir(tmp_path, "state", {})
    code = code_tar(tmp_path, {"train.py": LINKS})
    name = f"links-{no_mount or 'mnt'}"
    st = run(backend, training(tmp_path, name, "train.py", code, checkpoint=state))
    assert st.state is JobState.COMPLETED, st.failure_reason
    with tarfile.open(tmp_path / "s3" / "out" / name / "output" / "model.tar.gz") as tar:
        found = {m.name: (m.type, m.linkname) for m in tar.getmembers()}
    assert found == {  # as `tar` in the container stores them
        "a.txt": (tarfile.REGTYPE, ""),
        "host.txt": (tarfile.SYMTYPE, "/etc/hostname"),
        "b.txt": (tarfile.SYMTYPE, "/opt/ml/model/a.txt"),
    }
    uploaded = {p.name: p.read_text() for p in (tmp_path / "s3" / "state").iterdir()}
    assert uploaded == {"c.txt": "c", "d.txt": "c", "rel.txt": "c"}  # no host.txt


def test_log_reader_returns_whole_lines_once(backend: LocalBackend, tmp_path: Path) -> None:
    """Following a job's log: each line once, a line without its newline only when complete
    (or when the job ended)."""
    program = """
        import sys, time
        print("one", flush=True)
        sys.stdout.write("par"); sys.stdout.flush(); time.sleep(1.5)
        print("tial", flush=True); time.sleep(1.0)
        sys.stdout.write("last without newline"); sys.stdout.flush()
    """
    code = code_tar(tmp_path, {"prog.py": program})
    backend.submit(training(tmp_path, "follow-1", "prog.py", code))
    reader = backend.log_reader("follow-1", T)
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ended = backend.poll([("follow-1", T)])["follow-1"].is_done
        seen += [e.message for e in reader.read()]
        if ended:
            break
        time.sleep(0.2)
    assert "one" in seen and "partial" in seen and "par" not in seen
    assert seen[-1] == "last without newline"
    # nothing twice, nothing lost: the pieces add up to the whole log
    assert seen == [e.message for e in backend.logs("follow-1", T)]


# --- the files SageMaker writes under /opt/ml/input -----------------------------------------
INPUT_FILES = """
    import json, os, pathlib
    config, data = pathlib.Path(os.environ["SM_INPUT_CONFIG_DIR"]), pathlib.Path(os.environ["SM_INPUT_DIR"], "data")
    seen = {p.name: json.loads(p.read_text()) for p in config.glob("*.json")}
    seen.update({p.name: p.read_text().splitlines() for p in data.glob("*-manifest")})
    out = pathlib.Path(os.environ["SM_MODEL_DIR"], os.environ["SM_CURRENT_HOST"] + ".json")
    out.write_text(json.dumps(seen))
"""


def test_training_container_holds_sagemakers_input_files(
    backend: LocalBackend, tmp_path: Path
) -> None:
    """checkpointconfig.json, init-config.json, trainingjobconfig.json, the metric and
    tensorboard configs, data/<channel>-manifest (this host's share) and
    data/checkpoints-manifest, shaped as the service writes them, seen from inside the job."""
    code = code_tar(tmp_path, {"train.py": INPUT_FILES})
    train = data_dir(tmp_path, "train", {f"part-{i}": str(i) for i in range(3)})
    state = data_dir(tmp_path, "state", {"s.txt": "s"})
    metrics = [{"Name": "loss", "Regex": "loss=(.*?);"}]
    req = training(
        tmp_path, "files-1", "train.py", code, channels={"train": (train, "ShardedByS3Key")},
        count=2, checkpoint=state.rstrip("/"),
    )  # fmt: skip
    req.body["AlgorithmSpecification"]["MetricDefinitions"] = metrics
    st = run(backend, req)
    assert st.state is JobState.COMPLETED, st.failure_reason
    model = members(tmp_path / "s3" / "out" / "files-1" / "output" / "model.tar.gz")
    host1, host2 = (json.loads(model[f"algo-{i}.json"]) for i in (1, 2))

    assert host1["checkpointconfig.json"] == {"LocalPath": "/opt/ml/checkpoints"}
    assert host1["metric-definition-regex.json"] == metrics
    assert host1["upstreamoutputdataconfig.json"] == []
    assert host1["trainingjobconfig.json"]["TrainingJobName"] == "files-1"
    assert host1["trainingjobconfig.json"]["InputDataConfig"] == req.body["InputDataConfig"]
    tb = host1["tensorboardoutputconfig.json"]
    assert tb["S3OutputPath"].endswith("/out/files-1/tensorboard-output")
    assert tb["LocalPath"] == "/opt/ml/output/tensorboard/"
    init = host2["init-config.json"]
    assert init["hostConfig"] == {"clusterSize": 2, "hostNumber": 2}
    channel = init["channels"]["train"]
    assert channel["s3DataSource"]["s3DataDistributionType"] == "SHARDED_BY_S3_KEY"
    assert channel["s3DataSource"]["s3Uri"] == train and channel["sharded"] is True
    assert init["checkpointChannel"]["channel"]["s3DataSource"]["s3Uri"] == state.rstrip("/")
    assert init["checkpointChannel"]["outputPath"] == "/opt/ml/checkpoints"
    # data/train-manifest: the prefix without scheme and bucket, then this host's objects
    prefix = train.split("://", 1)[1].split("/", 1)[1]
    assert host1["train-manifest"] == [prefix, f"{train}part-0", f"{train}part-2"]
    assert host2["train-manifest"] == [prefix, f"{train}part-1"]
    assert host1["checkpoints-manifest"] == [state.rstrip("/").split("://", 1)[1].split("/", 1)[1]]


def test_no_output_tarball_when_the_job_wrote_no_output_data(
    backend: LocalBackend, tmp_path: Path
) -> None:
    """As SageMaker may: no output.tar.gz for an empty SM_OUTPUT_DATA_DIR (the client promotes
    an empty one); model.tar.gz is always uploaded, empty or not."""
    code = code_tar(tmp_path, {"train.py": "print('writes nothing')\n"})
    st = run(backend, training(tmp_path, "nothing-1", "train.py", code))
    assert st.state is JobState.COMPLETED, st.failure_reason
    out = tmp_path / "s3" / "out" / "nothing-1" / "output"
    assert sorted(p.name for p in out.iterdir()) == ["model.tar.gz"]
    assert members(out / "model.tar.gz") == {}


def test_a_runner_asked_for_by_a_client_gone_before_the_server_was_ready_still_runs(
    backend: LocalBackend, tmp_path: Path
) -> None:
    """A client killed right after asking (the server still importing) must not leave a job
    that never runs: the server serves what is in its pipe, though nobody reads its replies."""
    import subprocess
    import sys

    from ssm_rules.backends.local import status
    from ssm_rules.backends.local.jobdir import RUNNER_MODULE, JobDir, write_json_atomic

    code = code_tar(tmp_path, {"train.py": "print('hi')\n"})
    body = training(tmp_path, "early-1", "train.py", code).body
    jobdir = JobDir(tmp_path / "jobs" / "early-1")
    jobdir.logs_dir.mkdir(parents=True)
    write_json_atomic(jobdir.request_file, body)
    jobdir.write_status(status.initial(T, body))
    server = subprocess.Popen(
        [sys.executable, "-m", RUNNER_MODULE, "--server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=backend._runner_env(),
    )
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(
        json.dumps({"jobdir": str(jobdir.path), "env": backend._runner_env()}).encode() + b"\n"
    )
    server.stdin.close()
    server.stdout.close()  # gone before "ready": every reply meets a broken pipe
    server.wait(timeout=60)
    assert jobdir.runner_pid() is not None
    deadline = time.monotonic() + 60
    while backend.poll([("early-1", T)])["early-1"].state is JobState.IN_PROGRESS:
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.1)
    assert backend.poll([("early-1", T)])["early-1"].state is JobState.COMPLETED
