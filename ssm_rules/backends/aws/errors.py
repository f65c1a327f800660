"""What the aws backend raises. All are BackendErrors (WorkflowErrors: Snakemake prints them
without a traceback), and each message names the value and what to write instead."""

from __future__ import annotations

import functools
from typing import Any

from ssm_rules.backends.base import BackendError


class AwsSetupError(BackendError):
    """Region, credentials, account, role or bucket could not be resolved."""


class InvalidRequestError(BackendError):
    """A Create*Job request breaks the SageMaker service model (checked before sending)."""


class SubmitError(BackendError):
    """SageMaker refused a Create*Job call; the AWS error code and message are kept."""


class StatusError(BackendError):
    """The jobs' status could not be read (SageMaker refused, or kept failing for rounds)."""


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
    """Throttling, a 5xx or a connection failure: worth trying again later, not a refusal.

    botocore's own classification (its standard retry mode's checkers, botocore.retries.
    standard): the throttling and transient error codes, HTTP 500/502/503/504, an unmodeled
    429, ConnectionError/HTTPClientError. When such an error reaches us, botocore's bounded
    attempts are spent."""
    response = getattr(e, "response", None)
    parsed = response if isinstance(response, dict) else None
    status = http_status(e)
    return _retryable_by_botocore().is_retryable(_retry_context(e, parsed, status))


@functools.cache
def _retryable_by_botocore() -> Any:
    from botocore.retries import standard

    return standard.OrRetryChecker(
        [
            standard.TransientRetryableChecker(),
            standard.ThrottledRetryableChecker(),
            standard.ThrottlingStatusCodeChecker(),
        ]
    )


def _retry_context(e: Exception, parsed: dict[str, Any] | None, status: int) -> Any:
    """What botocore's checkers read after a call: the parsed error, the HTTP status, or the
    exception raised instead of a response."""
    from botocore.awsrequest import AWSResponse
    from botocore.retries.standard import RetryContext

    return RetryContext(
        attempt_number=1,
        parsed_response=parsed,
        http_response=AWSResponse(None, status, {}, None) if status else None,
        caught_exception=None if parsed is not None else e,
    )
