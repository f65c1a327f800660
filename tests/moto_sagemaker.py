"""Test infrastructure: a moto server on 127.0.0.1 whose SageMaker jobs really run.

moto alone marks every training or processing job Completed the moment it is created and
never runs anything or writes an artifact (checked with moto 5.2). Here the server runs in a
thread of the test process, so its backend objects can be patched: each CreateTrainingJob /
CreateProcessingJob body, exactly as the server received it, is handed to a
:class:`~ssm_rules.backends.local.LocalBackend`, whose detached runner executes it. The
runner reaches moto's S3 through ``AWS_ENDPOINT_URL`` (inherited from this process), so the
code bundle and channels come from moto's S3 and model.tar.gz / output / checkpoints /
processing outputs go back there. Describe* and List* show the local job's live status
(with the local warm pools' WarmPoolStatus); each host's log lines are copied into moto's
CloudWatch Logs; Stop* stops the local job; UpdateTrainingJob changes its warm pool's
keep-alive. ``hook.warm_pool_quota`` refuses keep-alives past a quota (AWS's default: 0).

Only the lifecycle is replaced: moto still parses, validates and serializes every call,
and its fake job objects stay the records that Describe*/List* serialize — the hook just
keeps their fields in step with the local job.

Every request the server receives is recorded by :class:`ApiCalls` (service + operation,
and its headers and body), so tests can assert how many calls the code under test makes and
what they carried. ``MotoServer.faults`` (:mod:`tests.moto_faults`) makes the server answer
chosen requests with the errors AWS sends when it throttles or fails; the hook's
``lose_artifacts`` makes a job's archives vanish as it turns Completed.
"""

from __future__ import annotations

import copy
import io
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.request import Request, urlopen

from moto.logs.models import LogsBackend, logs_backends
from moto.moto_api._internal.models import MotoAPIBackend
from moto.sagemaker import models as sm_models
from moto.sagemaker.exceptions import (
    ResourceInUseException,
    SagemakerClientError,
    ValidationError,
)
from moto.sagemaker.responses import SageMakerResponse
from moto.server import ThreadedMotoServer

from ssm_rules.backends.base import JobRequest, JobState, JobType
from ssm_rules.backends.local import LocalBackend, LocalSageMakerError
from tests.moto_faults import FaultKind, FaultTable, error_response
from tests.moto_pricing import PriceListResponder

# What SageMaker names the log groups of its jobs (streams: "<job>/algo-<i>-<epoch>").
LOG_GROUPS = {
    JobType.TRAINING: "/aws/sagemaker/TrainingJobs",
    JobType.PROCESSING: "/aws/sagemaker/ProcessingJobs",
}
REGION = "us-east-1"


# --- the server ------------------------------------------------------------------------------


def client_env(endpoint: str) -> dict[str, str]:
    """What a process needs to talk to the moto server, and nothing of this machine's AWS.

    Subprocesses (``snakemake ...``, the local runners) inherit it. Shared config and
    credential files are pointed away so that a developer's profile cannot leak in;
    NO_PROXY keeps a proxy of the machine out of the way of 127.0.0.1.
    """
    no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY"), "127.0.0.1", "localhost") if p)
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


# Variables a developer's shell may hold that would redirect or re-authenticate boto3.
CLEARED_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class MotoServer:
    """moto over HTTP on 127.0.0.1 (a free port), in a thread of this process."""

    def __init__(self, jobs_root: Path) -> None:
        self.calls = ApiCalls()
        self.faults = FaultTable()
        self.pricing = PriceListResponder()  # moto has no Price List API
        self.hook = SageMakerJobHook(jobs_root)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> None:
        self._server.start()
        # werkzeug's handler calls ``server.app`` per request: wrapping it counts every call.
        wsgi = self._server._server  # noqa: SLF001 — ThreadedMotoServer has no public hook
        assert wsgi is not None
        wsgi.app = CountingApp(wsgi.app, self.calls, self.faults, self.pricing)
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self.hook.stop_all()
        try:
            self.hook.wait_all(timeout=30)
        finally:
            self._server.stop()
            self.hook.uninstall()

    def env(self) -> dict[str, str]:
        return client_env(self.endpoint)

    def client(self, service: str) -> Any:
        """A plain boto3 client of this server (no retries hide a failing call)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )

    def reset(self) -> None:
        """moto's own reset: every backend emptied (the hook forgets its jobs with it)."""
        with urlopen(Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30):
            pass


# --- counting API calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    service: str  # the SigV4 signing name: "sagemaker", "s3", "logs", ...; "moto-api"
    operation: str  # "CreateTrainingJob", "PutObject", ...; "" when it cannot be told
    method: str
    path: str
    # the request as received: HTTP_* headers (lower-case, dashed names) and body bytes
    headers: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    body: bytes = field(default=b"", compare=False, repr=False)
    at: float = field(default_factory=time.monotonic, compare=False, repr=False)  # received


class ApiCalls:
    """Every request the server received, in arrival order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[ApiCall] = []

    def record(self, call: ApiCall) -> None:
        with self._lock:
            self._calls.append(call)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def counts(self, service: str | None = None) -> Counter[str]:
        """``{"sagemaker.CreateTrainingJob": 1, ...}`` (only ``service``'s when given)."""
        return Counter(
            f"{c.service}.{c.operation}"
            for c in self.calls
            if service is None or c.service == service
        )

    def count(self, service: str, operation: str | None = None, path: str | None = None) -> int:
        """Calls of ``service`` (and ``operation``; and whose URL path starts with ``path``,
        e.g. ``"/bucket/jobs/"`` to tell a client's S3 calls from those of a job's runner,
        which is a client of the same server)."""
        return sum(
            1
            for c in self.calls
            if c.service == service
            and (operation is None or c.operation == operation)
            and (path is None or c.path.startswith(path))
        )


class CountingApp:
    """WSGI middleware in front of moto's dispatcher: names and records each request, and
    answers a fault instead of moto when the test's fault table says so."""

    def __init__(
        self,
        app: Callable[..., Any],
        calls: ApiCalls,
        faults: FaultTable,
        pricing: PriceListResponder | None = None,
    ) -> None:
        self.app = app
        self.calls = calls
        self.faults = faults
        self.pricing = pricing

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = _read_body(environ)  # before identify(): it may look at a form body
        service, operation = identify(environ)
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        self.calls.record(ApiCall(service, operation, method, path, _headers(environ), body))
        hold = self.faults.take_hold(service, operation, path)
        if hold is not None:  # the test kills the client meanwhile
            if hold.after:  # the service acts; its reply never reaches the client
                self._act_and_drop_reply(environ)
            hold.released.wait(120)
            status, headers, error = error_response(service, FaultKind.INTERNAL, method)
            start_response(status, headers)
            return [error]
        fault = self.faults.take(service, operation, path)
        if fault is None and service == "pricing" and self.pricing is not None:
            return self.pricing(operation, body, start_response)
        if fault is None:
            return self.app(environ, start_response)
        if fault.after:  # the service acts; its reply is lost
            self._act_and_drop_reply(environ)
        status, headers, error = error_response(service, fault.kind, method)
        start_response(status, headers)
        return [error]

    def _act_and_drop_reply(self, environ: dict[str, Any]) -> None:
        reply = self.app(environ, lambda *_a, **_k: lambda _data: None)
        for _chunk in reply:
            pass
        getattr(reply, "close", lambda: None)()


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        body = environ["wsgi.input"].read(length)
    elif environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream for us
        body = environ["wsgi.input"].read()
    else:
        return b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """``HTTP_X_AMZ_EXPECTED_BUCKET_OWNER`` → ``x-amz-expected-bucket-owner``."""
    return {
        k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")
    }


def identify(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, operation) of one request, the ways AWS protocols carry them.

    Service: the credential scope of the SigV4 Authorization header (or of a presigned
    URL). Operation: X-Amz-Target (JSON protocols: SageMaker, Logs), else ``Action`` (query
    protocols), else the method + URI through botocore's model (REST: S3).
    """
    path = environ.get("PATH_INFO", "")
    if path.startswith("/moto-api"):
        return "moto-api", path.rsplit("/", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    service = _signing_service(environ.get("HTTP_AUTHORIZATION", ""), query)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.rsplit(".", 1)[-1]
    action = query.get("Action") or _form_action(environ)
    if action:
        return service, action[0]
    return service, _rest_operation(service, environ)


def _signing_service(auth: str, query: dict[str, list[str]]) -> str:
    # "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, ..."
    scope = ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
    elif "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"][0]
    parts = scope.split("/")
    return parts[3] if len(parts) == 5 else "unknown"


def _form_action(environ: dict[str, Any]) -> list[str]:
    """``Action`` of a form-encoded body; the body is read and put back for moto."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return []
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return parse_qs(body.decode(errors="replace")).get("Action", [])


def _rest_operation(service: str, environ: dict[str, Any]) -> str:
    from moto.core.routing import get_service_router
    from moto.moto_server.werkzeug_app import BackendRequest

    try:
        operation, _params = get_service_router(service).match(BackendRequest(environ))
    except Exception:  # noqa: BLE001 — an unknown route is still counted, unnamed
        return ""
    name = operation.name
    # CopyObject and PutObject share "PUT /{Bucket}/{Key+}"; only the header tells them apart.
    if name == "PutObject" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
        return "CopyObject"
    return name


# --- the SageMaker hook ----------------------------------------------------------------------


@dataclass
class HookedJob:
    """One moto job whose lifecycle a local job drives."""

    job_type: JobType
    name: str
    account_id: str
    region: str
    fake: Any  # moto's FakeTrainingJob / FakeProcessingJob: what Describe*/List* serialize
    local: LocalBackend
    copied: dict[str, int] = field(default_factory=dict)  # log stream -> lines copied
    drained: bool = False  # done, and every log line copied: nothing will change any more


class SageMakerJobHook:
    """Patches moto so that its SageMaker jobs run through a :class:`LocalBackend`.

    Local job directories live under ``<root>/<generation>/<account>/<region>/``; a moto
    reset starts a new generation, so a test may reuse a job name of an earlier test.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._generation = 0
        self._lock = threading.RLock()
        self._jobs: dict[tuple[str, str, JobType, str], HookedJob] = {}
        self._locals: dict[tuple[str, str], LocalBackend] = {}
        self._patches = _Patches()
        # Archive names ("model.tar.gz", "output.tar.gz") a job "forgets" to upload: deleted
        # from moto's S3 the moment the job turns Completed, before anyone can see that status.
        self.lose_artifacts: set[str] = set()
        # The account's warm pool quota in instances ("<type> for training warm pool usage",
        # 0 by default on AWS); None: no limit. Over it, CreateTrainingJob with a keep-alive
        # answers ResourceLimitExceeded as SageMaker does.
        self.warm_pool_quota: int | None = None

    # --- lifecycle of the hook itself ----------------------------------------------------
    def install(self) -> None:
        """Patch moto's classes (process-wide, so also moto's in-process ``mock_aws``)."""
        if not self._patches.active:
            _install(self, self._patches)

    def uninstall(self) -> None:
        self._patches.undo()

    def reset(self, root: Path | None = None) -> None:
        """Stop every running job and forget them all (optionally under a new root)."""
        with self._lock:
            self.stop_all()
            self._jobs.clear()
            self._locals.clear()
            self.lose_artifacts.clear()
            self.warm_pool_quota = None
            self._generation += 1
            if root is not None:
                self._root = Path(root)

    def stop_all(self) -> None:
        """Ask every unfinished job to stop; does not wait for the runners."""
        with self._lock:
            for job in self._jobs.values():
                if job.drained:
                    continue
                try:
                    job.local.stop([(job.name, job.job_type)])
                except LocalSageMakerError:
                    pass

    def wait_all(self, timeout: float = 60.0) -> None:
        """Until every job's runner has ended: a runner is a client of the server, and one
        left running would make calls during the next test."""
        deadline = time.monotonic() + timeout
        with self._lock:
            jobs = [j for j in self._jobs.values() if not j.drained]
        for job in jobs:
            while not _local_state(job).is_done:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"local job {job.name} still runs after {timeout}s")
                time.sleep(0.05)

    def local_backend(self, account_id: str, region: str) -> LocalBackend:
        """The LocalBackend that runs this account's and region's jobs."""
        with self._lock:
            key = (account_id, region)
            if key not in self._locals:
                root = self._root / f"gen-{self._generation}" / account_id / region
                self._locals[key] = LocalBackend(root)
            return self._locals[key]

    def job(self, account_id: str, region: str, job_type: JobType, name: str) -> HookedJob | None:
        return self._jobs.get((account_id, region, job_type, name))

    # --- what the patched moto calls ------------------------------------------------------
    def created(self, backend: Any, job_type: JobType, body: dict[str, Any], fake: Any) -> None:
        """moto created ``fake``: start the local job and show its state from now on."""
        with self._lock:
            local = self.local_backend(backend.account_id, backend.region_name)
            local.submit(JobRequest(job_type, body))
            name = JobRequest(job_type, body).name
            job = HookedJob(job_type, name, backend.account_id, backend.region_name, fake, local)
            self._jobs[(job.account_id, job.region, job_type, name)] = job
            _restore_request_fields(job_type, fake, body)
            # SageMaker's log group exists once a job of its kind has started.
            logs_backends[job.account_id][job.region].ensure_log_group(LOG_GROUPS[job_type])
            self._refresh(job)

    def refresh(self, backend: Any, job_type: JobType, names: list[str] | None = None) -> None:
        """Bring moto's records of these jobs (all of the backend's when None) up to date."""
        with self._lock:
            for job in list(self._jobs.values()):
                if (job.account_id, job.region, job.job_type) != (
                    backend.account_id,
                    backend.region_name,
                    job_type,
                ):
                    continue
                if names is None or job.name in names:
                    self._refresh(job)

    def stop(self, backend: Any, job_type: JobType, name: str) -> None:
        with self._lock:
            job = self.job(backend.account_id, backend.region_name, job_type, name)
            if job is None:
                return
            self._refresh(job)
            state = _state(job)
            if state.is_done:
                # StopTrainingJob / StopProcessingJob on a finished job is refused.
                raise ValidationError(
                    message=f"The request was rejected because the {job_type.value} job is "
                    f"in status {state.value}."
                )
            job.local.stop([(name, job_type)])
            self._refresh(job)

    def update_keep_alive(self, backend: Any, name: str, seconds: int) -> None:
        """UpdateTrainingJob ResourceConfig.KeepAlivePeriodInSeconds (the local pool's)."""
        with self._lock:
            job = self.job(backend.account_id, backend.region_name, JobType.TRAINING, name)
            if job is None:
                arn = sm_models.FakeTrainingJob.arn_formatter(
                    name, backend.account_id, backend.region_name
                )
                raise ValidationError(message=f"Could not find training job '{arn}'.")
            try:
                job.local.update_keep_alive(name, seconds)
            except LocalSageMakerError as e:
                raise ValidationError(message=str(e)) from e
            self._refresh(job)

    def check_warm_pool_quota(self, body: dict[str, Any]) -> None:
        """CreateTrainingJob: a keep-alive over the warm pool quota is refused, with the
        message SageMaker gives for an account-level service limit."""
        resources = body.get("ResourceConfig") or {}
        wanted = int(resources.get("InstanceCount", 1))
        if self.warm_pool_quota is None or not resources.get("KeepAlivePeriodInSeconds"):
            return
        if wanted > self.warm_pool_quota:
            raise ResourceLimitExceeded(
                f"The account-level service limit '{resources.get('InstanceType')} for "
                f"training warm pool usage' is {self.warm_pool_quota} Instances, with current "
                f"utilization of 0 Instances and a request delta of {wanted} Instances. Please "
                "use AWS Service Quotas to request an increase for this quota. If AWS Service "
                "Quotas is not available, contact AWS support to request an increase for this "
                "quota."
            )

    def sync_logs(self, account_id: str, region: str) -> None:
        """Before moto's CloudWatch Logs answers a read: copy what the jobs logged so far."""
        with self._lock:
            for job in list(self._jobs.values()):
                if (job.account_id, job.region) == (account_id, region):
                    self._refresh(job)

    # --- internals ------------------------------------------------------------------------
    def _refresh(self, job: HookedJob) -> None:
        if job.drained:
            return
        try:
            doc = job.local.describe(job.name, job.job_type)
        except LocalSageMakerError as e:  # its directory was removed under the hook
            doc = {_STATUS_KEYS[job.job_type]: JobState.FAILED.value, "FailureReason": str(e)}
        if self.lose_artifacts and doc.get(_STATUS_KEYS[job.job_type]) == "Completed":
            _lose_artifacts(job, doc, self.lose_artifacts)
        _apply_status(job.job_type, job.fake, doc)
        _copy_logs(job)
        # logs were copied after the job ended; a warm pool still changes after it
        pool = (doc.get("WarmPoolStatus") or {}).get("Status")
        job.drained = _state(job).is_done and pool not in ("Available", "InUse")


_STATUS_KEYS = {JobType.TRAINING: "TrainingJobStatus", JobType.PROCESSING: "ProcessingJobStatus"}


class ResourceLimitExceeded(SagemakerClientError):
    """SageMaker's error for a service quota (moto has none)."""

    code = "ResourceLimitExceeded"


def _lose_artifacts(job: HookedJob, doc: dict[str, Any], names: set[str]) -> None:
    """Delete the job's archives from moto's S3 in-process (no API call is recorded).

    Reproduces a job SageMaker reports Completed whose artifacts are not there (deleted by
    a lifecycle rule or another actor between completion and promotion)."""
    from moto.s3.models import s3_backends

    model_uri = (doc.get("ModelArtifacts") or {}).get("S3ModelArtifacts", "")
    if not model_uri.startswith("s3://"):
        return
    bucket, _, key = model_uri[len("s3://") :].partition("/")
    output_dir = key.rpartition("/")[0]
    s3 = s3_backends[job.account_id]["aws"]
    for name in names:
        if f"{output_dir}/{name}" in s3.get_bucket(bucket).keys:
            s3.delete_object(bucket, f"{output_dir}/{name}")


def _local_state(job: HookedJob) -> JobState:
    try:
        return job.local.poll([(job.name, job.job_type)])[job.name].state
    except LocalSageMakerError:
        return JobState.FAILED  # its directory is gone: nothing runs


def _state(job: HookedJob) -> JobState:
    attr = "training_job_status" if job.job_type is JobType.TRAINING else "processing_job_status"
    return JobState(getattr(job.fake, attr))


# --- moto's fake job <- the local job's Describe document ------------------------------------

# Describe* fields that the local job decides, by the FakeTrainingJob / FakeProcessingJob
# attribute that moto serializes them from (gen_response_object CamelCases attribute names).
_TRAINING_FIELDS = {
    "TrainingJobStatus": "training_job_status",
    "SecondaryStatus": "secondary_status",
    "SecondaryStatusTransitions": "secondary_status_transitions",
    "FailureReason": "failure_reason",
    "ModelArtifacts": "model_artifacts",
    "TrainingStartTime": "training_start_time",
    "TrainingEndTime": "training_end_time",
    "LastModifiedTime": "last_modified_time",
    "TrainingTimeInSeconds": "training_time_in_seconds",
    "BillableTimeInSeconds": "billable_time_in_seconds",
    # moto invents a "train:progress" metric; a real job reports only what it logged
    "FinalMetricDataList": "final_metric_data_list",
    "WarmPoolStatus": "warm_pool_status",  # moto has no warm pools
}
_PROCESSING_FIELDS = {
    "ProcessingJobStatus": "processing_job_status",
    "FailureReason": "failure_reason",
    "ExitMessage": "exit_message",
    "ProcessingStartTime": "processing_start_time",
    "ProcessingEndTime": "processing_end_time",
    "LastModifiedTime": "last_modified_time",
}


def _apply_status(job_type: JobType, fake: Any, doc: dict[str, Any]) -> None:
    """Absent fields become None, which moto's response_object leaves out (as SageMaker
    leaves out e.g. TrainingEndTime while a job runs)."""
    fields = _TRAINING_FIELDS if job_type is JobType.TRAINING else _PROCESSING_FIELDS
    for key, attr in fields.items():
        setattr(fake, attr, _moto_time(key, doc.get(key)))


def _moto_times(value: Any) -> Any:
    """The local document's ISO times as moto's own: naive UTC datetimes (moto's utcnow)."""
    if isinstance(value, dict):
        return {k: _moto_time(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_moto_times(v) for v in value]
    return value


def _moto_time(key: str, value: Any) -> Any:
    if key.endswith(("Time", "Timestamp")) and isinstance(value, str):
        return datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)
    return _moto_times(value)


def _restore_request_fields(job_type: JobType, fake: Any, body: dict[str, Any]) -> None:
    """Fields moto drops or rewrites at creation that DescribeTrainingJob returns as sent:
    moto overwrites AlgorithmSpecification.MetricDefinitions with a made-up definition and
    does not keep Environment."""
    fake.environment = copy.deepcopy(body.get("Environment"))
    if job_type is JobType.TRAINING:
        fake.algorithm_specification = copy.deepcopy(body.get("AlgorithmSpecification"))


# --- CloudWatch Logs --------------------------------------------------------------------------


def _copy_logs(job: HookedJob) -> None:
    """New lines of each host's log into moto's CloudWatch Logs, in-process (no API call)."""
    streams: dict[str, list[str]] = {}
    for event in job.local.logs(job.name, job.job_type):
        streams.setdefault(event.stream, []).append(event.message)
    if not any(len(lines) > job.copied.get(s, 0) for s, lines in streams.items()):
        return
    logs = logs_backends[job.account_id][job.region]
    group = LOG_GROUPS[job.job_type]
    logs.ensure_log_group(group)
    now = int(time.time() * 1000)
    for stream, lines in streams.items():
        new = lines[job.copied.get(stream, 0) :]
        if not new:
            continue
        logs.ensure_log_stream(group, stream)
        logs.put_log_events(group, stream, [{"timestamp": now, "message": m} for m in new])
        job.copied[stream] = len(lines)


# --- the patches ------------------------------------------------------------------------------


class _Patches:
    """setattr with undo; an attribute that did not exist is deleted again."""

    _MISSING = object()

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    @property
    def active(self) -> bool:
        return bool(self._undo)

    def set(self, owner: Any, name: str, value: Any) -> None:
        self._undo.append((owner, name, owner.__dict__.get(name, self._MISSING)))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._undo:
            owner, name, old = self._undo.pop()
            if old is self._MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


def _install(hook: SageMakerJobHook, patches: _Patches) -> None:
    for job_type in JobType:
        _patch_create(hook, patches, job_type)
        _patch_describe(hook, patches, job_type)
        _patch_list(hook, patches, job_type)
        _patch_stop(hook, patches, job_type)
    _patch_update_training(hook, patches)
    _patch_search(hook, patches)
    _patch_logs_reads(hook, patches)
    _patch_reset(hook, patches)


def _jobs_of(backend: Any, job_type: JobType) -> dict[str, Any]:
    return backend.training_jobs if job_type is JobType.TRAINING else backend.processing_jobs


def _kind(job_type: JobType) -> str:
    return "training" if job_type is JobType.TRAINING else "processing"


def _patch_create(hook: SageMakerJobHook, patches: _Patches, job_type: JobType) -> None:
    """SageMakerResponse.create_*_job: moto validates and records the job as before (but
    no longer calls it Completed); the raw body goes to the LocalBackend.

    Patched on the response class, not the backend, because only the response sees the
    whole body (moto's backend method does not get e.g. Environment). moto overwrites a
    job of the same name; SageMaker refuses it with ResourceInUse, so that check is added.
    """
    method = f"create_{_kind(job_type)}_job"
    original = getattr(SageMakerResponse, method)
    name_key = "TrainingJobName" if job_type is JobType.TRAINING else "ProcessingJobName"

    def create(self: SageMakerResponse) -> Any:
        body = json.loads(self.body or "{}")
        backend = self.sagemaker_backend
        jobs = _jobs_of(backend, job_type)
        name = body.get(name_key)
        if name in jobs:
            raise ResourceInUseException(
                f"{_kind(job_type).title()} job names must be unique within an AWS account "
                f"and region, and a {_kind(job_type)} job with this name already exists "
                f"({jobs[name].arn})"
            )
        if job_type is JobType.TRAINING:
            hook.check_warm_pool_quota(body)
        result = original(self)
        try:
            hook.created(backend, job_type, body, jobs[name])
        except LocalSageMakerError as e:
            # The local SageMaker refused what moto accepted: the job must not exist.
            del jobs[name]
            raise ValidationError(message=f"local backend refused the job: {e}") from e
        return result

    patches.set(SageMakerResponse, method, create)


def _patch_describe(hook: SageMakerJobHook, patches: _Patches, job_type: JobType) -> None:
    """SageMakerModelBackend.describe_*_job: the record is refreshed from the local job first."""
    method = f"describe_{_kind(job_type)}_job"
    original = getattr(sm_models.SageMakerModelBackend, method)

    def describe(self: Any, name: str) -> dict[str, Any]:
        hook.refresh(self, job_type, [name])
        return original(self, name)

    patches.set(sm_models.SageMakerModelBackend, method, describe)


def _patch_list(hook: SageMakerJobHook, patches: _Patches, job_type: JobType) -> None:
    """SageMakerModelBackend.list_*_jobs: every record refreshed first, so the summaries (and
    StatusEquals) show live statuses; summaries get the fields moto leaves out."""
    method = f"list_{_kind(job_type)}_jobs"
    original = getattr(sm_models.SageMakerModelBackend, method)
    summaries_key = (
        "TrainingJobSummaries" if job_type is JobType.TRAINING else "ProcessingJobSummaries"
    )
    name_key = "TrainingJobName" if job_type is JobType.TRAINING else "ProcessingJobName"

    def list_jobs(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        hook.refresh(self, job_type, None)
        result = original(self, *args, **kwargs)
        jobs = _jobs_of(self, job_type)
        for summary in result[summaries_key]:
            fake = jobs[summary[name_key]]
            summary.update(_summary_extras(job_type, fake))
            for key in [k for k, v in summary.items() if v is None]:
                del summary[key]
        return result

    patches.set(sm_models.SageMakerModelBackend, method, list_jobs)


def _summary_extras(job_type: JobType, fake: Any) -> dict[str, Any]:
    """TrainingJobSummary.SecondaryStatus; ProcessingJobSummary.FailureReason/ExitMessage."""
    if job_type is JobType.TRAINING:
        return {"SecondaryStatus": getattr(fake, "secondary_status", None)}
    return {
        "FailureReason": getattr(fake, "failure_reason", None),
        "ExitMessage": getattr(fake, "exit_message", None),
    }


def _patch_stop(hook: SageMakerJobHook, patches: _Patches, job_type: JobType) -> None:
    """Stop*Job: moto has no StopTrainingJob, and its StopProcessingJob flips the status to
    Stopped at once. Both now stop the local job: Stopping, then Stopped when the runner
    has stopped the hosts (SIGTERM, SIGKILL after the grace period) and uploaded.

    moto dispatches "SageMaker.StopTrainingJob" to ``SageMakerResponse.stop_training_job``
    (camel_case_to_underscores of the X-Amz-Target action), so adding the method is enough.
    """
    kind = _kind(job_type)
    method = f"stop_{kind}_job"
    name_key = "TrainingJobName" if job_type is JobType.TRAINING else "ProcessingJobName"
    fake_cls = (
        sm_models.FakeTrainingJob if job_type is JobType.TRAINING else sm_models.FakeProcessingJob
    )

    def backend_stop(self: Any, name: str) -> None:
        if name not in _jobs_of(self, job_type):
            arn = fake_cls.arn_formatter(name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find {kind} job '{arn}'.")
        hook.stop(self, job_type, name)

    def response_stop(self: SageMakerResponse) -> Any:
        from moto.core.responses import EmptyResult

        getattr(self.sagemaker_backend, method)(self._get_param(name_key))
        return EmptyResult()

    patches.set(sm_models.SageMakerModelBackend, method, backend_stop)
    patches.set(SageMakerResponse, method, response_stop)


def _patch_update_training(hook: SageMakerJobHook, patches: _Patches) -> None:
    """UpdateTrainingJob (moto has none): ResourceConfig.KeepAlivePeriodInSeconds changes the
    job's warm pool (0 ends it), as the managed warm pools guide describes. Added to the
    response class like Stop*: moto dispatches "SageMaker.UpdateTrainingJob" to it."""

    def response_update(self: SageMakerResponse) -> Any:
        name = self._get_param("TrainingJobName")
        resources = self._get_param("ResourceConfig") or {}
        if "KeepAlivePeriodInSeconds" in resources:
            hook.update_keep_alive(
                self.sagemaker_backend, name, int(resources["KeepAlivePeriodInSeconds"])
            )
        arn = sm_models.FakeTrainingJob.arn_formatter(
            name, self.sagemaker_backend.account_id, self.sagemaker_backend.region_name
        )
        return json.dumps({"TrainingJobArn": arn})

    patches.set(SageMakerResponse, "update_training_job", response_update)


def _patch_search(hook: SageMakerJobHook, patches: _Patches) -> None:
    """Search (Resource TrainingJob, used to find the jobs of an earlier run by tag and the
    details of ended jobs by name) as AWS documents it (tests/moto_search.py), over the same
    records, refreshed first like List."""
    from tests import moto_search

    moto_search.install(patches.set, lambda backend: hook.refresh(backend, JobType.TRAINING, None))


def _patch_logs_reads(hook: SageMakerJobHook, patches: _Patches) -> None:
    """CloudWatch Logs reads see every line the jobs have written so far."""
    for method in ("describe_log_streams", "get_log_events", "filter_log_events"):
        original = getattr(LogsBackend, method)

        def read(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            hook.sync_logs(self.account_id, self.region_name)
            return _original(self, *args, **kwargs)

        patches.set(LogsBackend, method, read)


def _patch_reset(hook: SageMakerJobHook, patches: _Patches) -> None:
    """POST /moto-api/reset empties moto; the hook stops and forgets its jobs with it."""
    original = MotoAPIBackend.reset

    def reset(self: Any) -> None:
        hook.reset()
        original(self)

    patches.set(MotoAPIBackend, "reset", reset)


# --- waiting, for tests -----------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def iter_log_messages(logs_client: Any, group: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(stream, message) of every event under ``group`` whose stream starts with ``prefix``."""
    streams = logs_client.describe_log_streams(logGroupName=group, logStreamNamePrefix=prefix)
    for stream in streams["logStreams"]:
        name = stream["logStreamName"]
        events = logs_client.get_log_events(
            logGroupName=group, logStreamName=name, startFromHead=True
        )
        for event in events["events"]:
            yield name, event["message"]
