"""A frugal control plane, end to end on the moto server whose jobs really run: N jobs cost N
Creates, one re-attach lookup per rule, no Describe per job, and the status rounds
come at the poll interval, not at Snakemake's."""

from __future__ import annotations

import re

import pytest

from tests.e2e import Workflow, aws_args

pytestmark = pytest.mark.slow

SWEEP = """
rule all:
    input: expand("out/{i}.txt", i=range(N))

rule work:
    output: "out/{i}.txt"
    resources: spot=0
    shell: "echo {wildcards.i} > {output}"
"""


def our_calls(output: str) -> dict[str, int]:
    """The executor's own count: 'ssm_rules made 14 calls: sagemaker.X 3, ... to AWS'."""
    line = re.search(r"ssm_rules made \d+ calls: (.*) to AWS", output)
    assert line, output[-3000:]
    return {op: int(n) for op, n in (item.rsplit(" ", 1) for item in line.group(1).split(", "))}


def test_n_jobs_cost_n_creates_one_lookup_and_no_describe(tmp_path, aws, bucket, api_calls):
    n = 3
    wf = Workflow(tmp_path)
    wf.write("Snakefile", SWEEP.replace("N", str(n)))
    args = [*aws_args(bucket), "--jobs", str(n)]
    # Snakemake's interval an hour, ours 1 s: a run that waited Snakemake's would run into the
    # run's 300 s deadline
    args += ["--seconds-between-status-checks", "3600", "--sagemaker-poll-interval", "1"]
    run = wf.run(*args, env=aws.env())
    assert api_calls.count("sagemaker", "CreateTrainingJob") == n
    assert api_calls.count("sagemaker", "DescribeTrainingJob") == 0
    ours = our_calls(run.stdout + run.stderr)
    assert ours["sagemaker.CreateTrainingJob"] == n
    # one re-attach lookup for the rule, and one Search per round at most for the details of
    # the jobs that ended in it, never one per job
    assert ours["sagemaker.Search"] <= 1 + ours["sagemaker.ListTrainingJobs"]
    assert "sagemaker.DescribeTrainingJob" not in ours


@pytest.mark.parametrize("n", [3, 12])
def test_a_status_round_costs_the_same_calls_for_3_or_12_jobs_in_flight(
    moto_server, monkeypatch, n
):
    """Rounds of jobs in flight (moto's jobs set InProgress, then some of them Completed):
    one List per round whatever the number of jobs, and one Search for the details of all
    the jobs that ended in the round."""
    from moto.sagemaker.models import sagemaker_backends

    from ssm_rules.backends.aws.service import AwsBackend
    from ssm_rules.backends.base import JobRequest, JobType
    from tests import moto_search
    from tests.moto_server import ACCOUNT, REGION
    from tests.test_aws_backend import Calls, training_body

    moto_search.install(monkeypatch.setattr, lambda backend: None)  # Search as AWS has it
    moto_server.reset()
    counted = Calls()
    sm, logs = (counted.attach(moto_server.client(s)) for s in ("sagemaker", "logs"))
    aws = AwsBackend(sm, logs)
    names = [f"work-1202000000-{i:06x}" for i in range(n)]
    for name in names:
        aws.submit(JobRequest(JobType.TRAINING, training_body(name)))
    fakes = sagemaker_backends[ACCOUNT][REGION].training_jobs

    def set_status(some: list[str], status: str) -> None:
        for name in some:
            fakes[name].training_job_status = fakes[name].secondary_status = status

    jobs = [(name, JobType.TRAINING) for name in names]
    set_status(names, "InProgress")
    aws.poll(jobs)  # the first round: moto's summaries have no SecondaryStatus, so details
    rounds = []
    for change in (lambda: None, lambda: set_status(names[:2], "Completed")):
        change()
        counted.clear()
        aws.poll(jobs)
        rounds.append(dict(counted.seen))
    assert rounds == [
        {("sagemaker", "ListTrainingJobs"): 1},
        {("sagemaker", "ListTrainingJobs"): 1, ("sagemaker", "Search"): 1},
    ]


def test_a_refused_search_falls_back_to_describe_once_said(moto_server, monkeypatch, caplog):
    """A policy without sagemaker:Search, or a filter the service refuses: the round still
    ends with every job's details, by Describe, and the next rounds do not ask again."""
    from moto.sagemaker import models
    from moto.sagemaker.exceptions import AWSValidationException

    from ssm_rules.backends.aws.service import AwsBackend
    from ssm_rules.backends.base import JobRequest, JobType
    from tests.test_aws_backend import Calls, training_body

    def refuse(self, *args, **kwargs):
        raise AWSValidationException("Search is not allowed here")

    monkeypatch.setattr(models.SageMakerModelBackend, "search", refuse)
    moto_server.reset()
    counted = Calls()
    aws = AwsBackend(*(counted.attach(moto_server.client(s)) for s in ("sagemaker", "logs")))
    names = [f"work-1202000000-{i:06x}" for i in range(3)]
    for name in names:
        aws.submit(JobRequest(JobType.TRAINING, training_body(name)))
    counted.clear()
    statuses = aws.poll([(n, JobType.TRAINING) for n in names])  # moto: Completed at once
    assert all(statuses[n].is_done and statuses[n].model_artifacts for n in names)
    assert counted.count("Search") == 1 and counted.count("DescribeTrainingJob") == 3
    assert caplog.text.count("SageMaker refused Search") == 1
