"""Images from a Dockerfile: job(dockerfile="docker/") builds (with CodeBuild where no Docker
engine answers, as here) and pushes <account>.dkr.ecr.<region>.amazonaws.com/ssm-rules/<rule>:<hash>,
skips a tag ECR already has, and runs the job on it; the local backend says it runs on this
machine's Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssm_rules import docker_images as di
from tests import moto_codebuild
from tests.e2e import LOCAL_ARGS, Workflow, aws_args

BASE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-cpu-py312"


def test_the_context_names_the_image_and_says_its_base(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM __BASE_IMAGE__\nRUN pip install jq\n")
    (tmp_path / "extra.txt").write_text("x")
    ctx = di.context_of(tmp_path, BASE)
    assert ctx.dockerfile.startswith(f"FROM {BASE}\n")
    uri = di.image_uri("123456789012", "eu-west-1", "Train_Big", ctx)
    assert uri == f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/ssm-rules/train_big:{ctx.tag}"
    assert ctx.zip_bytes() == di.context_of(tmp_path, BASE).zip_bytes()  # deterministic
    assert di.context_of(tmp_path, BASE + "x").tag != ctx.tag  # another base, another image
    (tmp_path / "extra.txt").write_text("y")
    assert di.context_of(tmp_path, BASE).tag != ctx.tag  # any change in the context


SNAKEFILE = """
from ssm_rules import job
rule all:
    input: "a.txt", "b.txt"
rule a:
    output: "a.txt"
    params: sagemaker=job(dockerfile="docker")
    log: "a.log"
    shell: "echo a > {output}"
rule b:
    input: "a.txt"
    output: "b.txt"
    params: sagemaker=job(dockerfile="docker")
    shell: "echo b > {output}"
"""


def _workflow(root: Path, dockerfile: str) -> Workflow:
    wf = Workflow(root)
    wf.write("Snakefile", SNAKEFILE)
    wf.write("docker/Dockerfile", dockerfile)
    return wf


@pytest.mark.slow
def test_the_image_is_built_once_pushed_and_used(tmp_path, aws, bucket, api_calls, monkeypatch):
    moto_codebuild.install(monkeypatch)
    wf = _workflow(tmp_path, "FROM __BASE_IMAGE__\nRUN echo tools\n")
    wf.run(*aws_args(bucket))
    sm, ecr = aws.client("sagemaker"), aws.client("ecr")
    images = {
        sm.describe_training_job(TrainingJobName=j["TrainingJobName"])["AlgorithmSpecification"][
            "TrainingImage"
        ]
        for j in sm.list_training_jobs()["TrainingJobSummaries"]
    }
    assert len(images) == 2  # each rule has its repository; the same context, the same tag
    for uri in images:
        repo, tag = uri.split("/", 1)[1].rsplit(":", 1)
        assert repo.startswith("ssm-rules/")
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])  # pushed
    assert len(moto_codebuild.STARTED) == 2
    log = aws.client("s3").get_object(Bucket=bucket, Key="wf/a.log")["Body"].read().decode()
    assert "building the image with AWS CodeBuild" in log and "Step: RUN echo tools" in log
    # the Dockerfile the build saw has the base image in place of __BASE_IMAGE__
    project = aws.client("codebuild").batch_get_projects(names=["ssm-rules-image-builder"])
    assert project["projects"][0]["environment"]["privilegedMode"] is True

    wf.run(*aws_args(bucket), "--forcerun", "a", "b")  # same context: nothing to build
    assert len(moto_codebuild.STARTED) == 2


@pytest.mark.slow
def test_a_failing_build_is_the_rules_error_and_no_job_is_created(
    tmp_path, aws, bucket, api_calls, monkeypatch
):
    moto_codebuild.install(monkeypatch)
    wf = _workflow(tmp_path, "FROM __BASE_IMAGE__\nRUN exit 1\n")
    proc = wf.run(*aws_args(bucket), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "failed (CodeBuild build ssm-rules-image-builder:" in text
    assert "returned a non-zero code: 1" in text
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 0


@pytest.mark.slow
def test_the_local_backend_says_it_runs_on_this_machines_python(tmp_path):
    wf = _workflow(tmp_path, "FROM __BASE_IMAGE__\n")
    proc = wf.run(*LOCAL_ARGS)
    text = proc.stdout + proc.stderr
    assert text.count("runs on this machine's Python, not in the image built from") == 2
    assert wf.path("b.txt").read_text() == "b\n"


def test_a_missing_dockerfile_is_refused(tmp_path):
    from ssm_rules.rules import job
    from ssm_rules.spec import SpecError
    from tests.test_spec import spec_of

    (tmp_path / "docker").mkdir()
    with pytest.raises(SpecError, match=r"no Dockerfile in .*docker.*: give the build context"):
        spec_of(tmp_path, params=(("sm", job(dockerfile="docker")),))
