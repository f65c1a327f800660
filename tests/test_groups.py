"""A group is one job (issue 10.1): a Snakemake ``group:`` of rules runs as ONE SageMaker job,
its members in dependency order inside it, each member's outputs promoted where they would be
had it run alone; a failing member fails the group, named; members that cannot share one job
are refused before anything runs (and by ``-n``)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.e2e import LOCAL_ARGS, Workflow, aws_args

# a -> b -> c in group g: a reads a local file (a channel from outside), b reads a's output,
# c reads b's model and a's file (handed over inside the job), with its own hyperparameter
GROUP = """
from ssm_rules import local_input, model

rule all:
    input: "out/c.txt"

rule a:
    input: data=local_input("data/in.txt")
    output: "out/a.txt"
    params: lr=0.5
    group: "g"
    log: "logs/a.log"
    script: "code/a.py"

rule b:
    input: "out/a.txt"
    output: model=model("out/b/model.tar.gz")
    group: "g"
    log: "logs/b.log"
    shell: "echo b-says-hello; if grep -q FAIL {input}; then exit 3; fi; tr a-z A-Z < {input} > {output.model}/m.txt"

rule c:
    input: m=rules.b.output.model, a="out/a.txt"
    output: "out/c.txt"
    params: times=3
    group: "g"
    log: "logs/c.log"
    script: "code/c.py"
"""

# a simple-sagemaker worker (WorkerConfig) as a member: it sees its own channels and params
A_PY = """
import json, os
from worker_toolkit.worker_lib import WorkerConfig
cfg = WorkerConfig(per_instance_state=False)
text = open(os.path.join(cfg.channel_data, "in.txt")).read().strip()
assert text == open(snakemake.input.data).read().strip()
print("a-says-hello", cfg.channels, cfg.hps, sorted(json.loads(cfg.input_data_config)))
open(snakemake.output[0], "w").write(text + "\\n")
# alone, what a rule without model(...) writes here is dropped: not in another member's model
os.makedirs(cfg.model_dir, exist_ok=True)
open(os.path.join(cfg.model_dir, "stray.txt"), "w").write("not b's")
"""

C_PY = """
import sys, tarfile
with tarfile.open(snakemake.input.m) as tar:
    m = tar.extractfile("m.txt").read().decode().strip()
a = open(snakemake.input.a).read().strip()
print("c-says-hello", sys.argv[1:])
open(snakemake.output[0], "w").write(f"{m}|{a}|{snakemake.params.times}\\n")
"""


def _workflow(root: Path, snakefile: str = GROUP) -> Workflow:
    wf = Workflow(root)
    wf.write("Snakefile", snakefile)
    wf.write("code/a.py", A_PY)
    wf.write("code/c.py", C_PY)
    wf.write("data/in.txt", "hello\n")
    return wf


def _model_member(data: bytes) -> str:
    """m.txt of b's model, which holds nothing else."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert [m.name for m in tar.getmembers() if m.isfile()] == ["m.txt"]
        member = tar.extractfile("m.txt")
        assert member is not None
        return member.read().decode()


def _local_jobs(wf: Workflow) -> list[Path]:
    root = wf.path(".ssm_rules/jobs")
    return sorted(root.iterdir()) if root.is_dir() else []


def test_a_group_runs_as_one_local_job_and_promotes_every_member(tmp_path: Path) -> None:
    wf = _workflow(tmp_path / "wf")
    done = wf.run(*LOCAL_ARGS)
    jobs = _local_jobs(wf)
    assert len(jobs) == 1, jobs  # one job for the three rules
    assert jobs[0].name.startswith("g-")
    assert "group g: submitted training job" in done.stderr
    # every member's outputs where they would be ungrouped
    assert wf.path("out/a.txt").read_text() == "hello\n"
    assert _model_member(wf.path("out/b/model.tar.gz").read_bytes()) == "HELLO\n"
    assert wf.path("out/c.txt").read_text() == "HELLO|hello|3\n"
    # each member's log holds its own part; a member sees its own channels only
    a_log, b_log, c_log = (wf.path(f"logs/{r}.log").read_text() for r in "abc")
    assert "a-says-hello ['data'] {'lr': 0.5} ['data']" in a_log and "b-says-hello" not in a_log
    assert "b-says-hello" in b_log and "c-says-hello" not in b_log
    assert "c-says-hello ['--times', '3']" in c_log and "a-says-hello" not in c_log
    # outputs gone, same code, inputs and params: the group's completed job is reused
    # (its identity covers every member), not run again
    for rel in ("out/a.txt", "out/b/model.tar.gz", "out/c.txt"):
        wf.path(rel).unlink()
    again = wf.run(*LOCAL_ARGS)
    assert f"group g: reusing job {jobs[0].name}" in again.stderr
    assert len(_local_jobs(wf)) == 1
    assert wf.path("out/c.txt").read_text() == "HELLO|hello|3\n"


def test_a_processing_group_runs_as_one_local_job(tmp_path: Path) -> None:
    wf = _workflow(tmp_path / "wf")
    done = wf.run(*LOCAL_ARGS, "--default-resources", "job_type='processing'")
    assert "group g: submitted processing job" in done.stderr
    assert len(_local_jobs(wf)) == 1
    assert wf.path("out/a.txt").read_text() == "hello\n"
    assert _model_member(wf.path("out/b/model.tar.gz").read_bytes()) == "HELLO\n"
    assert wf.path("out/c.txt").read_text() == "HELLO|hello|3\n"
    assert "c-says-hello ['--times', '3']" in wf.path("logs/c.log").read_text()


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_a_failing_member_fails_the_group_naming_it_and_promotes_nothing(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    wf = _workflow(tmp_path / "wf")
    wf.write("data/in.txt", "FAIL\n")  # member b exits 3 on it
    if backend == "local":
        failed = wf.run(*LOCAL_ARGS, check=False)
        assert len(_local_jobs(wf)) == 1
        left = [p for p in wf.root.glob("out/**/*") if p.is_file()]
    else:
        aws = request.getfixturevalue("aws")
        bucket = request.getfixturevalue("bucket")
        failed = wf.run(*aws_args(bucket), check=False)
        jobs = aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
        assert [j["TrainingJobStatus"] for j in jobs] == ["Failed"]
        listed = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="wf/out/")
        left = [o["Key"] for o in listed.get("Contents", [])]
    assert failed.returncode != 0
    out = failed.stdout + failed.stderr
    assert "group g: SageMaker training job" in out
    assert "ExitCode 3: rule b (member 2/3 of group g)" in out, out[-3000:]
    # nothing of the group is in place, not even what member a finished inside the job
    assert left == []


DISAGREE = GROUP.replace(
    '    group: "g"\n    log: "logs/c.log"',
    '    group: "g"\n    resources: instance_type="ml.m5.xlarge"\n    log: "logs/c.log"',
)


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_members_on_other_instance_types_are_refused_before_anything_runs(
    tmp_path: Path, dry_run: bool
) -> None:
    assert DISAGREE != GROUP
    wf = _workflow(tmp_path / "wf", DISAGREE)
    refused = wf.run(*LOCAL_ARGS, *(["-n"] if dry_run else []), check=False)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "group g: its rules run as one SageMaker job, so they must agree on instance_type" in out
    assert "rule c: ml.m5.xlarge" in out and "rule a: ml.m5.large" in out, out[-3000:]
    assert "Traceback" not in out
    assert _local_jobs(wf) == []
    assert not wf.path(".ssm_rules/store").exists() or not any(
        p.is_file() for p in wf.path(".ssm_rules/store").rglob("*")
    )


def test_a_group_runs_as_one_job_on_aws(tmp_path: Path, aws, bucket: str) -> None:
    wf = _workflow(tmp_path / "wf")
    wf.run(*aws_args(bucket))
    sm = aws.client("sagemaker")
    names = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
    assert len(names) == 1 and names[0].startswith("g-"), names
    job = sm.describe_training_job(TrainingJobName=names[0])
    channels = sorted(c["ChannelName"] for c in job["InputDataConfig"])
    assert channels == ["ssm_0_data", "ssm_task"]  # in-group inputs are no channels
    assert "ssm_task" not in job["HyperParameters"]
    s3 = aws.client("s3")

    def read(rel: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=f"wf/{rel}")["Body"].read()

    assert read("out/a.txt") == b"hello\n"
    assert _model_member(read("out/b/model.tar.gz")) == "HELLO\n"
    assert read("out/c.txt") == b"HELLO|hello|3\n"
    assert json.loads(json.dumps(job["ResourceConfig"]))["InstanceCount"] == 1
