"""Bad input in real snakemake runs: refused before anything is written or created, every
faulty rule named at once, no traceback; on the aws backend, counted at the moto server."""

from __future__ import annotations

import pytest

from tests.e2e import LOCAL_ARGS, Workflow, aws_args

pytestmark = pytest.mark.slow
HEADER = "from ssm_rules import model, output_data, state, sharded, local_input, job\n\n"

FAULTY = """
rule all:
    input: "a.txt", "b.txt", "c.txt", "d.txt", "e.txt"

localrules: all

rule a:
    input: local("data/a.txt")
    output: "a.txt"
    shell: "cp {input} {output}"

rule b:
    output: "b.txt"
    resources: num_instances=2
    shell: "echo b > {output}"

rule c:
    output: "c.txt"
    resources: instance_type="ml.m5.xlage"
    shell: "echo c > {output}"

rule d:
    output: "d.txt"
    script: "code/broken.py"

rule e:
    output: "e.txt"
    params: sagemaker=job(tags={"aws:team": "ml"}, metric_definitions={"loss": "loss=(.*"})
    shell: "echo e > {output}"
"""


def faulty(tmp_path) -> Workflow:
    wf = Workflow(tmp_path)
    wf.write("Snakefile", HEADER + FAULTY)
    wf.write("data/a.txt", "a")
    wf.write("code/broken.py", "def main(:\n    pass\n")
    return wf


@pytest.mark.parametrize(
    ("extra", "headline"),
    [
        ((), "nothing was submitted: 5 rule(s) cannot run as SageMaker jobs"),
        # Snakemake never creates the executor for -n: the dry-run hook checks the rules
        (("-n",), "this plan cannot run: 5 rule(s) cannot run as SageMaker jobs"),
    ],
)
def test_every_faulty_rule_is_named_before_anything_runs(tmp_path, extra, headline):
    wf = faulty(tmp_path)
    proc = wf.run(*LOCAL_ARGS, *extra, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert headline in text
    for fragment in (
        "rule a: input local('data/a.txt')",
        "local_input('data/a.txt')",
        "rule b: resources num_instances=2",
        "rule c: resources instance_type='ml.m5.xlage'",
        "did you mean 'ml.m5.xlarge'",
        "rule d: script 'code/broken.py' has a syntax error: line 1",
        "rule e: job(tags=...) 'aws:team'",
    ):
        assert fragment in text, (fragment, text[-3000:])
    assert "Traceback" not in text
    assert not (tmp_path / ".ssm_rules").exists()  # nothing staged, no job sandbox
    assert not any(wf.path(f"{r}.txt").exists() for r in "abcde")


def test_a_missing_script_is_our_message_in_a_dry_run_and_a_run(tmp_path):
    wf = Workflow(tmp_path)
    wf.write("Snakefile", HEADER + 'rule t:\n    output: "t.txt"\n    script: "code/nope.py"\n')
    for extra in ("-n", "--forceall"):
        proc = wf.run(*LOCAL_ARGS, extra, check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "rule t: script 'code/nope.py' does not exist" in text
        assert "relative to the Snakefile" in text
        assert "FileNotFoundError" not in text and "Traceback" not in text
    assert not (tmp_path / ".ssm_rules").exists()


def test_the_profiles_placeholder_bucket_is_refused_at_start(tmp_path, aws, bucket, api_calls):
    wf = Workflow(tmp_path)
    wf.write("Snakefile", HEADER + 'rule t:\n    output: "t.txt"\n    shell: "echo > {output}"\n')
    args = aws_args(bucket)
    for prefix, message in (
        ("s3://your-bucket/ssm-rules/artifacts", "placeholder bucket 'your-bucket'"),
        ("s3://no-such-storage-bucket/wf", "bucket no-such-storage-bucket does not exist"),
    ):
        proc = wf.run(*args, "--default-storage-prefix", prefix, check=False, env=aws.env())
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0 and message in text, text[-3000:]
        assert "NoSuchBucket" not in text and "Traceback" not in text
    assert api_calls.count("sagemaker") == 0
    assert api_calls.count("s3", "PutObject") == 0
    # the placeholder needs no call to be seen: snakemake -n says so too, offline
    api_calls.clear()
    proc = wf.run(
        *args, "-n", "--default-storage-prefix", "s3://your-bucket/x", check=False, env=aws.env()
    )
    assert proc.returncode != 0 and "placeholder bucket 'your-bucket'" in proc.stdout + proc.stderr
    assert api_calls.count("sagemaker") == 0 and api_calls.count("sts") == 0


def test_aws_refusals_create_nothing_and_upload_nothing(tmp_path, aws, bucket, api_calls):
    wf = Workflow(tmp_path)
    tags = {f"t{i}": "v" for i in range(48)}
    wf.write(
        "Snakefile",
        HEADER
        + f"""
rule all:
    input: "a.txt", "b.txt"

localrules: all

rule a:
    output: "a.txt"
    params: sagemaker=job(tags={tags!r})
    shell: "echo a > {{output}}"

rule b:
    output: "b.txt"
    params: sagemaker=job(image_uri="pytorch:2.8")
    shell: "echo b > {{output}}"
""",
    )
    proc = wf.run(*aws_args(bucket), check=False, env=aws.env())
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rule a: job(tags=...) has 48 tags" in text and "keep at most 47" in text
    assert "rule b: job(image_uri='pytorch:2.8')" in text
    assert "Traceback" not in text
    counts = api_calls.counts()
    assert not [op for op in counts if op.startswith("sagemaker.Create")], counts
    assert counts["s3.PutObject"] == 0 and counts["s3.CopyObject"] == 0, counts
