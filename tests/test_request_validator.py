"""The request validator is botocore's ParamValidator extended with what only the service
enforces: whatever botocore refuses is refused, and enums, patterns and maximums too."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.validate import ParamValidator

from ssm_rules.aws_names import sagemaker_service_model
from ssm_rules.backends.aws.validation import ServiceModelValidator
from tests.test_aws_backend import training_body


def _shape() -> Any:
    return sagemaker_service_model().operation_model("CreateTrainingJob").input_shape


def _errors(body: dict[str, Any]) -> list[str]:
    return [str(p) for p in ServiceModelValidator().findings(body, _shape()).errors]


def _with(change: Any) -> dict[str, Any]:
    body = copy.deepcopy(training_body())
    change(body)
    return body


BOTOCORE_REFUSES = {
    "missing required": lambda b: b.pop("RoleArn"),
    "unknown member": lambda b: b["ResourceConfig"].update(InstanceCont=2),
    "wrong type": lambda b: b["ResourceConfig"].update(InstanceCount="2"),
    "below the minimum": lambda b: b["StoppingCondition"].update(MaxRuntimeInSeconds=0),
    "a list that is a string": lambda b: b.update(InputDataConfig="data"),
    "a map value that is not a string": lambda b: b["HyperParameters"].update(epochs=3),
    "an empty string": lambda b: b.update(RoleArn=""),
}


@pytest.mark.parametrize("change", BOTOCORE_REFUSES.values(), ids=BOTOCORE_REFUSES)
def test_what_botocore_refuses_is_refused(change: Any) -> None:
    body = _with(change)
    assert ParamValidator().validate(body, _shape()).has_errors()
    assert _errors(body)


ONLY_THE_SERVICE_REFUSES = {
    "enum": (
        lambda b: b["AlgorithmSpecification"].update(TrainingInputMode="file"),
        "AlgorithmSpecification.TrainingInputMode: 'file' is not allowed: did you mean 'File'",
    ),
    "pattern": (lambda b: b.update(TrainingJobName="a_b"), "TrainingJobName: 'a_b' does not match"),
    "maximum value": (
        lambda b: b["ResourceConfig"].update(KeepAlivePeriodInSeconds=21601),
        "ResourceConfig.KeepAlivePeriodInSeconds: 21601 is above the maximum 21600",
    ),
    "maximum length": (
        lambda b: b.update(RoleArn="arn:aws:iam::123456789012:role/" + "r" * 2048),
        "characters, longer than 2048",
    ),
    "map key pattern": (
        lambda b: b["HyperParameters"].update({"bad key\n": "1"}),
        "HyperParameters key 'bad key\\n'",
    ),
    "map value length": (
        lambda b: b["HyperParameters"].update(big="x" * 2501),
        "HyperParameters[big]: ",
    ),
    "list size": (
        lambda b: b.update(Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]),
        "Tags: has length 51 is above the maximum 50",
    ),
    "a bool for an int": (
        lambda b: b["ResourceConfig"].update(InstanceCount=True),
        "ResourceConfig.InstanceCount: True is not an int",
    ),
}


@pytest.mark.parametrize(
    "change, message", ONLY_THE_SERVICE_REFUSES.values(), ids=ONLY_THE_SERVICE_REFUSES
)
def test_what_only_the_service_refuses_is_refused_before_sending(change: Any, message: str) -> None:
    body = _with(change)
    assert not ParamValidator().validate(body, _shape()).has_errors()  # botocore would send it
    errors = _errors(body)
    assert len(errors) == 1 and message in errors[0], errors


def test_a_valid_request_has_no_findings() -> None:
    found = ServiceModelValidator().findings(training_body(), _shape())
    assert (found.errors, found.warnings) == ([], [])
