"""Snakefile.example under profiles/sagemaker (backend aws) against the moto server whose
SageMaker jobs really run: artifacts land in moto's S3, a second run has nothing to do."""

from __future__ import annotations

import json

import pytest

from tests.e2e import example_workflow

pytestmark = pytest.mark.slow


def sagemaker_args(bucket: str) -> tuple[str, ...]:
    return (
        "--profile",
        "profiles/sagemaker",  # no --sagemaker-role: ssm_rules makes one of least privilege
        "--sagemaker-bucket",
        bucket,
        "--default-storage-prefix",
        f"s3://{bucket}/artifacts",
        "--seconds-between-status-checks",
        "1",
        "--latency-wait",
        "2",
    )


def test_example_on_the_sagemaker_profile(tmp_path, aws, bucket, api_calls):
    wf = example_workflow(tmp_path)
    args = sagemaker_args(bucket)
    wf.run(*args, env=aws.env())
    s3 = aws.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    for key in (
        "artifacts/runs/train/model.tar.gz",
        "artifacts/runs/train/output.tar.gz",
        "artifacts/runs/train/state.json",
        "artifacts/runs/train/metrics.json",
        "artifacts/runs/evaluate/report.json",
        "artifacts/runs/summarize/summary.txt",
        "artifacts/runs/prepare/stats.json",
    ):
        assert key in keys, (key, sorted(keys))
    assert any(k.startswith("artifacts/runs/train/state/algo-2/") for k in keys)
    # the local rule downloaded and extracted the results
    assert '"hosts": 2' in wf.path("results/summary.txt").read_text()
    assert sorted(p.name for p in wf.path("results/model").iterdir() if p.name[0] != ".") == [
        "weights-algo-1.json",
        "weights-algo-2.json",
    ]
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key="artifacts/runs/train/state.json")["Body"].read()
    )
    assert manifest["prefix"] == f"s3://{bucket}/artifacts/runs/train/state/"
    created = api_calls.count("sagemaker", "CreateTrainingJob") + api_calls.count(
        "sagemaker", "CreateProcessingJob"
    )
    assert created == 4  # prepare, train, evaluate, summarize
    log = s3.get_object(Bucket=bucket, Key="artifacts/logs/train.log")["Body"].read().decode()
    assert "/algo-1-" in log and "/algo-2-" in log

    _check_the_managed_role(aws, bucket, api_calls)

    api_calls.clear()
    out = wf.run(*args, env=aws.env())
    assert "Nothing to be done" in out.stdout + out.stderr
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 0


def _check_the_managed_role(aws, bucket: str, api_calls) -> None:
    """The jobs ran as the role ssm_rules made, whose policy names the run's prefixes."""
    client = aws.client("iam")
    region = aws.client("s3").meta.region_name
    role = client.get_role(RoleName=f"ssm-rules-{region}")["Role"]
    sm = aws.client("sagemaker")
    for summary in sm.list_training_jobs()["TrainingJobSummaries"]:
        job = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        assert job["RoleArn"] == role["Arn"]
    attached = client.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    policy = client.get_policy(PolicyArn=attached[0]["PolicyArn"])["Policy"]
    doc = client.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])[
        "PolicyVersion"
    ]["Document"]
    st = {s["Sid"]: s for s in doc["Statement"]}
    assert f"arn:aws:s3:::{bucket}/ssm-rules/*" in st["S3ReadWrite"]["Resource"]
    assert f"arn:aws:s3:::{bucket}/artifacts/runs/train/state/*" in st["S3ReadWrite"]["Resource"]
    assert f"arn:aws:s3:::{bucket}/artifacts/runs/train/model.tar.gz*" in st["S3Read"]["Resource"]
    assert not any(
        r.endswith(":::*") or r == f"arn:aws:s3:::{bucket}/*" for r in st["S3Read"]["Resource"]
    )
    print(json.dumps(doc, indent=1))  # the note quotes it (pytest -s)
