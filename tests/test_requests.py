"""Requests built from specs: names, shapes, encodings SageMaker and its toolkit expect."""

from __future__ import annotations

import json
import re

import pytest

from ssm_rules.aws_names import job_name_problem
from ssm_rules.backends.base import JobType
from ssm_rules.requests import Placement, build_request, job_name
from ssm_rules.rules import job, model, state
from ssm_rules.spec import SpecError, build_spec
from tests.jobviews import io, view


def place(name: str = "train-0101000000-abcdef") -> Placement:
    return Placement(
        job_name=name,
        code_uri="s3://b/p/code/x/sourcedir.tar.gz",
        channel_uris={"data": "s3://b/p/tasks/train/input/data/"},
        jobs_uri="s3://b/p/jobs",
        image_uri="img",
        role_arn="arn:aws:iam::1:role/r",
        region="eu-west-1",
        identity_tags={"ssm-rules:rule": "train"},
    )


@pytest.mark.parametrize("rule", ["train", "a_very_long_rule_name_" * 5, "x", "_private", "r2d2"])
def test_job_names_follow_sagemaker_rules_and_start_with_the_rule(rule):
    name = job_name(rule, now=0, token="abc123")
    assert len(name) <= 63 and job_name_problem(name) is None
    assert name.startswith(re.sub(r"[^a-zA-Z0-9]+", "-", rule).strip("-")[:20])
    assert job_name(rule, now=0) != job_name(rule, now=0)  # unique per submission


def test_rule_name_without_letters_is_refused():
    with pytest.raises(SpecError, match="rename the rule"):
        job_name("___")


def test_training_request(tmp_path):
    spec = build_spec(
        view(
            tmp_path,
            inputs=(io("s3://b/in/data/", "data"),),
            outputs=(
                io("", "m", model("runs/model.tar.gz")),
                io("", "s", state("runs/state.json")),
            ),
            params=(
                (
                    "sm",
                    job(
                        metric_definitions={"loss": "loss=(.*?);"},
                        environment={"A": "1"},
                        tags={"team": "ml"},
                    ),
                ),
                ("epochs", 3),
                ("name", "x y"),
            ),
            resources={"instance_count": 2, "max_run_mins": 10, "max_wait_mins": 20},
        ),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    req = build_request(spec, place())
    assert req.job_type is JobType.TRAINING and req.name == "train-0101000000-abcdef"
    body = req.body
    hps = body["HyperParameters"]
    # script mode on framework images: every value JSON-encoded
    assert json.loads(hps["sagemaker_program"]) == "ssm_launch.py"
    assert json.loads(hps["sagemaker_submit_directory"]) == "s3://b/p/code/x/sourcedir.tar.gz"
    assert json.loads(hps["epochs"]) == 3 and json.loads(hps["name"]) == "x y"
    task = json.loads(json.loads(hps["ssm_task"]))
    assert task["kind"] == "shell" and task["state_dir"] == "/opt/ml/checkpoints"
    assert body["EnableManagedSpotTraining"] is True
    assert body["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200}
    assert body["CheckpointConfig"]["S3Uri"].endswith("/runs/state/")
    assert body["ResourceConfig"]["InstanceCount"] == 2
    assert body["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "loss", "Regex": "loss=(.*?);"}
    ]
    assert body["Environment"] == {"A": "1"}
    assert {"Key": "team", "Value": "ml"} in body["Tags"]
    assert (
        body["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
        == "s3://b/p/tasks/train/input/data/"
    )


def test_processing_request(tmp_path):
    spec = build_spec(
        view(
            tmp_path,
            resources={"job_type": "processing"},
            inputs=(io("s3://b/in/data/", "data"),),
            outputs=(io("", "s", state("runs/state.json")),),
            params=(("n", 2),),
        ),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    body = build_request(spec, place()).body
    names = [i["InputName"] for i in body["ProcessingInputs"]]
    assert names == ["code", "ssm_task", "data", "ssm_state"]
    assert all(len(item) <= 256 for item in body["AppSpecification"]["ContainerEntrypoint"])
    outputs = {o["OutputName"]: o["S3Output"] for o in body["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["ssm_out"]["S3Uri"] == "s3://b/p/jobs/train-0101000000-abcdef/ssm_out"
    assert outputs["ssm_state"]["S3UploadMode"] == "Continuous"  # state survives a failure
    assert "EnableManagedSpotTraining" not in body


def test_shell_command_too_long_for_a_hyperparameter(tmp_path):
    spec = build_spec(
        view(tmp_path, shell_template="echo " + "x" * 3000),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    with pytest.raises(SpecError, match="move the command into a script"):
        build_request(spec, place())
