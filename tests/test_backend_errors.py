"""One error root for both backends: what either one refuses is a BackendError (a
WorkflowError: Snakemake prints it without a traceback; callers catch this one class), and
its message keeps SageMaker's error code."""

from __future__ import annotations

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.aws import errors as aws_errors
from ssm_rules.backends.aws.service import AwsBackend
from ssm_rules.backends.base import BackendError, JobRequest, JobType
from ssm_rules.backends.local import LocalBackend, validation
from tests.test_aws_backend import moto, moto_plain, plain_client, training_body  # noqa: F401
from tests.test_local_backend import code_tar, training, wait_for

RAISED = [
    aws_errors.AwsSetupError,
    aws_errors.InvalidRequestError,
    aws_errors.SubmitError,
    aws_errors.StatusError,
    validation.ValidationError,
    validation.ResourceInUse,
    validation.JobNotFound,
]


@pytest.mark.parametrize("error", RAISED, ids=lambda e: e.__name__)
def test_every_error_a_backend_raises_is_a_backend_error(error):
    assert issubclass(error, BackendError) and issubclass(BackendError, WorkflowError)


def test_the_local_backend_refuses_a_second_job_of_a_name_with_resource_in_use(tmp_path):
    local = LocalBackend(tmp_path / "jobs")
    request = training(
        tmp_path, "train-1202000000-abc123", "t.py", code_tar(tmp_path, {"t.py": ""})
    )
    local.submit(request)
    try:
        with pytest.raises(BackendError, match="^ResourceInUse: Training job names must be"):
            local.submit(request)
    finally:
        wait_for(local, request.name, JobType.TRAINING)  # no runner outlives the test


def test_the_local_backends_refusal_starts_with_sagemakers_code(tmp_path):
    request = training(tmp_path, "bad name!", "t.py", code_tar(tmp_path, {"t.py": ""}))
    with pytest.raises(BackendError, match="^ValidationException: "):
        LocalBackend(tmp_path / "jobs").submit(request)


def test_the_aws_backend_refusal_is_a_backend_error_with_its_cause(moto):  # noqa: F811
    aws = AwsBackend(plain_client("sagemaker"), plain_client("logs"))
    body = {**training_body(), "HyperParameters": "not a map"}  # botocore refuses it
    with pytest.raises(BackendError, match="SageMaker refused CreateTrainingJob") as e:
        aws.submit(JobRequest(JobType.TRAINING, body))
    assert e.value.__cause__ is not None
