"""``snakemake -n``: the real run's checks, the SageMaker plan with its cost, and the budget."""

from __future__ import annotations

import datetime
import re

import pytest

from ssm_rules.pricing import PriceTable, write_cache
from tests.e2e import LOCAL_ARGS, Workflow, example_workflow
from tests.test_sagemaker_profile import sagemaker_args

pytestmark = pytest.mark.slow

PRICES = {
    "Training:ml.m5.large": 0.115,
    "Training:ml.m5.xlarge": 0.23,
    "Processing:ml.m5.large": 0.115,
}
DRY = ("-n", "--logger", "sagemaker")


@pytest.fixture
def price_cache(cache_home):
    """A price list fetched today, in this test's cache directory."""
    write_cache(PriceTable("us-east-1", datetime.date.today(), dict(PRICES)))


def plan_rows(output: str) -> dict[str, list[str]]:
    """rule → the cells of its plan row."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SageMaker plan ("))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("  "):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return rows


def test_dry_run_prints_the_plan_of_the_example(tmp_path, price_cache):
    wf = example_workflow(tmp_path)
    out = wf.run("-n", "--profile", "profiles/local").stdout
    rows = plan_rows(out)
    assert set(rows) == {"prepare", "train", "evaluate", "summarize"}
    train = rows["train"]
    assert train[1:7] == ["-", "training", "2 x ml.m5.xlarge", "yes", "1h00m/2h00m", "30 GB"]
    assert "pytorch-training" in train[7]
    # 2 instances x 1 h (max_run_mins=60) x $0.23
    assert train[8] == "$0.46" and train[9] == "-"  # no history yet
    assert train[10].startswith("Missing output files")
    assert rows["prepare"][2:4] == ["processing", "1 x ml.m5.large"]
    assert rows["prepare"][8] == "$2.76"  # SageMaker's default MaxRuntime: 24 h x $0.115
    # on-demand, followed by a matching job: its warm pool may idle, billed, for 5 min more
    assert rows["evaluate"][4] == "no, keep-alive 5m00s" and rows["evaluate"][8] == "$2.77"
    assert (
        "would cost $8.76 (74.17 instance-hours)" in out
        and "2 local job(s) run on this machine" in out
    )
    assert f"on-demand prices of us-east-1, {datetime.date.today().isoformat()}" in out
    assert not wf.path(".ssm_rules").exists()  # a dry run writes nothing of ours


def test_after_a_partial_run_the_plan_counts_what_is_complete(tmp_path, price_cache):
    wf = example_workflow(tmp_path)
    wf.run("--profile", "profiles/local", "runs/prepare/stats.json")
    out = wf.run("-n", "--profile", "profiles/local").stdout
    assert set(plan_rows(out)) == {"train", "evaluate", "summarize"}
    assert "3 job(s) to run" in out and "1 job(s) complete, skipped" in out
    assert plan_rows(out)["train"][9] == "-"  # no earlier job: no expected cost

    forced = plan_rows(wf.run("-n", "-F", "--profile", "profiles/local").stdout)
    # the earlier prepare job's billable seconds (the median of one) x $0.115/h
    assert re.fullmatch(r"(<\$0\.01|\$\d+\.\d\d) \(\d+s\)", forced["prepare"][9])
    assert forced["train"][9] == "-"


def test_without_prices_the_plan_counts_instance_hours_and_says_so_once(tmp_path, cache_home):
    out = example_workflow(tmp_path).run("-n", "--profile", "profiles/local").stdout
    assert out.count("no cached prices for us-east-1") == 1
    assert plan_rows(out)["train"][8] == "2.00 inst-h"
    assert "would cost 74.17 instance-hours" in out  # with 2 keep-alives of 5 min


BAD = """
rule all:
    input: "b.txt"
rule first:
    output: "a.txt"
    shell: "echo a > {output}"
rule second:
    input: "a.txt"
    output: "b.txt"
    resources: job_type="processing", spot=1
    shell: "cp {input} {output}"
"""


def test_dry_run_refuses_bad_input_with_the_message_of_the_real_run(tmp_path):
    wf = Workflow(tmp_path)
    wf.write("Snakefile", BAD)
    dry = wf.run(*DRY, *LOCAL_ARGS, check=False)
    real = wf.run(*LOCAL_ARGS, check=False)
    assert dry.returncode != 0 and real.returncode != 0
    message = re.search(r"nothing was submitted: (.*\n.*)", real.stdout + real.stderr)
    assert message is not None and "rule second" in message.group(1)
    # the same rules and messages; a dry run says "this plan cannot run" for "nothing was submitted"
    assert f"this plan cannot run: {message.group(1)}" in dry.stdout + dry.stderr
    assert "Traceback" not in dry.stdout + dry.stderr
    assert "SageMaker plan" not in dry.stdout  # refused before a plan is shown as if it would run
    assert not wf.path("a.txt").exists()


def test_a_plan_over_budget_is_refused_in_the_dry_run_and_in_the_run(tmp_path, price_cache):
    wf = example_workflow(tmp_path)
    budget = ("--sagemaker-max-cost", "5")
    dry = wf.run("-n", "--profile", "profiles/local", *budget, check=False)
    real = wf.run("--profile", "profiles/local", *budget, check=False)
    for proc in (dry, real):
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "the plan's worst case is $8.76, over --sagemaker-max-cost 5" in text
        assert "costliest rules: evaluate $2.77, summarize $2.77, prepare $2.76" in text
    assert not wf.path(".ssm_rules/jobs").exists()  # no job started
    ok = wf.run("-n", "--profile", "profiles/local", "--sagemaker-max-cost", "9")
    assert "would cost $8.76" in ok.stdout


def test_a_budget_that_cannot_be_priced_is_refused(tmp_path, cache_home):
    wf = example_workflow(tmp_path)
    proc = wf.run("-n", "--profile", "profiles/local", "--sagemaker-max-cost", "100", check=False)
    assert proc.returncode != 0
    assert (
        "--sagemaker-max-cost 100 cannot be checked: no on-demand price"
        in proc.stdout + proc.stderr
    )


def test_dry_run_on_the_sagemaker_profile_prices_from_the_price_list(
    tmp_path, aws, bucket, api_calls, cache_home
):
    wf = example_workflow(tmp_path)
    api_calls.clear()  # the bucket fixture's CreateBucket
    out = wf.run("-n", *sagemaker_args(bucket), env=aws.env()).stdout
    rows = plan_rows(out)
    assert rows["train"][8] == "$0.46" and rows["prepare"][8] == "$2.76"
    assert "worst case $8.76" in out
    assert api_calls.count("pricing", "GetProducts") == 2  # Training, Processing: one page each
    # no --sagemaker-role: the plan shows the policy the run would give the role it manages
    assert "(managed by ssm_rules) gets this policy:" in out
    assert f"arn:aws:s3:::{bucket}/artifacts/runs/train/state/*" in out
    creates = [c for c in api_calls.calls if c.operation.startswith("Create")]
    assert creates == []  # no job, and no bucket or object created by a dry run
    api_calls.clear()
    wf.run("-n", *sagemaker_args(bucket), env=aws.env())
    assert api_calls.count("pricing") == 0  # cached for the week

    staging = ("--sagemaker-bucket", "not-there-yet")
    out = wf.run("-n", *sagemaker_args(bucket), *staging, env=aws.env()).stdout
    assert "bucket not-there-yet does not exist yet; the run creates it" in out
    assert api_calls.count("s3", "CreateBucket") == 0

    # the real run with a budget under the worst case: refused before any job or upload
    api_calls.clear()
    budget = ("--sagemaker-max-cost", "5")
    real = wf.run(*sagemaker_args(bucket), *budget, env=aws.env(), check=False)
    assert real.returncode != 0
    assert (
        "the plan's worst case is $8.76, over --sagemaker-max-cost 5" in real.stdout + real.stderr
    )
    assert api_calls.count("sagemaker") == 0
    assert api_calls.count("s3", "PutObject") == 0
