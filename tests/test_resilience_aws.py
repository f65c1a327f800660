"""Never lose work or money, on the aws backend: the same scenarios as test_resilience.py,
against the moto server whose jobs really run, counted in API calls."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.e2e import Workflow, aws_args, wait_for
from tests.test_resilience import STATEFUL, TRAIN_PY, gated, rerun_until, slow_jobs

pytestmark = pytest.mark.slow


def workflow(tmp_path, steps: int) -> Workflow:
    wf = Workflow(tmp_path)
    wf.write("Snakefile", STATEFUL.replace("STEPS", str(steps)).replace("SPOT", "1"))
    wf.write("train.py", TRAIN_PY)
    return wf


def training_statuses(aws) -> list[str]:
    sm = aws.client("sagemaker")
    return [s["TrainingJobStatus"] for s in sm.list_training_jobs()["TrainingJobSummaries"]]


def s3_text(aws, bucket: str, key: str) -> str:
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_killed_client_rerun_creates_no_second_job(tmp_path, aws, bucket, api_calls):
    wf = workflow(tmp_path / "wf", steps=2)
    gate = tmp_path / "gate"  # the job ends once it exists: still running for the rerun
    wf.write("train.py", gated(TRAIN_PY, gate))
    client = wf.popen(*aws_args(bucket), env=aws.env())
    wait_for(lambda: training_statuses(aws) == ["InProgress"])
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    wf.run(*aws_args(bucket), "--unlock", env=aws.env())
    out = rerun_until(wf.popen(*aws_args(bucket), env=aws.env()), "re-attaching", gate.touch)
    assert "re-attaching to job" in out
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 1  # zero extra Create calls
    assert s3_text(aws, bucket, "wf/out.txt") == "steps=2\n"


def test_no_spot_capacity_falls_back_to_on_demand(tmp_path, aws, bucket, api_calls, monkeypatch):
    wf = workflow(tmp_path, steps=1)
    faults = wf.write("faults.json", json.dumps({"train": {"spot_capacity": False}}))
    monkeypatch.setenv("SSM_LOCAL_FAULTS", str(faults))  # the hook's runners read it
    wf.run(*aws_args(bucket), env=aws.env())
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 3  # spot, spot, on-demand
    sm = aws.client("sagemaker")
    jobs = sm.list_training_jobs(SortBy="CreationTime", SortOrder="Ascending")[
        "TrainingJobSummaries"
    ]
    spot = [
        sm.describe_training_job(TrainingJobName=j["TrainingJobName"])["EnableManagedSpotTraining"]
        for j in jobs
    ]
    assert spot == [True, True, False]
    assert s3_text(aws, bucket, "wf/out.txt") == "steps=1\n"


def test_spot_interruption_resumes_in_the_same_job(tmp_path, aws, bucket, api_calls, monkeypatch):
    wf = workflow(tmp_path, steps=8)
    faults = wf.write(
        "faults.json",
        json.dumps({"train": {"spot_interruptions": 1, "interrupt_after_seconds": 1.2}}),
    )
    monkeypatch.setenv("SSM_LOCAL_FAULTS", str(faults))
    monkeypatch.setenv("SSM_STOP_GRACE_SECONDS", "3")
    wf.run(*aws_args(bucket), env=aws.env())
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 1
    log = s3_text(aws, bucket, "wf/train.log")
    assert "saved at step" in log and "starting at step 0" in log
    assert [ln for ln in log.splitlines() if ln.startswith("starting at step")][
        -1
    ] != "starting at step 0"


def test_ctrl_c_stops_each_job_once(tmp_path, aws, bucket, api_calls, monkeypatch):
    monkeypatch.setenv("SSM_STOP_GRACE_SECONDS", "2")
    wf = Workflow(tmp_path)
    wf.write("Snakefile", slow_jobs(2))
    client = wf.popen(*aws_args(bucket), env=aws.env())
    wait_for(lambda: training_statuses(aws) == ["InProgress"] * 2)
    time.sleep(1)
    client.send_signal(signal.SIGINT)
    output = client.communicate(timeout=120)[0]
    assert "stopping 2 SageMaker job(s)" in output
    assert api_calls.count("sagemaker", "StopTrainingJob") == 2  # one per in-flight job
    assert set(training_statuses(aws)) <= {"Stopping", "Stopped"}
    wait_for(lambda: training_statuses(aws) == ["Stopped"] * 2)


def test_detach_stops_nothing(tmp_path, aws, bucket, api_calls):
    wf = Workflow(tmp_path)
    wf.write(
        "Snakefile",
        """
rule slow:
    output: "o.txt"
    resources: spot=0
    shell: "sleep 3; echo ok > {output}"
""",
    )
    client = wf.popen(*aws_args(bucket), "--sagemaker-detach", env=aws.env())
    wait_for(lambda: training_statuses(aws) == ["InProgress"])
    client.send_signal(signal.SIGINT)
    assert "leaving 1 SageMaker job(s) running" in client.communicate(timeout=60)[0]
    assert api_calls.count("sagemaker", "StopTrainingJob") == 0
    wf.run(*aws_args(bucket), "--unlock", env=aws.env())
    wf.run(*aws_args(bucket), env=aws.env())
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 1
    assert s3_text(aws, bucket, "wf/o.txt") == "ok\n"
