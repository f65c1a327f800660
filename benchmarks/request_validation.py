"""What checking a Create*Job request against the service model costs, side by side:
botocore's own ParamValidator (what boto3 runs before every call) and ssm_rules'
ServiceModelValidator (the same walk plus enums, patterns and maximums), on the requests
tests/test_aws_backend.py builds, in one run.

Run from the repository root (no AWS, no network)::

    .venv/bin/python benchmarks/request_validation.py

Figures: microseconds per request (best of 5 repeats of N validations) and the ratio; the
number of problems each finds in a request with one mistake of every kind only the service
catches (botocore finds none of them: they would cost a call each, after the uploads).
"""

from __future__ import annotations

import copy
import functools
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botocore.validate import ParamValidator  # noqa: E402

from ssm_rules.aws_names import sagemaker_service_model  # noqa: E402
from ssm_rules.backends.aws.validation import ServiceModelValidator  # noqa: E402
from tests.test_aws_backend import processing_body, training_body  # noqa: E402

N = 200


def _bad_training() -> dict:
    body = copy.deepcopy(training_body(name="a_b"))  # pattern
    body["AlgorithmSpecification"]["TrainingInputMode"] = "file"  # enum
    body["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 21601  # maximum
    body["Tags"] = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]  # list size
    return body


def main() -> None:
    model = sagemaker_service_model()
    cases = [
        ("training", model.operation_model("CreateTrainingJob").input_shape, training_body()),
        (
            "processing",
            model.operation_model("CreateProcessingJob").input_shape,
            processing_body(),
        ),
    ]
    print(f"{'request':<12}{'botocore µs':>14}{'ssm_rules µs':>15}{'ratio':>8}")
    for label, shape, body in cases:
        plain_check = functools.partial(ParamValidator().validate, body, shape)
        our_check = functools.partial(ServiceModelValidator().findings, body, shape)
        plain = ours = float("inf")
        for _ in range(5):  # interleaved: a load spike on this machine hits both
            plain = min(plain, timeit.timeit(plain_check, number=N))
            ours = min(ours, timeit.timeit(our_check, number=N))
        print(f"{label:<12}{plain / N * 1e6:>14.0f}{ours / N * 1e6:>15.0f}{ours / plain:>8.2f}")
    shape = cases[0][1]
    bad = _bad_training()
    report = ParamValidator().validate(bad, shape)
    botocore_found = report.generate_report().count("\n") + 1 if report.has_errors() else 0
    ours_found = len(ServiceModelValidator().findings(bad, shape).errors)
    print(
        f"problems found in a request with 4 service-only mistakes: botocore {botocore_found}, "
        f"ssm_rules {ours_found}"
    )


if __name__ == "__main__":
    main()
