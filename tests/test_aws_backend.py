"""The aws backend against a real moto server over HTTP (tests/moto_server.py).

API calls are counted with a botocore ``before-call`` hook on the real clients, so a count
is what would be sent to AWS, not what a mock was asked.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from ssm_rules import aws_clients
from ssm_rules.backends.aws.context import aws_context
from ssm_rules.backends.aws.cwlogs import STREAMS_EVERY
from ssm_rules.backends.aws.errors import AwsSetupError, InvalidRequestError, SubmitError
from ssm_rules.backends.aws.service import AwsBackend
from ssm_rules.backends.aws.validation import (
    RequestValidator,
    java_to_python,
    sagemaker_service_model,
    validate_request,
)
from ssm_rules.backends.base import JobRequest, JobState, JobType
from ssm_rules.rate_limit import RateLimiter
from ssm_rules.settings import ExecutorSettings
from tests.moto_server import ACCOUNT, FOREIGN_ENV, PlainMotoServer

ROLE = f"arn:aws:iam::{ACCOUNT}:role/ssm-test"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-cpu-py312"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_plain() -> Iterator[PlainMotoServer]:
    server = PlainMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_plain: PlainMotoServer, monkeypatch: pytest.MonkeyPatch) -> PlainMotoServer:
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_plain.env().items():
        monkeypatch.setenv(name, value)
    moto_plain.reset()
    aws_clients.forget_sessions()  # a cached session keeps the credentials it resolved
    yield moto_plain
    aws_clients.forget_sessions()


class Calls:
    """Every API call made through the clients it is attached to (service, operation)."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    def attach(self, client: Any) -> Any:
        # once per client, however often it is handed out (aws_clients caches its clients)
        client.meta.events.register("before-call", self._record, unique_id=f"calls-{id(self)}")
        return client

    def _record(self, model: Any, **_: Any) -> None:
        self.seen[(model.service_model.service_id.hyphenize(), model.name)] += 1

    def count(self, operation: str) -> int:
        return sum(n for (_, op), n in self.seen.items() if op == operation)

    def ops(self) -> set[str]:
        return {op for _, op in self.seen}

    def clear(self) -> None:
        self.seen.clear()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Counts the calls of every client ssm_rules.aws_clients creates."""
    counter = Calls()
    real = aws_clients.client

    def counted(service: str, region: str | None = None) -> Any:
        return counter.attach(real(service, region))

    monkeypatch.setattr(aws_clients, "client", counted)
    return counter


def plain_client(service: str, **kwargs: Any) -> Any:
    # one attempt: a refused call shows at once instead of after backoff
    return boto3.client(service, config=Config(retries={"max_attempts": 1}), **kwargs)


@pytest.fixture
def backend(moto: PlainMotoServer) -> tuple[AwsBackend, Calls]:
    counter = Calls()
    sm = counter.attach(plain_client("sagemaker"))
    logs = counter.attach(plain_client("logs"))
    # no submit rate limit: these tests count calls (test_creates_are_rate_limited has its own)
    return AwsBackend(sm, logs, submit_limiter=RateLimiter(None)), counter


def settings(**kwargs: Any) -> ExecutorSettings:
    return ExecutorSettings(backend="aws", **kwargs)


# --- request bodies (the shape ssm_rules/requests.py builds) ----------------------------------


def training_body(name: str = "train-1121120000-abc123") -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": {"epochs": "3", "sagemaker_program": '"ssm_launch.py"'},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/ssm-rules/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        "EnableManagedSpotTraining": True,
        "InputDataConfig": [
            {
                "ChannelName": "data",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/ssm-rules/tasks/t/input/data/",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
                "InputMode": "File",
            }
        ],
        "CheckpointConfig": {
            "S3Uri": "s3://bucket/runs/state/",
            "LocalPath": "/opt/ml/checkpoints",
        },
        "Tags": [{"Key": "ssm-rules:rule", "Value": "train"}],
    }


def processing_body(name: str = "prep-1121120000-abc123") -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["/bin/sh", "-c", "true"]},
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": "s3://bucket/ssm-rules/code/sourcedir.tar.gz",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "carrier",
                    "S3Output": {
                        "S3Uri": "s3://bucket/ssm-rules/jobs/prep/carrier",
                        "LocalPath": "/opt/ml/processing/carrier",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "RoleArn": ROLE,
        "Tags": [{"Key": "ssm-rules:rule", "Value": "prep"}],
    }


# --- context -----------------------------------------------------------------------------------


def test_context_resolves_account_role_bucket_and_creates_the_bucket(
    moto: PlainMotoServer, calls: Calls
) -> None:
    ctx = aws_context(settings(role="ssm-test", prefix="runs/ssm"))
    bucket = f"sagemaker-us-east-1-{ACCOUNT}"
    assert ctx.backend_name == "aws"
    assert ctx.region == "us-east-1"
    assert ctx.role_arn == f"arn:aws:iam::{ACCOUNT}:role/ssm-test"
    assert ctx.root == f"s3://{bucket}/runs/ssm/"
    assert ctx.jobs_uri == f"s3://{bucket}/runs/ssm/jobs"
    assert isinstance(ctx.backend, AwsBackend)
    assert ctx.s3 is not None and ctx.s3._owner(bucket) == {"ExpectedBucketOwner": ACCOUNT}
    assert calls.count("GetCallerIdentity") == 1
    assert calls.count("HeadBucket") == 1
    assert calls.count("CreateBucket") == 1
    plain_client("s3").head_bucket(Bucket=bucket)  # it exists now

    calls.clear()
    again = aws_context(settings(role=ROLE))
    assert again.role_arn == ROLE  # an ARN is kept as is
    assert calls.count("CreateBucket") == 0  # the bucket is there: checked, not re-created


def test_context_creates_a_bucket_outside_us_east_1_with_its_location(
    moto: PlainMotoServer, calls: Calls
) -> None:
    ctx = aws_context(settings(role="r", region="eu-west-1", bucket="my-ssm-bucket"))
    assert ctx.region == "eu-west-1"
    assert ctx.root == "s3://my-ssm-bucket/ssm-rules/"
    location = plain_client("s3", region_name="eu-west-1").get_bucket_location(
        Bucket="my-ssm-bucket"
    )
    assert location["LocationConstraint"] == "eu-west-1"


def test_context_refuses_a_bucket_of_another_account(moto: PlainMotoServer, calls: Calls) -> None:
    creds = plain_client("sts").assume_role(
        RoleArn="arn:aws:iam::111111111111:role/other", RoleSessionName="other"
    )["Credentials"]
    other = plain_client(
        "s3",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    other.create_bucket(Bucket="their-bucket")
    with pytest.raises(AwsSetupError) as e:
        aws_context(settings(role="r", bucket="their-bucket"))
    assert str(e.value) == (
        "bucket their-bucket belongs to another account or is not accessible: "
        "pass --sagemaker-bucket <yours>"
    )
    assert calls.count("HeadBucket") == 1
    assert calls.count("CreateBucket") == 0


def test_context_with_a_malformed_role_name_fails_before_any_call(
    moto: PlainMotoServer, calls: Calls
) -> None:
    with pytest.raises(AwsSetupError, match="--sagemaker-role-name 'a b' is not an IAM role name"):
        aws_context(settings(role_name="a b"))
    assert not calls.seen


def test_context_without_region_fails_before_any_call(
    moto: PlainMotoServer, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(AwsSetupError) as e:
        aws_context(settings(role="r"))
    assert str(e.value) == "no AWS region: pass --sagemaker-region or set AWS_DEFAULT_REGION"
    assert not calls.seen


def test_context_without_credentials_fails_before_any_call(
    moto: PlainMotoServer, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AwsSetupError, match="no AWS credentials found"):
        aws_context(settings(role="r"))
    assert not calls.seen


def test_context_refuses_half_a_vpc_config(moto: PlainMotoServer, calls: Calls) -> None:
    with pytest.raises(AwsSetupError, match="--sagemaker-security-group-ids"):
        aws_context(settings(role="r", subnets="subnet-1"))
    assert not calls.seen


def test_context_refuses_a_region_that_does_not_exist_before_any_call(
    moto: PlainMotoServer, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-7")
    with pytest.raises(AwsSetupError) as e:
        aws_context(settings(role="r"))
    message = str(e.value)
    assert (
        "AWS_DEFAULT_REGION" in message and "'us-east-7' is not a region with SageMaker" in message
    )
    assert "did you mean 'us-east-2' or 'us-east-1'" in message
    assert not calls.seen  # not "check your credentials and network" after a failed STS call


def test_storage_bucket_is_checked_at_start(moto: PlainMotoServer, calls: Calls) -> None:
    from ssm_rules.backends.aws.context import check_storage_bucket

    s3 = calls.attach(plain_client("s3"))
    with pytest.raises(AwsSetupError) as e:
        check_storage_bucket(s3, "s3://your-bucket/ssm-rules/artifacts")
    assert "placeholder bucket 'your-bucket'" in str(e.value)
    assert "--default-storage-prefix s3://<your bucket>/<prefix>" in str(e.value)
    with pytest.raises(AwsSetupError, match="'Bad_Bucket' is not an S3 bucket name"):
        check_storage_bucket(s3, "s3://Bad_Bucket/x")
    assert not calls.seen  # both refused without a call
    with pytest.raises(AwsSetupError) as e:
        check_storage_bucket(s3, "s3://no-such-bucket-here/wf")
    assert "bucket no-such-bucket-here does not exist" in str(e.value)
    assert "aws s3 mb s3://no-such-bucket-here" in str(e.value)
    plain_client("s3").create_bucket(Bucket="mine")
    check_storage_bucket(s3, "s3://mine/wf")
    assert calls.count("HeadBucket") == 2
    check_storage_bucket(s3, "s3://staging/wf", staging_bucket="staging")  # checked at start
    assert calls.count("HeadBucket") == 2
    assert calls.ops() == {"HeadBucket"}  # read-only: nothing created


# --- validation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Any:
    return sagemaker_service_model()


def problems(body: dict[str, Any], model: Any, job_type: JobType = JobType.TRAINING) -> str:
    with pytest.raises(InvalidRequestError) as e:
        validate_request(JobRequest(job_type, body), model)
    return str(e.value)


def test_valid_requests_pass(model: Any) -> None:
    assert validate_request(JobRequest(JobType.TRAINING, training_body()), model) == []
    assert validate_request(JobRequest(JobType.PROCESSING, processing_body()), model) == []


def test_bad_enum_names_the_path_and_a_close_match(model: Any) -> None:
    body = training_body()
    body["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "Sharded"
    body["AlgorithmSpecification"]["TrainingInputMode"] = "file"
    msg = problems(body, model)
    assert (
        "InputDataConfig[0].DataSource.S3DataSource.S3DataDistributionType: 'Sharded' is not "
        "allowed: did you mean 'ShardedByS3Key'?" in msg
    )
    assert (
        "AlgorithmSpecification.TrainingInputMode: 'file' is not allowed: did you mean 'File'"
        in msg
    )
    assert "2 problem(s)" in msg


def test_bad_pattern_job_name(model: Any) -> None:
    msg = problems(training_body(name="train_job"), model)
    assert (
        "TrainingJobName: 'train_job' does not match the pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
        in msg
    )


def test_out_of_range_and_length(model: Any) -> None:
    body = training_body(name="x" * 64)
    body["StoppingCondition"]["MaxRuntimeInSeconds"] = 0
    msg = problems(body, model)
    assert "StoppingCondition.MaxRuntimeInSeconds: 0 is below the minimum 1" in msg
    assert "TrainingJobName: " in msg and "is 64 characters, longer than 63" in msg


def test_unknown_member_and_missing_required(model: Any) -> None:
    body = training_body()
    body["ResourceConfig"]["InstanceCont"] = 2
    del body["RoleArn"]
    msg = problems(body, model)
    assert "ResourceConfig.InstanceCont: unknown member (did you mean 'InstanceCount'?)" in msg
    assert "RoleArn: required member is missing" in msg


def test_wrong_types_and_list_sizes(model: Any) -> None:
    body = processing_body()
    body["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "2"
    body["AppSpecification"]["ContainerEntrypoint"] = ["x"] * 101
    msg = problems(body, model, JobType.PROCESSING)
    assert "ProcessingResources.ClusterConfig.InstanceCount: '2' is not an int" in msg
    assert "AppSpecification.ContainerEntrypoint: has length 101 is above the maximum 100" in msg


def test_unknown_but_well_formed_instance_type_only_warns(
    model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = training_body()
    body["ResourceConfig"]["InstanceType"] = "ml.p9e.96xlarge"
    with caplog.at_level(logging.WARNING):
        warnings = validate_request(JobRequest(JobType.TRAINING, body), model)
    assert [w.path for w in warnings] == ["ResourceConfig.InstanceType"]
    assert "'ml.p9e.96xlarge' is not an instance type botocore" in caplog.text
    caplog.clear()
    body["ResourceConfig"]["InstanceType"] = "ml.t2.medium"  # a notebook type, not a job's
    with caplog.at_level(logging.WARNING):
        validate_request(JobRequest(JobType.TRAINING, body), model)
    assert "'ml.t2.medium' is a SageMaker instance type for notebooks, endpoints" in caplog.text
    assert "SageMaker will most likely refuse it" in caplog.text

    seen: list[str] = []
    validator = RequestValidator(model, warn=seen.append)
    validator(JobRequest(JobType.TRAINING, body))
    validator(JobRequest(JobType.TRAINING, {**body, "TrainingJobName": "other-1"}))
    assert len(seen) == 1  # once per run, not once per job

    body["ResourceConfig"]["InstanceType"] = "ml.m5.larg"
    assert "did you mean 'ml.m5.large'" in problems(body, model)
    body["ResourceConfig"]["InstanceType"] = "m5.large"
    assert "ResourceConfig.InstanceType: 'm5.large' is not allowed" in problems(body, model)


def test_java_patterns_are_rewritten_wider_not_skipped() -> None:
    import re

    tag = java_to_python(r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)")
    assert re.fullmatch(tag, "ssm-rules:task Ünïcode 1") and not re.fullmatch(tag, "a;b")
    arn = java_to_python(r"arn:[\p{Alnum}\-]+:lambda:.*")
    assert re.fullmatch(arn, "arn:aws-cn:lambda:x") and not re.fullmatch(arn, "arn:a_b:lambda:x")


# --- submit ------------------------------------------------------------------------------------


def test_submit_keeps_the_aws_error(backend: tuple[AwsBackend, Calls]) -> None:
    aws, _ = backend
    aws.submit(JobRequest(JobType.TRAINING, training_body()))
    body = training_body()
    body["HyperParameters"] = "not a map"  # botocore's own client-side check
    with pytest.raises(
        SubmitError, match="SageMaker refused CreateTrainingJob for job train-"
    ) as e:
        aws.submit(JobRequest(JobType.TRAINING, body))
    assert e.value.__cause__ is not None


# --- polling -----------------------------------------------------------------------------------


def submit_many(aws: AwsBackend, n: int, job_type: JobType = JobType.TRAINING) -> list[str]:
    make: Callable[[str], dict[str, Any]] = (
        training_body if job_type is JobType.TRAINING else processing_body
    )
    rule = "train" if job_type is JobType.TRAINING else "prep"
    names = [f"{rule}-1121120000-{i:06x}" for i in range(n)]
    for name in names:
        aws.submit(JobRequest(job_type, make(name)))
    return names


@pytest.mark.parametrize("n", [1, 10, 100])
def test_one_round_costs_one_list_call_whatever_the_number_of_jobs(
    backend: tuple[AwsBackend, Calls], n: int
) -> None:
    aws, counted = backend
    names = submit_many(aws, n)
    jobs = [(name, JobType.TRAINING) for name in names]

    counted.clear()
    first = aws.poll(jobs)
    assert counted.count("ListTrainingJobs") == 1
    # moto completes jobs at once: their details (FailureReason, ModelArtifacts) come in one
    # Search by name for all of them, not one Describe each
    assert counted.count("Search") == 1
    assert counted.count("DescribeTrainingJob") == 0
    assert set(first) == set(names)
    status = first[names[0]]
    assert status.state is JobState.COMPLETED and status.is_done
    assert status.model_artifacts and status.model_artifacts.endswith("/output/model.tar.gz")

    for _ in range(3):  # ended jobs do not change again: nothing is asked
        counted.clear()
        assert aws.poll(jobs) == first
        assert dict(counted.seen) == {}


def test_two_job_types_cost_one_list_call_each(backend: tuple[AwsBackend, Calls]) -> None:
    aws, counted = backend
    jobs = [(n, JobType.TRAINING) for n in submit_many(aws, 10)]
    jobs += [(n, JobType.PROCESSING) for n in submit_many(aws, 10, JobType.PROCESSING)]
    counted.clear()
    statuses = aws.poll(jobs)
    assert len(statuses) == 20 and all(s.is_done for s in statuses.values())
    # ended at once (moto): the training jobs' details in one Search; Search knows no
    # ProcessingJob resource, so each processing job is described
    assert dict(counted.seen) == {
        ("sagemaker", "ListTrainingJobs"): 1,
        ("sagemaker", "ListProcessingJobs"): 1,
        ("sagemaker", "Search"): 1,
        ("sagemaker", "DescribeProcessingJob"): 10,
    }


def test_list_query_narrows_by_prefix_and_time(backend: tuple[AwsBackend, Calls]) -> None:
    aws, _ = backend
    names = submit_many(aws, 3)
    sent: list[dict[str, Any]] = []
    aws.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.ListTrainingJobs", lambda params, **_: sent.append(params)
    )
    jobs = [(n, JobType.TRAINING) for n in names]
    aws.poll(jobs)
    aws.poll(jobs)
    assert sent[0]["NameContains"] == "train-1121120000-00000"
    assert "CreationTimeAfter" in sent[0]
    # no LastModifiedTimeAfter: a change that did not advance LastModifiedTime must not hide
    assert all("LastModifiedTimeAfter" not in query for query in sent)


def test_list_pages_past_empty_pages(backend: tuple[AwsBackend, Calls]) -> None:
    """moto, like SageMaker, filters after paginating: the first page of 100 holds only other
    jobs and comes back empty with a NextToken; ours are on the second."""
    aws, counted = backend
    other = plain_client("sagemaker")
    for i in range(120):
        other.create_training_job(**training_body(f"other-1121110000-{i:06x}"))
    names = submit_many(aws, 3)
    counted.clear()
    statuses = aws.poll([(n, JobType.TRAINING) for n in names])
    assert set(statuses) == set(names)
    assert counted.count("ListTrainingJobs") == 2


def test_reattached_jobs_are_described_once(backend: tuple[AwsBackend, Calls]) -> None:
    """Jobs a killed run submitted: this backend never saw them created."""
    aws, counted = backend
    other = plain_client("sagemaker")
    names = [f"train-1121100000-{i:06x}" for i in range(5)]
    for name in names:
        other.create_training_job(**training_body(name))
    jobs = [(n, JobType.TRAINING) for n in names]
    assert all(s.is_done for s in aws.poll(jobs).values())
    assert dict(counted.seen) == {("sagemaker", "Search"): 1}  # all five in one call
    counted.clear()
    aws.poll(jobs)
    assert dict(counted.seen) == {}  # ended: nothing more to learn


def test_unknown_job_is_reported_failed(backend: tuple[AwsBackend, Calls]) -> None:
    aws, _ = backend
    status = aws.poll([("train-1121000000-ffffff", JobType.TRAINING)])["train-1121000000-ffffff"]
    assert status.state is JobState.FAILED
    assert status.failure_reason == "SageMaker has no training job named train-1121000000-ffffff"


# --- stop --------------------------------------------------------------------------------------


def test_stop_is_quiet_about_ended_or_unknown_jobs(
    backend: tuple[AwsBackend, Calls], caplog: pytest.LogCaptureFixture
) -> None:
    aws, counted = backend
    (name,) = submit_many(aws, 1, JobType.PROCESSING)
    counted.clear()
    aws.stop([(name, JobType.PROCESSING), ("prep-1121000000-ffffff", JobType.PROCESSING)])
    assert counted.ops() == {"StopProcessingJob"}  # one call per job, no waiting on either
    assert counted.count("StopProcessingJob") == 2
    assert "SageMaker does not know it" in caplog.text
    assert aws.poll([(name, JobType.PROCESSING)])[name].is_done


# --- logs --------------------------------------------------------------------------------------


def put_lines(logs: Any, stream: str, lines: list[str], group: str) -> None:
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
    )


def test_logs_read_every_stream_of_the_job(backend: tuple[AwsBackend, Calls]) -> None:
    aws, _ = backend
    name = "train-1121120000-abc123"
    assert list(aws.logs(name, JobType.TRAINING)) == []  # no group yet: not started

    logs = plain_client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    logs.create_log_group(logGroupName=group)
    assert list(aws.logs(name, JobType.TRAINING)) == []  # group, but no stream of this job
    put_lines(logs, f"{name}/algo-2-1700000000", ["b1"], group)
    put_lines(logs, f"{name}/algo-1-1700000000", ["a1", "a2"], group)
    put_lines(logs, f"{name}0/algo-1-1700000000", ["another job"], group)

    events = list(aws.logs(name, JobType.TRAINING))
    assert [(e.stream, e.message) for e in events] == [
        (f"{name}/algo-1-1700000000", "a1"),
        (f"{name}/algo-1-1700000000", "a2"),
        (f"{name}/algo-2-1700000000", "b1"),
    ]


def test_log_reader_returns_only_new_events(backend: tuple[AwsBackend, Calls]) -> None:
    aws, _ = backend
    name = "prep-1121120000-abc123"
    logs = plain_client("logs")
    group = "/aws/sagemaker/ProcessingJobs"
    logs.create_log_group(logGroupName=group)
    stream = f"{name}/algo-1-1700000000"
    put_lines(logs, stream, ["one", "two"], group)

    reader = aws.log_reader(name, JobType.PROCESSING)
    assert [e.message for e in reader.read()] == ["one", "two"]
    assert reader.read() == []
    put_lines(logs, stream, ["three"], group)
    put_lines(logs, f"{name}/algo-2-1700000000", ["other host"], group)
    assert [e.message for e in reader.read()] == ["three"]
    # a stream that appears later is listed within a few reads while the job runs
    later = [e.message for _ in range(STREAMS_EVERY) for e in reader.read()]
    assert later == ["other host"]
    assert reader.read() == []


def test_many_jobs_requests_are_not_mutated(backend: tuple[AwsBackend, Calls]) -> None:
    aws, _ = backend
    body = training_body()
    before = copy.deepcopy(body)
    aws.submit(JobRequest(JobType.TRAINING, body))
    assert body == before


@pytest.mark.parametrize("job_type", ["training", "processing"])
def test_requests_ssm_rules_builds_pass_the_service_model(
    tmp_path: Any, model: Any, job_type: str
) -> None:
    from dataclasses import replace

    from ssm_rules.requests import Placement, build_request
    from ssm_rules.rules import job, state
    from ssm_rules.rules import model as model_output
    from ssm_rules.spec import build_spec
    from tests.jobviews import io, view

    def s3(item: Any, uri: str) -> Any:  # what Snakemake shows under the S3 storage provider
        return replace(item, storage_uri=uri)

    outputs = [s3(io("", "s", state("runs/state.json")), "s3://b/runs/state.json")]
    metrics = {"loss": "loss=(.*?);"} if job_type == "training" else {}
    if job_type == "training":
        outputs.append(
            s3(io("", "m", model_output("runs/model.tar.gz")), "s3://b/runs/model.tar.gz")
        )
    spec = build_spec(
        view(
            tmp_path,
            inputs=(s3(io(".snakemake/storage/s3/b/in/data", "data"), "s3://b/in/data/"),),
            outputs=tuple(outputs),
            params=(
                # processing jobs have no metrics (refused: SageMaker would drop them)
                ("sm", job(metric_definitions=metrics, tags={"team": "ml"})),
                ("epochs", 3),
            ),
            resources={"job_type": job_type, "instance_count": 2},
        ),
        backend="aws",
        default_instance_type="ml.m5.large",
    )
    place = Placement(
        job_name="train-0101000000-abcdef",
        code_uri="s3://b/p/code/x/sourcedir.tar.gz",
        channel_uris={"data": "s3://b/p/tasks/train/input/data/"},
        jobs_uri="s3://b/p/jobs",
        image_uri=IMAGE,
        role_arn=ROLE,
        region="us-east-1",
        kms_key="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        subnets=("subnet-0123456789abcdef0",),
        security_groups=("sg-0123456789abcdef0",),
        identity_tags={"ssm-rules:rule": "train", "ssm-rules:task": "train"},
    )
    assert validate_request(build_request(spec, place), model) == []


# --- the sagemaker profile ---------------------------------------------------------------------


@pytest.mark.slow  # a snakemake run
def test_install_profile_puts_it_where_snakemake_looks(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml
    from snakemake.cli import get_profile_dir

    from ssm_rules.__main__ import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    argv = ["install-profile", "--storage-prefix", "s3://my-bucket/runs/", "--role", "MyRole"]
    assert main(argv) == 0
    found = get_profile_dir("sagemaker")  # Snakemake's own lookup for --profile sagemaker
    assert found is not None
    directory, config = found
    assert directory == tmp_path / "xdg" / "snakemake" / "sagemaker"
    profile = yaml.safe_load(config.read_text())
    assert profile["executor"] == "sagemaker" and profile["sagemaker-backend"] == "aws"
    assert profile["default-storage-provider"] == "s3"
    assert profile["default-storage-prefix"] == "s3://my-bucket/runs"
    assert profile["sagemaker-role"] == "MyRole"
    assert profile["seconds-between-status-checks"] == 30 and profile["retries"] == 0

    assert main(argv) == 1  # never overwrites without --force
    assert "pass --force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


# --- find (re-attach) --------------------------------------------------------------------------


def test_find_matches_name_prefix_and_tags_newest_first(backend: tuple[AwsBackend, Calls]) -> None:
    aws, counted = backend

    def tagged(body: dict[str, Any], identity: str) -> dict[str, Any]:
        return {**body, "Tags": [*body["Tags"], {"Key": "ssm-rules:identity", "Value": identity}]}

    aws.submit(JobRequest(JobType.TRAINING, tagged(training_body("train-1121000000-aaaaaa"), "A")))
    aws.submit(JobRequest(JobType.TRAINING, tagged(training_body("train-1121000001-bbbbbb"), "B")))
    aws.submit(JobRequest(JobType.TRAINING, tagged(training_body("train-1121000002-cccccc"), "A")))
    aws.submit(JobRequest(JobType.TRAINING, tagged(training_body("other-1121000003-dddddd"), "A")))
    counted.clear()
    found = aws.find(JobType.TRAINING, "train-", {"ssm-rules:identity": "A"})
    assert [s.name for s in found] == ["train-1121000002-cccccc", "train-1121000000-aaaaaa"]
    assert all(s.state is JobState.COMPLETED for s in found)
    assert dict(counted.seen) == {("sagemaker", "Search"): 1}

    aws.submit(
        JobRequest(JobType.PROCESSING, tagged(processing_body("prep-1121000000-aaaaaa"), "A"))
    )
    aws.submit(
        JobRequest(JobType.PROCESSING, tagged(processing_body("prep-1121000001-bbbbbb"), "B"))
    )
    found = aws.find(JobType.PROCESSING, "prep-", {"ssm-rules:identity": "A"})
    assert [s.name for s in found] == ["prep-1121000000-aaaaaa"]
    assert aws.find(JobType.PROCESSING, "prep-", {"ssm-rules:identity": "C"}) == []


def test_names_are_batched_into_search_filters_within_sagemakers_limits() -> None:
    from ssm_rules.backends.aws.polling import MAX_FILTER_VALUE, MAX_FILTERS, _name_batches

    names = [f"train-1121120000-{i:06x}-{'x' * 39}" for i in range(1000)]  # 63 characters
    batches = _name_batches(names)
    assert all(len(b) <= MAX_FILTERS for b in batches)
    assert all(len(value) <= MAX_FILTER_VALUE for b in batches for value in b)
    assert [n for b in batches for value in b for n in value.split(",")] == names
    assert len(batches) == 4  # 16 names per Filter Value, 20 filters per call


def test_finding_costs_one_lookup_per_rule_prefix_not_one_per_job(
    backend: tuple[AwsBackend, Calls],
) -> None:
    aws, counted = backend

    def task(body: dict[str, Any], task_id: str) -> dict[str, Any]:
        return {**body, "Tags": [*body["Tags"], {"Key": "ssm-rules:task", "Value": task_id}]}

    for i in range(12):
        aws.submit(
            JobRequest(JobType.TRAINING, task(training_body(f"train-11210-{i:06x}"), f"t{i}"))
        )
        aws.submit(
            JobRequest(JobType.PROCESSING, task(processing_body(f"prep-11210-{i:06x}"), f"t{i}"))
        )
    counted.clear()
    for i in range(12):  # the executor asks once per job it is about to submit
        (found,) = aws.find(JobType.TRAINING, "train-", {"ssm-rules:task": f"t{i}"})
        assert found.name == f"train-11210-{i:06x}"
        (found,) = aws.find(JobType.PROCESSING, "prep-", {"ssm-rules:task": f"t{i}"})
        assert found.name == f"prep-11210-{i:06x}"
    assert aws.find(JobType.TRAINING, "train-", {"ssm-rules:task": "t99"}) == []
    # processing summaries carry no tags: one ListTags per candidate, once
    assert dict(counted.seen) == {
        ("sagemaker", "Search"): 1,
        ("sagemaker", "ListProcessingJobs"): 1,
        ("sagemaker", "ListTags"): 12,
    }
    # kept for a while only: a job of an earlier run that ended meanwhile is seen ended
    aws.finder.clock = lambda: time.monotonic() + aws.finder.ttl + 1
    counted.clear()
    aws.find(JobType.TRAINING, "train-", {"ssm-rules:task": "t0"})
    assert dict(counted.seen) == {("sagemaker", "Search"): 1}


def test_creates_are_rate_limited(moto: PlainMotoServer) -> None:
    """12 jobs at --sagemaker-max-submit-rate 3: never more than 3 Creates in a second, counted
    on a clock that sleeping moves (the test takes no time)."""

    now = [0.0]
    create_times: list[float] = []
    sm = plain_client("sagemaker")
    sm.meta.events.register(
        "before-call.sagemaker.CreateTrainingJob", lambda **_: create_times.append(now[0])
    )

    def sleep(seconds: float) -> None:
        now[0] += seconds

    aws = AwsBackend(sm, plain_client("logs"), submit_limiter=RateLimiter(3, lambda: now[0], sleep))
    for i in range(12):
        aws.submit(JobRequest(JobType.TRAINING, training_body(f"train-1121120000-{i:06x}")))
    assert len(create_times) == 12
    assert max(sum(1 for t in create_times if s <= t < s + 1 - 1e-9) for s in create_times) == 3


def test_log_reads_stay_within_the_rounds_budget_and_lose_nothing(
    backend: tuple[AwsBackend, Calls],
) -> None:
    from ssm_rules.backends.aws.cwlogs import LogCallBudget
    from ssm_rules.backends.base import LogBudgetSpent

    aws, counted = backend
    aws.log_budget = LogCallBudget(per_round=5)
    logs = plain_client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    logs.create_log_group(logGroupName=group)
    names = submit_many(aws, 6)
    for name in names:
        put_lines(logs, f"{name}/algo-1-1700000000", [f"{name} one"], group)
        put_lines(logs, f"{name}/algo-2-1700000000", [f"{name} two"], group)
    readers = {name: aws.log_reader(name, JobType.TRAINING) for name in names}
    read: dict[str, list[str]] = {name: [] for name in names}
    for _ in range(6):  # rounds; each reads what the budget allows, in turn
        aws.log_budget.renew()  # what aws.poll does at the start of a round
        counted.clear()
        for name in sorted(names, key=lambda n: len(read[n])):  # least served first
            try:
                read[name] += [e.message for e in readers[name].read()]
            except LogBudgetSpent:
                pass
        assert sum(n for (service, _), n in counted.seen.items() if service == "logs") <= 5
    # cut part-way or refused, every line arrives, once, in order
    assert read == {n: [f"{n} one", f"{n} two"] for n in names}

    # a job that ended: its log is completed whatever the budget
    aws.log_budget.left = 0
    put_lines(logs, f"{names[0]}/algo-1-1700000000", ["last words"], group)
    with pytest.raises(LogBudgetSpent):
        readers[names[0]].read()
    aws.poll([(names[0], JobType.TRAINING)])  # moto: Completed at once
    aws.log_budget.left = 0  # spent by the other jobs of the round
    assert [e.message for e in readers[names[0]].read()] == ["last words"]
    # later rounds no longer ask about it (its end is being handled in a worker thread, and
    # the poller forgets it): its final read is still not cut by the budget
    put_lines(logs, f"{names[0]}/algo-2-1700000000", ["after the end"], group)
    aws.poll([(names[1], JobType.TRAINING)])
    aws.poll([(names[1], JobType.TRAINING)])
    aws.log_budget.left = 0
    assert [e.message for e in readers[names[0]].read()] == ["after the end"]
