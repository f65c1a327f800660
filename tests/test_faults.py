"""Fault injection on the aws backend against moto: throttling, 5xx, lost replies, lost artifacts.

Faults are injected at the moto server (:mod:`tests.moto_faults`), answered exactly as AWS
answers them, so botocore's own retry handler (standard mode, ``aws_clients.max_attempts()``
attempts) decides what to do, as it would on AWS. Nothing of ssm_rules is mocked. Attempts are
counted where they arrive: at the server (``api_calls``).

In-process tests skip botocore's backoff sleeps (``no_backoff``: the delays botocore computes
are recorded, not slept) so that a persistent fault costs milliseconds; the snakemake runs
sleep for real. docs/faults.md is the fault → outcome table; the last test keeps it honest.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from ssm_rules import aws_clients
from ssm_rules.backends.aws.context import aws_context
from ssm_rules.backends.aws.errors import StatusError, SubmitError
from ssm_rules.backends.base import JobRequest, JobState, JobType
from ssm_rules.backends.context import RunContext
from ssm_rules.objects import ObjectStoreError
from ssm_rules.settings import ExecutorSettings
from tests.e2e import Workflow
from tests.moto_faults import FaultKind
from tests.moto_sagemaker import LOG_GROUPS, ApiCalls, MotoServer, wait_for
from tests.test_moto_hook import processing_body, staged, training_body  # noqa: F401

ACCOUNT = "123456789012"  # moto's default account
KINDS = [FaultKind.THROTTLE, FaultKind.INTERNAL, FaultKind.UNAVAILABLE]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry schedule without its sleeps: each delay it computes is recorded and
    0 is slept instead. What is retried, and how often, stays botocore's decision."""
    delays: list[float] = []
    real = ExponentialBackoff.delay_amount

    def delay_amount(self: ExponentialBackoff, context: Any) -> float:
        delays.append(real(self, context))
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", delay_amount)
    return delays


@pytest.fixture
def ctx(aws: MotoServer, bucket: str, no_backoff: list[float]) -> RunContext:
    """What the executor gets: the aws backend and S3Objects, with aws_clients' retry config."""
    return aws_context(ExecutorSettings(backend="aws", role="SageMakerRole", bucket=bucket))


# --- one driver per operation: do it through ssm_rules, return what it produced -------------


@dataclass(frozen=True)
class Op:
    service: str
    operation: str
    setup: Callable[[MotoServer, RunContext, str, Path], Any]  # before the fault is armed
    run: Callable[[RunContext, Any], Any]  # the call under test, through ssm_rules
    check: Callable[[MotoServer, Any, Any], None]  # the outcome is right


def _name(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%H%M%S')}-{time.monotonic_ns() % 1_000_000:06d}"


def _body(job_type: JobType, name: str, bucket: str) -> dict[str, Any]:
    if job_type is JobType.TRAINING:
        return training_body(name, bucket)
    return processing_body(name, bucket)


def _new_job(job_type: JobType) -> Callable[[MotoServer, RunContext, str, Path], Any]:
    def setup(aws: MotoServer, ctx: RunContext, bucket: str, tmp: Path) -> tuple[str, str]:
        return _name("train" if job_type is JobType.TRAINING else "prep"), bucket

    return setup


def _create(job_type: JobType) -> Callable[[RunContext, tuple[str, str]], str]:
    def run(ctx: RunContext, arg: tuple[str, str]) -> str:
        name, bucket = arg
        ctx.backend.submit(JobRequest(job_type, _body(job_type, name, bucket)))
        return name

    return run


def _check_one_job(job_type: JobType) -> Callable[[MotoServer, Any, Any], None]:
    def check(aws: MotoServer, arg: tuple[str, str], name: str) -> None:
        sm = aws.client("sagemaker")
        if job_type is JobType.TRAINING:
            names = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
        else:
            summaries = sm.list_processing_jobs()["ProcessingJobSummaries"]
            names = [j["ProcessingJobName"] for j in summaries]
        assert names == [name]  # exactly one job: a retried Create never makes two

    return check


def _created_elsewhere(job_type: JobType) -> Callable[[MotoServer, RunContext, str, Path], str]:
    """A job created by another client (a re-attached one): the poller reads its details first
    (one Search for all such jobs)."""

    def setup(aws: MotoServer, ctx: RunContext, bucket: str, tmp: Path) -> str:
        name = _name("train")
        aws.client("sagemaker").create_training_job(**training_body(name, bucket))
        return name

    return setup


def _submitted_here(job_type: JobType) -> Callable[[MotoServer, RunContext, str, Path], str]:
    """A job our backend submitted (tracked: the first poll round Lists it)."""

    def setup(aws: MotoServer, ctx: RunContext, bucket: str, tmp: Path) -> str:
        name = _name("train" if job_type is JobType.TRAINING else "prep")
        ctx.backend.submit(JobRequest(job_type, _body(job_type, name, bucket)))
        return name

    return setup


def _poll(job_type: JobType) -> Callable[[RunContext, str], Any]:
    def run(ctx: RunContext, name: str) -> Any:
        return ctx.backend.poll([(name, job_type)])

    return run


def _check_status(aws: MotoServer, name: str, statuses: dict[str, Any]) -> None:
    assert statuses[name].name == name
    assert statuses[name].state in (JobState.IN_PROGRESS, JobState.COMPLETED)


def _setup_object(aws: MotoServer, ctx: RunContext, bucket: str, tmp: Path) -> str:
    aws.client("s3").put_object(Bucket=bucket, Key="faults/src.txt", Body=b"payload")
    return bucket


def _run_copy(ctx: RunContext, bucket: str) -> None:
    ctx.s3.copy(f"s3://{bucket}/faults/src.txt", f"s3://{bucket}/faults/dst.txt")


def _check_copied(aws: MotoServer, bucket: str, _: Any) -> None:
    body = aws.client("s3").get_object(Bucket=bucket, Key="faults/dst.txt")["Body"].read()
    assert body == b"payload"


def _setup_file(aws: MotoServer, ctx: RunContext, bucket: str, tmp: Path) -> tuple[str, Path]:
    path = tmp / "upload.txt"
    path.write_bytes(b"uploaded bytes")
    return bucket, path


def _run_upload(ctx: RunContext, arg: tuple[str, Path]) -> None:
    bucket, path = arg
    ctx.s3.upload(path, f"s3://{bucket}/faults/up.txt")


def _check_uploaded(aws: MotoServer, arg: tuple[str, Path], _: Any) -> None:
    body = aws.client("s3").get_object(Bucket=arg[0], Key="faults/up.txt")["Body"].read()
    assert body == b"uploaded bytes"


def _setup_listing(aws: MotoServer, ctx: RunContext, bucket: str, tmp: Path) -> str:
    s3 = aws.client("s3")
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"faults/list/{i}.txt", Body=b"x")
    return bucket


def _run_list(ctx: RunContext, bucket: str) -> list[str]:
    return [o.key for o in ctx.s3.list(f"s3://{bucket}/faults/list/")]


def _check_listed(aws: MotoServer, bucket: str, keys: list[str]) -> None:
    assert keys == [f"faults/list/{i}.txt" for i in range(3)]


def _setup_logs(aws: MotoServer, ctx: RunContext, bucket: str, tmp: Path) -> str:
    """Two instances' streams, as SageMaker names them, written by another client."""
    name = _name("train")
    logs = aws.client("logs")
    group = LOG_GROUPS[JobType.TRAINING]
    logs.create_log_group(logGroupName=group)
    for host in (1, 2):
        stream = f"{name}/algo-{host}-1700000000"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
        events = [{"timestamp": now + i, "message": f"h{host} {i}"} for i in range(3)]
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
    return name


def _run_logs(ctx: RunContext, name: str) -> list[str]:
    return [e.message for e in ctx.backend.logs(name, JobType.TRAINING)]


def _check_logs(aws: MotoServer, name: str, messages: list[str]) -> None:
    assert messages == [f"h{h} {i}" for h in (1, 2) for i in range(3)]


OPS = {
    "CreateTrainingJob": Op(
        "sagemaker",
        "CreateTrainingJob",
        _new_job(JobType.TRAINING),
        _create(JobType.TRAINING),
        _check_one_job(JobType.TRAINING),
    ),
    "CreateProcessingJob": Op(
        "sagemaker",
        "CreateProcessingJob",
        _new_job(JobType.PROCESSING),
        _create(JobType.PROCESSING),
        _check_one_job(JobType.PROCESSING),
    ),
    "Search": Op(
        "sagemaker",
        "Search",
        _created_elsewhere(JobType.TRAINING),
        _poll(JobType.TRAINING),
        _check_status,
    ),
    "ListTrainingJobs": Op(
        "sagemaker",
        "ListTrainingJobs",
        _submitted_here(JobType.TRAINING),
        _poll(JobType.TRAINING),
        _check_status,
    ),
    "ListProcessingJobs": Op(
        "sagemaker",
        "ListProcessingJobs",
        _submitted_here(JobType.PROCESSING),
        _poll(JobType.PROCESSING),
        _check_status,
    ),
    "CopyObject": Op("s3", "CopyObject", _setup_object, _run_copy, _check_copied),
    "PutObject": Op("s3", "PutObject", _setup_file, _run_upload, _check_uploaded),
    "ListObjectsV2": Op("s3", "ListObjectsV2", _setup_listing, _run_list, _check_listed),
    "DescribeLogStreams": Op("logs", "DescribeLogStreams", _setup_logs, _run_logs, _check_logs),
    "GetLogEvents": Op("logs", "GetLogEvents", _setup_logs, _run_logs, _check_logs),
}


def _attempts(api_calls: ApiCalls, op: Op) -> int:
    return api_calls.count(op.service, op.operation)


# --- transient faults: retried, and the outcome is right --------------------------------------


# staged: the jobs an operation polls run real code; without it they fail (no code bundle),
# and a poll that came after that read Failed, rightly, and failed the test
@pytest.mark.usefixtures("staged")
@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
@pytest.mark.parametrize("op_name", list(OPS))
def test_transient_fault_is_retried_and_the_outcome_is_right(
    op_name: str,
    kind: FaultKind,
    aws: MotoServer,
    bucket: str,
    ctx: RunContext,
    api_calls: ApiCalls,
    no_backoff: list[float],
    tmp_path: Path,
) -> None:
    op = OPS[op_name]
    arg = op.setup(aws, ctx, bucket, tmp_path)
    before = _attempts(api_calls, op)
    fault = aws.faults.add(op.service, op.operation, kind, times=2)
    result = op.run(ctx, arg)
    op.check(aws, arg, result)
    assert fault.injected == 2
    # the first call of the operation under test took 3 attempts: 2 refused, 1 answered
    assert _attempts(api_calls, op) - before >= 3
    assert len(no_backoff) >= 2  # botocore backed off before each retry


# --- persistent faults: bounded attempts, then a clear error ----------------------------------

# What the aws backend makes of a fault that outlasts botocore's attempts: Create*Job →
# SubmitError naming the job; a status round → StatusError naming the jobs (the executor skips
# the round, and gives up after MAX_FAILED_POLLS in a row); S3 → ObjectStoreError naming the
# operation and object; CloudWatch Logs → botocore's error (the executor logs a warning: logs
# never hide an outcome).
POLL_OPS = {"Search", "ListTrainingJobs", "ListProcessingJobs"}
ERRORS: dict[str, type[Exception]] = {
    "CreateTrainingJob": SubmitError,
    "CreateProcessingJob": SubmitError,
    **dict.fromkeys(POLL_OPS, StatusError),
    **dict.fromkeys(("CopyObject", "PutObject", "ListObjectsV2"), ObjectStoreError),
    **dict.fromkeys(("DescribeLogStreams", "GetLogEvents"), ClientError),
}


@pytest.mark.parametrize("op_name", list(OPS))
def test_persistent_fault_ends_after_the_bounded_attempts(
    op_name: str,
    aws: MotoServer,
    bucket: str,
    ctx: RunContext,
    api_calls: ApiCalls,
    no_backoff: list[float],
    tmp_path: Path,
) -> None:
    op = OPS[op_name]
    arg = op.setup(aws, ctx, bucket, tmp_path)
    before = _attempts(api_calls, op)
    fault = aws.faults.add(op.service, op.operation, FaultKind.THROTTLE, times=None)
    with pytest.raises(ERRORS[op_name]) as raised:
        op.run(ctx, arg)
    # exactly the bounded number of attempts, then it stopped
    assert _attempts(api_calls, op) - before == aws_clients.max_attempts()
    assert fault.injected == aws_clients.max_attempts()
    text = str(raised.value)
    assert ("SlowDown" if op.service == "s3" else "ThrottlingException") in text, text
    if op_name in POLL_OPS:
        assert arg in text and f"after {aws_clients.max_attempts()} attempts" in text
    elif op.operation.startswith("Create"):
        assert arg[0] in text and "run the same command again later" in text
    elif op.service == "s3":
        assert f"s3://{bucket}/faults/" in text and op.operation in text


@pytest.mark.usefixtures("staged")
def test_lost_create_reply_tracks_the_job_the_first_attempt_created(
    aws: MotoServer, bucket: str, ctx: RunContext, api_calls: ApiCalls
) -> None:
    """SageMaker created the job, the reply was lost (500) and botocore retried: the retry
    meets the job (ResourceInUse). It is ours, running and billed: tracked, not an error."""
    name = _name("train")
    aws.faults.add("sagemaker", "CreateTrainingJob", FaultKind.INTERNAL, times=1, after=True)
    ctx.backend.submit(JobRequest(JobType.TRAINING, training_body(name, bucket)))
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 2
    _check_one_job(JobType.TRAINING)(aws, (name, bucket), name)
    wait_for(lambda: _is_done(ctx, name), what=f"{name} done")
    assert ctx.backend.poll([(name, JobType.TRAINING)])[name].state is JobState.COMPLETED


def _is_done(ctx: RunContext, name: str) -> bool:
    status = ctx.backend.poll([(name, JobType.TRAINING)]).get(name)
    return status is not None and status.is_done


def test_a_failed_log_read_loses_no_events(
    aws: MotoServer, bucket: str, ctx: RunContext, tmp_path: Path
) -> None:
    """The incremental reader fails on the second stream (GetLogEvents throttled for good):
    the next read still returns the first stream's events, which the failed read had fetched."""
    name = _setup_logs(aws, ctx, bucket, tmp_path)
    reader = ctx.backend.log_reader(name, JobType.TRAINING)
    # while the job runs, one page per stream a read: stream 1's passes, stream 2 fails for good
    aws.faults.add("logs", "GetLogEvents", FaultKind.THROTTLE, times=None, skip=1)
    with pytest.raises(ClientError):
        reader.read()
    aws.faults.clear()
    assert [e.message for e in reader.read()] == [f"h{h} {i}" for h in (1, 2) for i in range(3)]
    assert reader.read() == []


# --- snakemake runs ---------------------------------------------------------------------------

SNAKEFILE = """
from ssm_rules import model, local_input

rule prep:
    input: data=local_input("data")
    output: n="prep/count.txt"
    resources: job_type="processing"
    log: "logs/prep.log"
    shell: "ls {input.data} | wc -l > {output.n}; echo prepared"

rule train:
    input: n="prep/count.txt"
    output: m=model("train/model.tar.gz"), metrics="train/metrics.json", env="train/env.txt"
    params: epochs=2
    log: "logs/train.log"
    shell: "cp {input.n} $SM_MODEL_DIR/count.txt; echo '{{\\"ok\\": 1}}' > {output.metrics}; env > {output.env}; echo trained"
"""
TARGETS = ("train/model.tar.gz", "train/metrics.json", "train/env.txt")


def snakemake_args(bucket: str) -> tuple[str, ...]:
    return (
        "--executor",
        "sagemaker",
        "--sagemaker-backend",
        "aws",
        "--sagemaker-role",
        "SageMakerRole",
        "--sagemaker-bucket",
        bucket,
        "--default-storage-provider",
        "s3",
        "--default-storage-prefix",
        f"s3://{bucket}/x",
        "--jobs",
        "2",
        "--seconds-between-status-checks",
        "0",
        "--latency-wait",
        "1",
    )


def small_workflow(tmp_path: Path) -> Workflow:
    wf = Workflow(tmp_path / "wf")
    wf.write("Snakefile", SNAKEFILE)
    wf.write("data/a.txt", "a\n")
    wf.write("data/b.txt", "b\n")
    return wf


def _keys(aws: MotoServer, bucket: str, prefix: str) -> set[str]:
    reply = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for o in reply.get("Contents", [])}


def _read(aws: MotoServer, bucket: str, key: str) -> bytes:
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _model_members(aws: MotoServer, bucket: str, key: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(_read(aws, bucket, key))) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


# Faults sprinkled over one run: each operation fails a few times, the way AWS fails it.
SPRINKLED = [
    ("sts", "GetCallerIdentity", FaultKind.THROTTLE, 1),
    ("sagemaker", "CreateProcessingJob", FaultKind.THROTTLE, 2),
    ("sagemaker", "CreateTrainingJob", FaultKind.INTERNAL, 1),
    ("sagemaker", "ListProcessingJobs", FaultKind.UNAVAILABLE, 2),
    ("sagemaker", "ListTrainingJobs", FaultKind.THROTTLE, 2),
    ("sagemaker", "Search", FaultKind.THROTTLE, 1),
    ("sagemaker", "Search", FaultKind.THROTTLE, 1),
    ("s3", "CopyObject", FaultKind.THROTTLE, 2),
    ("s3", "PutObject", FaultKind.INTERNAL, 2),
    ("s3", "ListObjectsV2", FaultKind.THROTTLE, 1),
    ("s3", "HeadObject", FaultKind.UNAVAILABLE, 2),
    ("logs", "DescribeLogStreams", FaultKind.UNAVAILABLE, 1),
    ("logs", "GetLogEvents", FaultKind.THROTTLE, 1),
]


@pytest.mark.slow  # a snakemake run
def test_snakemake_run_completes_through_sprinkled_faults(
    tmp_path: Path, aws: MotoServer, bucket: str, api_calls: ApiCalls
) -> None:
    wf = small_workflow(tmp_path)
    faults = [aws.faults.add(svc, op, kind, times=n) for svc, op, kind, n in SPRINKLED]
    proc = wf.run(*snakemake_args(bucket), *TARGETS, env=aws.env())
    text = proc.stdout + proc.stderr
    for fault in faults:  # every fault was met, and answered with a retry
        assert fault.injected >= 1, (fault.service, fault.operation)
    assert "Traceback" not in text
    members = _model_members(aws, bucket, "x/train/model.tar.gz")
    assert members["count.txt"].strip() == b"2"  # prep counted the 2 input files
    assert json.loads(_read(aws, bucket, "x/train/metrics.json")) == {"ok": 1}
    assert b"trained" in _read(aws, bucket, "x/logs/train.log")
    # a retried Create never made a second job
    sm = aws.client("sagemaker")
    assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 1
    assert len(sm.list_processing_jobs()["ProcessingJobSummaries"]) == 1
    print_table(faults, api_calls)


def print_table(faults: list[Any], api_calls: ApiCalls) -> None:
    print("\nfault | injected | requests of that operation")
    for f in faults:
        print(
            f"{f.service} {f.operation} {f.kind.value} | {f.injected} | "
            f"{api_calls.count(f.service, f.operation)}"
        )


@pytest.mark.parametrize(
    ("service", "operation", "expected"),
    [
        (
            "sagemaker",
            "CreateTrainingJob",
            ["Error in rule train", "refused CreateTrainingJob", "train-"],
        ),
        ("sagemaker", "ListTrainingJobs", ["status rounds in a row failed", "re-attach", "train-"]),
        ("s3", "CopyObject", ["Error in rule prep", "prep-", "CopyObject", "SlowDown"]),
        ("s3", "PutObject", ["Error in rule", "sourcedir.tar.gz (S3 PutObject)", "SlowDown"]),
    ],
    ids=["CreateTrainingJob", "ListTrainingJobs", "CopyObject", "PutObject"],
)
@pytest.mark.slow  # a snakemake run
def test_snakemake_run_ends_with_a_clear_error_on_a_persistent_fault(
    service: str,
    operation: str,
    expected: list[str],
    tmp_path: Path,
    aws: MotoServer,
    bucket: str,
    api_calls: ApiCalls,
) -> None:
    """Two attempts per call (SSM_AWS_MAX_ATTEMPTS=2) keep the real backoff short."""
    wf = small_workflow(tmp_path)
    fault = aws.faults.add(service, operation, FaultKind.THROTTLE, times=None)
    env = {**aws.env(), "SSM_AWS_MAX_ATTEMPTS": "2"}
    proc = wf.run(*snakemake_args(bucket), *TARGETS, env=env, check=False, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert fault.injected >= 2
    for fragment in expected:
        assert fragment in text, (fragment, text[-3000:])
    assert "Traceback" not in text
    assert not _keys(aws, bucket, "x/train/")  # nothing of train was promoted


@pytest.mark.slow  # a snakemake run
def test_completed_job_without_its_artifacts_is_a_clear_rule_error(
    tmp_path: Path, aws: MotoServer, bucket: str
) -> None:
    """SageMaker says Completed, but model.tar.gz is not there: the rule fails naming the job
    and the missing object; none of its declared outputs is promoted."""
    wf = small_workflow(tmp_path)
    aws.hook.lose_artifacts.add("model.tar.gz")
    proc = wf.run(*snakemake_args(bucket), *TARGETS, env=aws.env(), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in text
    job = aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"][0]
    assert job["TrainingJobStatus"] == "Completed"
    name = job["TrainingJobName"]
    assert f"job {name} completed but left no s3://{bucket}/" in text, text[-3000:]
    assert f"{name}/output/model.tar.gz" in text
    assert "Error in rule train" in text
    assert not _keys(aws, bucket, "x/train/")  # metrics.json and env.txt were not promoted
    assert _keys(aws, bucket, "x/prep/") == {"x/prep/count.txt"}  # the rule before is intact


# --- safety: the client's credentials stay on the client ----------------------------------------

# Distinctive fake credentials (moto accepts any): a leak anywhere is found by plain search.
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIASSMRULESLEAKTEST",
    "AWS_SECRET_ACCESS_KEY": "ssmRulesSecretKeyMustNeverLeave0123456789",
    "AWS_SESSION_TOKEN": "ssmRulesSessionTokenMustNeverLeave/ABCDEFGH+xyz==",
}
CLIENT_APP = "ssm-fault-client"  # AWS_SDK_UA_APP_ID of the snakemake process only


def _is_ours(call: Any) -> bool:
    """An S3 call of ssm_rules in the snakemake process: not the storage plugin's (no
    ``ssm_rules`` in its User-Agent), not a job runner's (no app id: only snakemake has it)."""
    agent = call.headers.get("user-agent", "")
    return aws_clients.USER_AGENT in agent and f"app/{CLIENT_APP}" in agent


def _bundle_bytes(aws: MotoServer, bucket: str) -> bytes:
    keys = [k for k in _keys(aws, bucket, "ssm-rules/code/") if k.endswith(".tar.gz")]
    assert keys, "no code bundle was uploaded"
    data = b""
    for key in keys:
        data += b"".join(_model_members(aws, bucket, key).values())
    return data


@pytest.mark.slow  # a snakemake run
def test_credentials_never_leave_the_client_and_s3_calls_check_the_owner(
    tmp_path: Path,
    aws: MotoServer,
    bucket: str,
    api_calls: ApiCalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():  # the job runners (spawned by this process) too
        monkeypatch.setenv(name, value)
    wf = small_workflow(tmp_path)
    env = {**aws.env(), **SECRETS, "AWS_SDK_UA_APP_ID": CLIENT_APP}
    wf.run(*snakemake_args(bucket), *TARGETS, env=env)
    calls = api_calls.calls
    # the run really used these credentials (in the signature's scope and token header)
    signed = [
        c for c in calls if SECRETS["AWS_ACCESS_KEY_ID"] in c.headers.get("authorization", "")
    ]
    assert signed and all(
        c.headers.get("x-amz-security-token") == SECRETS["AWS_SESSION_TOKEN"] for c in signed
    )
    # no request body at all (Create*Job, S3 uploads of code, inputs, outputs and logs, ...)
    for call in calls:
        for secret in SECRETS.values():
            assert secret.encode() not in call.body, (call.service, call.operation)
    # Create*Job: nothing in HyperParameters or Environment
    creates = [c for c in calls if c.operation in ("CreateTrainingJob", "CreateProcessingJob")]
    assert len(creates) == 2
    for call in creates:
        body = json.loads(call.body)
        fields = json.dumps([body.get("HyperParameters"), body.get("Environment")])
        assert not any(secret in fields for secret in SECRETS.values())
    # the code bundle
    bundle = _bundle_bytes(aws, bucket)
    assert not any(secret.encode() in bundle for secret in SECRETS.values())
    # the job's own processes: it printed its environment into a declared output
    job_env = _read(aws, bucket, "x/train/env.txt").decode()
    assert "SM_MODEL_DIR=" in job_env  # it is the job's environment
    for name, secret in SECRETS.items():
        assert secret not in job_env and f"{name}=" not in job_env
    # every S3 call of ours carries ExpectedBucketOwner (CreateBucket cannot: not sent here)
    ours = [c for c in calls if c.service == "s3" and _is_ours(c)]
    assert {c.operation for c in ours} >= {"HeadBucket", "HeadObject", "PutObject", "CopyObject"}
    unchecked = [
        (c.operation, c.path)
        for c in ours
        if c.headers.get("x-amz-expected-bucket-owner") != ACCOUNT
    ]
    assert not unchecked
    print(f"\nour S3 calls, all with ExpectedBucketOwner: {Counter(c.operation for c in ours)}")


def test_the_fault_table_in_the_docs_names_tests_that_exist() -> None:
    """docs/faults.md is the fault → outcome table: each test it names is in this module."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "faults.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", doc))
    assert len(named) >= 7
    assert named <= {n for n in globals() if n.startswith("test_")}


def test_owner_check_only_on_the_staging_bucket(aws: MotoServer, api_calls: ApiCalls) -> None:
    """ExpectedBucketOwner guards our staging bucket; on another bucket (a public dataset,
    storage in another account) it would make S3 refuse the call, so it is not sent there."""
    from ssm_rules.objects import S3Objects

    s3 = aws.client("s3")
    for name in ("staging-bucket", "dataset-bucket"):
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="k/x.txt", Body=b"x")
    store = S3Objects(
        client=s3, expected_owner=ACCOUNT, owned_buckets=frozenset({"staging-bucket"})
    )
    api_calls.clear()
    assert store.exists("s3://staging-bucket/k/x.txt") and store.exists(
        "s3://dataset-bucket/k/x.txt"
    )
    store.list("s3://staging-bucket/k/")
    store.list("s3://dataset-bucket/k/")
    owner = {
        c.path.split("/")[1]: c.headers.get("x-amz-expected-bucket-owner") for c in api_calls.calls
    }
    assert owner == {"staging-bucket": ACCOUNT, "dataset-bucket": None}
