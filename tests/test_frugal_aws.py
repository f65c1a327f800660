"""A frugal control plane, end to end on the moto server whose jobs really run: N jobs cost N
Creates, one re-attach lookup per rule, no Describe per job, and the first status round
comes within the poll interval, not after Snakemake's default one."""

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
    # the profile's 30 s between rounds, ours 1 s: the first round must not wait 30 s
    args += ["--seconds-between-status-checks", "30", "--sagemaker-poll-interval", "1"]
    run = wf.run(*args, env=aws.env())
    assert api_calls.count("sagemaker", "CreateTrainingJob") == n
    assert api_calls.count("sagemaker", "DescribeTrainingJob") == 0
    ours = our_calls(run.stdout + run.stderr)
    assert ours["sagemaker.CreateTrainingJob"] == n
    # one re-attach lookup for the rule, and one Search per round at most for the details of
    # the jobs that ended in it, never one per job
    assert ours["sagemaker.Search"] <= 1 + ours["sagemaker.ListTrainingJobs"]
    assert "sagemaker.DescribeTrainingJob" not in ours
    calls = api_calls.calls
    first_create = min(c.at for c in calls if c.operation == "CreateTrainingJob")
    first_round = min(c.at for c in calls if c.operation == "ListTrainingJobs")
    # within the 1 s interval (and the other two Creates, 0.5 s apart), not 30 s later
    assert first_round - first_create < 6
