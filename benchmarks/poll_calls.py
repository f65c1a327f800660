"""API calls one status round costs with 1, 10 and 100 training jobs in flight.

Run from the repository root (starts its own moto server on 127.0.0.1; no AWS needed)::

    .venv/bin/python benchmarks/poll_calls.py

Calls are counted with a botocore ``before-call`` hook on the real SageMaker client that
:class:`ssm_rules.backends.aws.service.AwsBackend` uses, so a count is what AWS would receive.

moto completes every job at creation; to measure jobs *in flight*, this script (moto runs in
this process) sets its fake jobs' status itself between rounds, and adds SecondaryStatus to
moto's ListTrainingJobs summaries, as SageMaker's carry it (botocore's TrainingJobSummary has
SecondaryStatus; moto 5.2 leaves it out), and makes moto's Search follow AWS's documentation
(tests/moto_search.py). Rounds:

- ``first``: every job just submitted, InProgress/Starting
- ``steady``: nothing changed since the previous round
- ``10% progress``: a tenth of the jobs moved to SecondaryStatus Training
- ``all finished``: every job Completed (their details, FailureReason/ModelArtifacts, come in
  one Search by name for all of them)
- ``after``: nothing changed

``Details`` counts DescribeTrainingJob and Search calls; ``describe-each`` is what polling
with one DescribeTrainingJob per job would cost per round.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = (1, 10, 100)
ACCOUNT, REGION = "123456789012", "us-east-1"


def start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    return server, endpoint


def summaries_with_secondary_status() -> None:
    """moto's summaries leave out SecondaryStatus; SageMaker's carry it."""
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.list_training_jobs

    def list_training_jobs(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = original(self, *args, **kwargs)
        for summary in result["TrainingJobSummaries"]:
            summary["SecondaryStatus"] = self.training_jobs[
                summary["TrainingJobName"]
            ].secondary_status
        return result

    SageMakerModelBackend.list_training_jobs = list_training_jobs  # type: ignore[method-assign]


def set_jobs(names: list[str], status: str, secondary: str) -> None:
    from moto.core.utils import utcnow
    from moto.sagemaker.models import sagemaker_backends

    jobs = sagemaker_backends[ACCOUNT][REGION].training_jobs
    now = utcnow()
    for name in names:
        job = jobs[name]
        job.training_job_status, job.secondary_status, job.last_modified_time = (
            status,
            secondary,
            now,
        )


def body(name: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "image:latest", "TrainingInputMode": "File"},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/bench",
        "OutputDataConfig": {"S3OutputPath": "s3://bench/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def measure(n: int, endpoint: str) -> list[tuple[str, int, int]]:
    import boto3

    from ssm_rules.backends.aws.service import AwsBackend
    from ssm_rules.backends.base import JobRequest, JobType

    with urlopen(Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30):
        pass
    calls: Counter[str] = Counter()
    sm = boto3.client("sagemaker")
    sm.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
    aws = AwsBackend(sm, boto3.client("logs"))
    names = [f"train-1121120000-{i:06x}" for i in range(n)]
    for name in names:
        aws.submit(JobRequest(JobType.TRAINING, body(name)))
    jobs = [(name, JobType.TRAINING) for name in names]

    rows: list[tuple[str, int, int]] = []

    def round_(label: str, change: Callable[[], None] = lambda: None) -> None:
        change()
        calls.clear()
        aws.poll(jobs)
        details = calls["DescribeTrainingJob"] + calls["Search"]
        rows.append((label, calls["ListTrainingJobs"], details))

    tenth = names[: max(1, n // 10)]
    round_("first", lambda: set_jobs(names, "InProgress", "Starting"))
    round_("steady")
    round_("10% progress", lambda: set_jobs(tenth, "InProgress", "Training"))
    round_("all finished", lambda: set_jobs(names, "Completed", "Completed"))
    round_("after")
    return rows


def main() -> None:
    server, endpoint = start_moto()
    try:
        summaries_with_secondary_status()
        from tests import moto_search

        # SageMaker's Search as AWS documents it (moto's knows no In filter)
        moto_search.install(setattr, lambda backend: None)
        header = ("jobs", "round", "List", "Details", "total", "describe-each")
        print("{:>5}  {:<13} {:>5} {:>9} {:>6} {:>14}".format(*header))
        for n in SIZES:
            for label, lists, describes in measure(n, endpoint):
                print(
                    f"{n:>5}  {label:<13} {lists:>5} {describes:>9} {lists + describes:>6} {n:>14}"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
