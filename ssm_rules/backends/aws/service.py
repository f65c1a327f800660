"""The ``aws`` backend: SageMaker through boto3 (submit, poll, stop) and CloudWatch Logs."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ssm_rules import aws_clients
from ssm_rules.backends.aws import finding
from ssm_rules.backends.aws.cwlogs import JobLogReader, LogCallBudget
from ssm_rules.backends.aws.errors import (
    StatusError,
    SubmitError,
    aws_error,
    error_code,
    is_not_found,
    is_transient,
    retry_attempts,
)
from ssm_rules.backends.aws.polling import APIS, StatusPoller, utcnow
from ssm_rules.backends.aws.validation import OPERATIONS
from ssm_rules.backends.base import (
    JobRequest,
    JobStatus,
    JobType,
    LogEvent,
    WarmPoolQuotaError,
)
from ssm_rules.rate_limit import RateLimiter
from ssm_rules.settings import DEFAULT_MAX_SUBMIT_RATE

log = logging.getLogger(__name__)


# What to do about the Create*Job errors a user can fix.
_HINTS = {
    "ResourceLimitExceeded": (
        "raise the SageMaker quota for this instance type (Service Quotas: '<type> for "
        "training job usage' / 'for spot training job usage' / 'for processing job usage') "
        "or run fewer jobs at once (--jobs)"
    ),
    "AccessDeniedException": (
        "the caller needs sagemaker:CreateTrainingJob / CreateProcessingJob, "
        "sagemaker:AddTags and iam:PassRole on --sagemaker-role"
    ),
    "ResourceInUse": "a job with this name exists already: run again (names are unique per run)",
}


class AwsBackend:
    """:class:`~ssm_rules.backends.base.Backend` on Amazon SageMaker."""

    def __init__(
        self,
        sagemaker: Any,
        logs: Any,
        logger: Any = None,
        submit_limiter: RateLimiter | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        # Create*Job calls spaced to --sagemaker-max-submit-rate (ssm_rules.rate_limit)
        self.submit_limiter = submit_limiter or RateLimiter(DEFAULT_MAX_SUBMIT_RATE)
        self.logs_client = logs
        self.poller = StatusPoller(sagemaker)
        self.finder = finding.JobFinder(sagemaker)
        self.log_budget = LogCallBudget()  # CloudWatch Logs calls per status round
        # the executor's main thread (submit, find, cancel) and its status thread (poll) share
        # the poller's records
        self._poller_lock = threading.Lock()
        # jobs a round reported ended: the poller forgets them once no round asks about them,
        # while their final log read (in an end-handling thread) may still be going on
        self._ended_names: set[str] = set()
        self._log = logger or log

    @classmethod
    def for_region(
        cls, region: str, logger: Any = None, max_submit_rate: float = DEFAULT_MAX_SUBMIT_RATE
    ) -> AwsBackend:
        return cls(
            aws_clients.client("sagemaker", region),
            aws_clients.client("logs", region),
            logger,
            RateLimiter(max_submit_rate),
        )

    # --- submit -------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        operation = OPERATIONS[request.job_type]
        create = getattr(
            self.sagemaker,
            "create_training_job"
            if request.job_type is JobType.TRAINING
            else "create_processing_job",
        )
        self.submit_limiter.wait()
        submitted_at = utcnow()
        try:
            create(**request.body)
        except (ClientError, ParamValidationError, BotoCoreError) as e:
            if _warm_pool_quota(e, request):
                raise WarmPoolQuotaError(aws_error(e)) from e
            if not _created_by_an_earlier_attempt(e):
                raise SubmitError(
                    f"SageMaker refused {operation} for job {request.name}: {aws_error(e)} "
                    f"({_submit_hint(e)})"
                ) from e
            # An earlier attempt of this same call created the job, but its reply was lost (a
            # 5xx or a timeout) and botocore sent the call again. Job names carry a random
            # token per submission, so the job of this name is ours: track it. Reporting a
            # failure would leave it running, and billed, unwatched.
            self._log.info(f"job {request.name} was created by an earlier attempt of {operation}")
        with self._poller_lock:
            self.poller.track(request.name, request.job_type, submitted_at)

    # --- status -------------------------------------------------------------------------

    def poll(self, jobs: Sequence[tuple[str, JobType]]) -> dict[str, JobStatus]:
        """One status round; see :mod:`ssm_rules.backends.aws.polling` for its cost.

        A failure (throttling or 5xx after botocore's bounded retries, or a refusal) is a
        :class:`StatusError` naming the jobs; the executor skips the round and gives up
        only after several in a row.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        self.log_budget.renew()
        try:
            with self._poller_lock:
                statuses = self.poller.poll(jobs)
                self._ended_names.update(n for n, st in statuses.items() if st.is_done)
                return statuses
        except (ClientError, BotoCoreError) as e:
            names = ", ".join(n for n, _ in jobs)
            raise StatusError(
                f"could not read the status of job(s) {names} {_attempts(e)}: {aws_error(e)}"
            ) from e

    # --- find (re-attach) ---------------------------------------------------------------

    def find(self, job_type: JobType, name_prefix: str, tags: dict[str, str]) -> list[JobStatus]:
        """Jobs named ``name_prefix...`` carrying all ``tags``, newest first.

        The jobs of the whole prefix are looked up once and kept a while
        (:class:`~ssm_rules.backends.aws.finding.JobFinder`). Training: SageMaker Search
        (Search knows TrainingJob, not ProcessingJob). Processing: ListProcessingJobs by name
        within the last ``FIND_WINDOW``, then ListTags per candidate (at most
        ``FIND_MAX_CANDIDATES``).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        job_type = JobType(job_type)
        try:
            found = self.finder.find(job_type, name_prefix, tags)
        except (ClientError, BotoCoreError) as e:
            raise StatusError(
                f"could not look for earlier {job_type} jobs {name_prefix}* to re-attach to "
                f"{_attempts(e)}: {aws_error(e)}. The role or user running snakemake needs "
                "sagemaker:Search, sagemaker:ListProcessingJobs and sagemaker:ListTags"
            ) from e
        # the executor re-attaches to at most one of these; the poller learns it on first poll
        return [status for status, _ in found]

    # --- stop ---------------------------------------------------------------------------

    def stop(self, jobs: Sequence[tuple[str, JobType]]) -> None:
        """Ask each job to stop (the executor then waits until each reports Stopping).

        SageMaker sends SIGTERM to the containers, then SIGKILL after 120 s; a training job's
        checkpoints (task state) are uploaded before it is Stopped. A job that already ended
        answers ValidationException: that is the outcome we wanted, not an error.
        """
        for name, job_type in jobs:
            api = APIS[JobType(job_type)]
            try:
                getattr(self.sagemaker, api.stop_op)(**{api.name_key: name})
            except Exception as e:  # noqa: BLE001 — every job gets its Stop call, whatever fails
                code = error_code(e)
                if is_not_found(e):
                    self._log.warning(f"cannot stop job {name}: SageMaker does not know it")
                elif code == "ValidationException":
                    self._log.debug(
                        f"job {name} was not stoppable (ended already?): {aws_error(e)}"
                    )
                else:
                    self._log.warning(
                        f"could not stop {job_type} job {name}: {aws_error(e)}; it may still "
                        f"be running (and billed): stop it with 'aws sagemaker "
                        f"{_cli(api.stop_op)} --{_cli(api.name_key)} {name}'"
                    )

    # --- warm pools -----------------------------------------------------------------------

    def warm_pool(self, name: str) -> dict[str, Any] | None:
        """DescribeTrainingJob's WarmPoolStatus (one call)."""
        return self.sagemaker.describe_training_job(TrainingJobName=name).get("WarmPoolStatus")

    def end_warm_pool(self, name: str) -> None:
        """ "To manually terminate a warm pool, set the KeepAlivePeriodInSeconds value to 0"
        (UpdateTrainingJob; SageMaker developer guide, managed warm pools)."""
        self.sagemaker.update_training_job(
            TrainingJobName=name, ResourceConfig={"KeepAlivePeriodInSeconds": 0}
        )

    # --- logs ---------------------------------------------------------------------------

    def logs(self, name: str, job_type: JobType) -> Iterator[LogEvent]:
        """Every event of every instance's stream, stream by stream (none if not started)."""
        return JobLogReader(self.logs_client, name, JobType(job_type)).iter_new()

    def log_reader(self, name: str, job_type: JobType) -> JobLogReader:
        """An incremental reader: each ``read()`` returns the events appended since the last,
        within the round's budget of log calls while the job runs, whole once it ended."""
        return JobLogReader(
            self.logs_client,
            name,
            JobType(job_type),
            budget=self.log_budget,
            ended=lambda: self._ended(name),
        )

    def _ended(self, name: str) -> bool:
        """The last status round reported the job ended."""
        with self._poller_lock:
            if name in self._ended_names:
                return True
            record = self.poller.records.get(name)
        return bool(record and record.status and record.status.is_done)


def _warm_pool_quota(e: Exception, request: JobRequest) -> bool:
    """ResourceLimitExceeded for the warm pool quota of a request with a keep-alive: "The
    account-level service limit '<type> for training warm pool usage' is 0 Instances, ...".
    The job itself would be accepted without its keep-alive."""
    keep_alive = (request.body.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds")
    return (
        bool(keep_alive)
        and error_code(e) == "ResourceLimitExceeded"
        and "warm pool" in aws_error(e).lower()
    )


def _created_by_an_earlier_attempt(e: Exception) -> bool:
    """ResourceInUse on a retried Create*Job: the first attempt went through."""
    return error_code(e) == "ResourceInUse" and retry_attempts(e) > 0


def _attempts(e: Exception) -> str:
    """Like "after 8 attempts" (a connection error carries no count of botocore's retries)."""
    if getattr(e, "response", None) is None:
        return "after botocore's retries"
    return f"after {retry_attempts(e) + 1} attempts"


def _submit_hint(e: Exception) -> str:
    if is_transient(e):
        return (
            f"SageMaker still failed {_attempts(e)}: run the same command again later (a job "
            "created anyway is found and re-attached, not paid twice); with many jobs at "
            "once, lower --jobs"
        )
    return _HINTS.get(error_code(e), "fix the value SageMaker names and run again")


def _cli(name: str) -> str:
    """stop_training_job → stop-training-job; TrainingJobName → training-job-name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).replace("_", "-").lower()
