"""The moto hook, through plain boto3: moto's SageMaker jobs run for real.

Each test talks to the moto server only as a client would: upload code and data to S3,
Create*Job, poll Describe*/List*, read CloudWatch Logs, Stop*Job.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ssm_rules.backends.base import JobType
from tests.moto_sagemaker import LOG_GROUPS, MotoServer, iter_log_messages, wait_for

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-cpu-py312"

TRAIN_PY = textwrap.dedent(
    """\
    import argparse, os, pathlib, signal, sys, time

    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="ok")
    args = parser.parse_args()
    data = pathlib.Path(os.environ["SM_CHANNEL_DATA"], "rows.txt").read_text()
    print("read", len(data.splitlines()), "rows", flush=True)
    if args.mode == "fail":
        pathlib.Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("bad rows: cannot train")
        print("failing on purpose", flush=True)
        sys.exit(3)
    if args.mode == "wait":
        print("waiting for a stop", flush=True)
        while True:
            time.sleep(0.1)
    pathlib.Path(os.environ["SM_MODEL_DIR"], "weights.txt").write_text(data.upper())
    pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt").write_text("rows ok")
    print("loss=0.25;", flush=True)
    print("done training", flush=True)
    """
)

PROCESS_PY = textwrap.dedent(
    """\
    import os, pathlib
    # /opt/ml, or the directory standing for it where the local backend cannot mount one
    root = pathlib.Path(os.environ.get("SSM_OPT_ML_ROOT", "/opt/ml"))
    src = root / "processing/input/data/rows.txt"
    out = root / "processing/output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "count.txt").write_text(str(len(src.read_text().splitlines())))
    print("processed", src.name, flush=True)
    """
)


def _code_bundle(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def staged(aws: MotoServer, bucket: str) -> str:
    """Code bundle and one channel in moto's S3; returns the bucket."""
    s3 = aws.client("s3")
    s3.put_object(
        Bucket=bucket, Key="code/sourcedir.tar.gz", Body=_code_bundle({"train.py": TRAIN_PY})
    )
    s3.put_object(Bucket=bucket, Key="code/process.py", Body=PROCESS_PY.encode())
    s3.put_object(Bucket=bucket, Key="data/rows.txt", Body=b"a\nb\nc\n")
    return bucket


def training_body(name: str, bucket: str, mode: str = "ok") -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": {
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(f"s3://{bucket}/code/sourcedir.tar.gz"),
            "mode": json.dumps(mode),
        },
        "InputDataConfig": [
            {
                "ChannelName": "data",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/data/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Environment": {"TEAM": "ml"},
    }


def processing_body(name: str, bucket: str) -> dict[str, Any]:
    def s3_input(input_name: str, uri: str, local: str) -> dict[str, Any]:
        return {
            "InputName": input_name,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": local,
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }

    return {
        "ProcessingJobName": name,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "AppSpecification": {
            "ImageUri": IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/process.py"],
        },
        "ProcessingInputs": [
            s3_input("code", f"s3://{bucket}/code/process.py", "/opt/ml/processing/input/code"),
            s3_input("data", f"s3://{bucket}/data/", "/opt/ml/processing/input/data"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/processed/{name}",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "RoleArn": ROLE,
    }


def wait_training(sm: Any, name: str, *states: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        desc = sm.describe_training_job(TrainingJobName=name)
        return desc if desc["TrainingJobStatus"] in states else None

    return wait_for(reached, timeout=300, what=f"{name} in {states}")


def tar_members(s3: Any, bucket: str, key: str) -> dict[str, bytes]:
    blob = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_training_job_runs_and_writes_its_artifacts(aws: MotoServer, staged: str) -> None:
    sm, s3, logs = aws.client("sagemaker"), aws.client("s3"), aws.client("logs")
    sm.create_training_job(**training_body("train-ok", staged))

    first = sm.describe_training_job(TrainingJobName="train-ok")
    assert first["TrainingJobStatus"] == "InProgress"
    assert "TrainingEndTime" not in first

    done = wait_training(sm, "train-ok", "Completed", "Failed", "Stopped")
    assert done["TrainingJobStatus"] == "Completed", done.get("FailureReason")
    assert done["SecondaryStatus"] == "Completed"
    statuses = [t["Status"] for t in done["SecondaryStatusTransitions"]]
    assert statuses[0] == "Starting" and statuses[-1] == "Completed"
    assert "Training" in statuses
    assert done["TrainingStartTime"] <= done["TrainingEndTime"]
    assert done["LastModifiedTime"] >= done["TrainingEndTime"]
    model_uri = f"s3://{staged}/jobs/train-ok/output/model.tar.gz"
    assert done["ModelArtifacts"]["S3ModelArtifacts"] == model_uri
    assert done["Environment"] == {"TEAM": "ml"}  # as sent (moto alone drops it)
    assert "FailureReason" not in done

    model = tar_members(s3, staged, "jobs/train-ok/output/model.tar.gz")
    assert model["weights.txt"] == b"A\nB\nC\n"
    output = tar_members(s3, staged, "jobs/train-ok/output/output.tar.gz")
    assert output["report.txt"] == b"rows ok"

    lines = list(iter_log_messages(logs, LOG_GROUPS[JobType.TRAINING], "train-ok/"))
    streams = {stream for stream, _ in lines}
    assert len(streams) == 1
    assert streams.pop().startswith("train-ok/algo-1-")
    messages = [m for _, m in lines]
    assert "read 3 rows" in messages
    assert "done training" in messages


def test_failing_program_fails_the_job_with_its_reason(aws: MotoServer, staged: str) -> None:
    sm, logs = aws.client("sagemaker"), aws.client("logs")
    sm.create_training_job(**training_body("train-bad", staged, mode="fail"))

    done = wait_training(sm, "train-bad", "Completed", "Failed", "Stopped")
    assert done["TrainingJobStatus"] == "Failed"
    assert done["SecondaryStatus"] == "Failed"
    assert done["FailureReason"] == "bad rows: cannot train"  # the failure file, as SageMaker
    assert "ModelArtifacts" not in done
    messages = [m for _, m in iter_log_messages(logs, LOG_GROUPS[JobType.TRAINING], "train-bad/")]
    assert "failing on purpose" in messages


def test_stop_training_job_goes_stopping_then_stopped(aws: MotoServer, staged: str) -> None:
    sm, logs = aws.client("sagemaker"), aws.client("logs")
    sm.create_training_job(**training_body("train-stop", staged, mode="wait"))

    def waiting() -> bool:
        text = [m for _, m in iter_log_messages(logs, LOG_GROUPS[JobType.TRAINING], "train-stop/")]
        return "waiting for a stop" in text

    wait_for(waiting, timeout=300, what="the program to run")
    sm.stop_training_job(TrainingJobName="train-stop")
    stopping = sm.describe_training_job(TrainingJobName="train-stop")
    assert stopping["TrainingJobStatus"] in ("Stopping", "Stopped")

    done = wait_training(sm, "train-stop", "Stopped", "Failed", "Completed")
    assert done["TrainingJobStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in done["SecondaryStatusTransitions"]]

    with pytest.raises(ClientError) as refused:  # stopping a finished job is refused
        sm.stop_training_job(TrainingJobName="train-stop")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as unknown:
        sm.stop_training_job(TrainingJobName="no-such-job")
    assert unknown.value.response["Error"]["Code"] == "ValidationException"


def test_processing_job_reads_inputs_and_uploads_outputs(aws: MotoServer, staged: str) -> None:
    sm, s3, logs = aws.client("sagemaker"), aws.client("s3"), aws.client("logs")
    sm.create_processing_job(**processing_body("proc-ok", staged))
    assert sm.describe_processing_job(ProcessingJobName="proc-ok")["ProcessingJobStatus"] == (
        "InProgress"
    )

    def finished() -> dict[str, Any] | None:
        desc = sm.describe_processing_job(ProcessingJobName="proc-ok")
        return desc if desc["ProcessingJobStatus"] != "InProgress" else None

    done = wait_for(finished, timeout=300, what="proc-ok to end")
    assert done["ProcessingJobStatus"] == "Completed", done.get("FailureReason")
    assert done["ProcessingStartTime"] <= done["ProcessingEndTime"]
    body = s3.get_object(Bucket=staged, Key="processed/proc-ok/count.txt")["Body"].read()
    assert body == b"3"
    messages = [m for _, m in iter_log_messages(logs, LOG_GROUPS[JobType.PROCESSING], "proc-ok/")]
    assert "processed rows.txt" in messages


def test_list_shows_live_statuses(aws: MotoServer, staged: str) -> None:
    sm = aws.client("sagemaker")
    sm.create_training_job(**training_body("live-a", staged, mode="wait"))
    sm.create_training_job(**training_body("live-b", staged))
    sm.create_training_job(**training_body("other-c", staged))

    def listed() -> dict[str, str]:
        summaries = sm.list_training_jobs(NameContains="live-")["TrainingJobSummaries"]
        return {s["TrainingJobName"]: s["TrainingJobStatus"] for s in summaries}

    assert listed() == {"live-a": "InProgress", "live-b": "InProgress"}
    wait_for(lambda: listed()["live-b"] == "Completed", timeout=300, what="live-b Completed")
    assert listed()["live-a"] == "InProgress"
    in_progress = sm.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"]
    assert "live-a" in [s["TrainingJobName"] for s in in_progress]
    sm.stop_training_job(TrainingJobName="live-a")
    wait_for(lambda: listed()["live-a"] == "Stopped", timeout=300, what="live-a Stopped")


def test_search_by_tag_shows_live_status(aws: MotoServer, staged: str) -> None:
    sm = aws.client("sagemaker")
    body = training_body("tagged", staged, mode="wait")
    body["Tags"] = [{"Key": "run", "Value": "r1"}]
    sm.create_training_job(**body)
    sm.create_training_job(**training_body("untagged", staged))
    query = {
        "Resource": "TrainingJob",
        "SearchExpression": {
            "Filters": [{"Name": "Tags.run", "Operator": "Equals", "Value": "r1"}]
        },
    }

    def found() -> dict[str, str]:
        results = sm.search(**query)["Results"]
        return {
            r["TrainingJob"]["TrainingJobName"]: r["TrainingJob"]["TrainingJobStatus"]
            for r in results
        }

    assert found() == {"tagged": "InProgress"}
    sm.stop_training_job(TrainingJobName="tagged")
    wait_for(lambda: found() == {"tagged": "Stopped"}, timeout=300, what="tagged Stopped")


def test_duplicate_name_and_refused_request(aws: MotoServer, staged: str) -> None:
    sm = aws.client("sagemaker")
    sm.create_training_job(**training_body("dup", staged))
    with pytest.raises(ClientError) as dup:
        sm.create_training_job(**training_body("dup", staged))
    assert dup.value.response["Error"]["Code"] == "ResourceInUse"

    # moto accepts it; the local SageMaker cannot run it: refused, and no job is left behind
    body = processing_body("no-entrypoint", staged)
    del body["AppSpecification"]["ContainerEntrypoint"]
    with pytest.raises(ClientError) as refused:
        sm.create_processing_job(**body)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "ContainerEntrypoint" in refused.value.response["Error"]["Message"]
    assert sm.list_processing_jobs()["ProcessingJobSummaries"] == []


def test_api_calls_are_counted(aws: MotoServer, api_calls: Any, staged: str) -> None:
    sm, s3 = aws.client("sagemaker"), aws.client("s3")
    api_calls.clear()  # the staging uploads above are not what this test counts
    sm.create_training_job(**training_body("counted", staged))
    wait_training(sm, "counted", "Completed", "Failed", "Stopped")
    sm.list_training_jobs(NameContains="counted")
    s3.head_object(Bucket=staged, Key="jobs/counted/output/model.tar.gz")

    assert api_calls.count("sagemaker", "CreateTrainingJob") == 1
    assert api_calls.count("sagemaker", "ListTrainingJobs") == 1
    assert api_calls.count("sagemaker", "DescribeTrainingJob") >= 1
    assert api_calls.count("s3", "HeadObject", path=f"/{staged}/jobs/") == 1
    # the job's runner is a client too: it fetched the code and the channel, uploaded outputs
    assert api_calls.count("s3", "GetObject", path=f"/{staged}/code/sourcedir.tar.gz") == 1
    assert api_calls.count("s3", "GetObject", path=f"/{staged}/data/") == 1
    assert api_calls.count("s3", "PutObject", path=f"/{staged}/jobs/counted/output/") == 2
    assert api_calls.count("logs") == 0  # the hook writes logs in-process, not as API calls
    assert api_calls.counts("sagemaker")["sagemaker.CreateTrainingJob"] == 1


def test_each_host_logs_to_its_own_stream(aws: MotoServer, staged: str) -> None:
    sm, logs = aws.client("sagemaker"), aws.client("logs")
    body = training_body("two-hosts", staged)
    body["ResourceConfig"]["InstanceCount"] = 2
    sm.create_training_job(**body)
    done = wait_training(sm, "two-hosts", "Completed", "Failed", "Stopped")
    assert done["TrainingJobStatus"] == "Completed", done.get("FailureReason")

    by_host: dict[str, list[str]] = {}
    for stream, message in iter_log_messages(logs, LOG_GROUPS[JobType.TRAINING], "two-hosts/"):
        host = stream.split("/")[1].rsplit("-", 1)[0]  # "<job>/algo-<i>-<epoch>"
        by_host.setdefault(host, []).append(message)
    assert sorted(by_host) == ["algo-1", "algo-2"]
    assert all("done training" in messages for messages in by_host.values())


def test_subprocesses_reach_the_server(aws: MotoServer, bucket: str, api_calls: Any) -> None:
    """AWS_ENDPOINT_URL and the test credentials are in os.environ, so any child process
    (a ``snakemake`` run, a runner) talks to this server."""
    assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint
    code = "import boto3; print([b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"['{bucket}']"
    assert api_calls.count("s3", "ListBuckets") == 1


def test_warm_pool_quota_and_update_of_an_unknown_job(aws: MotoServer, staged: str) -> None:
    """The lifecycle itself (Available, Reused, ended by UpdateTrainingJob) is run through the
    executor in tests/test_warm_pools.py; here what a plain client gets refused."""
    sm = aws.client("sagemaker")
    aws.hook.warm_pool_quota = 0  # AWS's default quota
    body = training_body("train-warm", staged)
    body["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 300
    with pytest.raises(ClientError) as e:
        sm.create_training_job(**body)
    assert e.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert "'ml.m5.large for training warm pool usage' is 0 Instances" in str(e.value)
    assert "train-warm" not in {
        j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]
    }
    with pytest.raises(ClientError) as e:
        sm.update_training_job(
            TrainingJobName="nope", ResourceConfig={"KeepAlivePeriodInSeconds": 0}
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
