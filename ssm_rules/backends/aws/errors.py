"""What the aws backend raises. All are WorkflowErrors: Snakemake prints them without a
traceback, and each message names the value and what to write instead."""

from __future__ import annotations

from snakemake_interface_common.exceptions import WorkflowError


class AwsSetupError(WorkflowError):
    """Region, credentials, account, role or bucket could not be resolved."""


class InvalidRequestError(WorkflowError):
    """A Create*Job request breaks the SageMaker service model (checked before sending)."""


class SubmitError(WorkflowError):
    """SageMaker refused a Create*Job call; the AWS error code and message are kept."""


class StatusError(WorkflowError):
    """The jobs' status could not be read (SageMaker refused, or kept failing for rounds)."""


# What botocore's standard retry mode retries (botocore.retries.standard): throttling codes,
# transient codes and HTTP 5xx. When such an error reaches us, its bounded attempts are spent.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)


def aws_error(e: Exception) -> str:
    """``Code: Message`` of a botocore ClientError, else the exception's text."""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code, message = err.get("Code", ""), err.get("Message", "")
        if code or message:
            return f"{code}: {message}".strip(": ")
    return str(e)


def error_code(e: Exception) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(e: Exception) -> bool:
    """Describe*/Stop* on a job name SageMaker does not know."""
    code = error_code(e)
    if code in ("ResourceNotFound", "ResourceNotFoundException"):
        return True
    # SageMaker also answers an unknown job name with ValidationException "Requested
    # resource not found" (moto: "Could not find training job ...")
    text = str(e).lower()
    return code == "ValidationException" and ("not found" in text or "could not find" in text)


def http_status(e: Exception) -> int:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def retry_attempts(e: Exception) -> int:
    """How many times botocore retried the call before this error (0: the first answer)."""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("RetryAttempts") or 0)
    return 0


def is_transient(e: Exception) -> bool:
    """Throttling, a 5xx or a connection failure: worth trying again later, not a refusal."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    if isinstance(e, ConnectionError | HTTPClientError):
        return True
    code = error_code(e)
    return code in THROTTLING_CODES or code in TRANSIENT_CODES or http_status(e) >= 500
