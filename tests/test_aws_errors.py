"""Which AWS errors are worth another try: botocore's own classification, on real botocore
exceptions as a call raises them."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from ssm_rules.backends.aws.errors import is_transient


def _client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 4},
    }
    return ClientError(response, "CreateTrainingJob")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error, transient",
    [
        (_client_error("ThrottlingException", 400), True),
        (_client_error("SlowDown", 503), True),  # S3 throttles with a 503
        (_client_error("InternalFailure", 500), True),
        (_client_error("ServiceUnavailable", 503), True),
        (_client_error("", 429), True),  # a 429 no model explains
        (_client_error("RequestTimeout", 400), True),
        (_client_error("NotImplemented", 501), False),  # botocore retries 500/502/503/504 only
        (_client_error("ValidationException", 400), False),
        (_client_error("ResourceLimitExceeded", 400), False),  # a quota: waiting won't lift it
        (_client_error("AccessDeniedException", 403), False),
        (EndpointConnectionError(endpoint_url="https://api.sagemaker.x"), True),
        (ReadTimeoutError(endpoint_url="https://api.sagemaker.x"), True),
        (ParamValidationError(report="bad"), False),
        (ValueError("not from botocore"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_transient_is_what_botocores_standard_retry_mode_retries(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient
