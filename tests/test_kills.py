"""A client SIGKILLed at every stage of a job, on the aws backend against the moto server whose
jobs really run: the rerun gives exactly one CreateTrainingJob in total, and nothing
half-promoted is ever accepted.

The kill is deterministic: the server holds one request of the stage (``FaultTable.hold``)
until the client, blocked on it, has been killed. Nothing in ssm_rules knows about it.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e import Workflow, aws_args
from tests.moto_faults import Hold
from tests.moto_sagemaker import MotoServer
from tests.test_resilience import STATEFUL, TRAIN_PY

pytestmark = pytest.mark.slow

B = "/ssm-test-bucket"
# stage → the request the client is blocked on when it is killed: (service, operation, path,
# armed only once this was seen, moto acts before the hold)
STAGES: dict[str, tuple[str, str, str | None, tuple[str, str, str] | None, bool]] = {
    "before staging": ("sts", "GetCallerIdentity", None, None, False),
    "during staging": ("s3", "PutObject", f"{B}/ssm-rules/code/", None, False),
    # the job exists, the client never heard: Snakemake recorded no job id
    "during Create": ("sagemaker", "CreateTrainingJob", None, None, True),
    "after Create": ("sagemaker", "ListTrainingJobs", None, None, False),
    # out.txt is in place, the state manifest is not: half promoted
    "during promotion": ("s3", "PutObject", f"{B}/wf/runs/state.json", None, False),
    # every output in place; Snakemake checks them before it records success
    "after promotion": (
        "s3",
        "HeadObject",
        f"{B}/wf/out.txt",
        ("s3", "PutObject", f"{B}/wf/runs/state.json"),
        False,
    ),
}


def workflow(tmp_path) -> Workflow:
    wf = Workflow(tmp_path)
    wf.write("Snakefile", STATEFUL.replace("STEPS", "1").replace("SPOT", "1"))
    wf.write("train.py", TRAIN_PY)
    return wf


def kill_at(wf: Workflow, env: dict[str, str], bucket: str, hold: Hold) -> int:
    """Start the client, SIGKILL it once it is blocked on the held request; its pid."""
    client = wf.popen(*aws_args(bucket), env=env)
    try:
        hold.wait_reached(timeout=120)
    finally:
        os.kill(client.pid, signal.SIGKILL)
        client.wait()
        hold.released.set()
    return client.pid


def s3_text(aws: MotoServer, bucket: str, key: str) -> str:
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_kill_at_any_stage_pays_for_one_job(stage, tmp_path, aws, bucket, api_calls):
    wf = workflow(tmp_path / "wf")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**aws.env(), "TMPDIR": str(tmpdir)}
    service, operation, path, once_seen, after = STAGES[stage]
    pid = kill_at(wf, env, bucket, aws.faults.hold(service, operation, path, once_seen, after))
    # the killed client's scratch files are in the run's directory, none in TMPDIR
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith(("ssm-", "tmp"))]
    if stage == "during promotion":
        assert list(wf.path(f".ssm_rules/tmp/{pid}").glob("ssm-promote-*"))
    if stage == "after Create":  # Snakemake's lock outlives a SIGKILL, and it says how
        locked = wf.run(*aws_args(bucket), check=False, env=env)
        assert locked.returncode != 0 and "--unlock" in locked.stderr
    wf.run(*aws_args(bucket), "--unlock", env=env)  # the README's first step
    plain = wf.run(*aws_args(bucket), check=False, env=env)
    if stage in ("during promotion", "after promotion"):
        # outputs from a killed run are never taken as done: Snakemake refuses them
        assert plain.returncode != 0 and "incomplete" in plain.stderr.lower()
        assert api_calls.count("sagemaker", "CreateTrainingJob") == 1
        out = wf.run(*aws_args(bucket), "--rerun-incomplete", env=env)
        # Snakemake still says "reason: Forced execution" (--rerun-incomplete forces the
        # incomplete files); the user did not force it: the completed job is reused
        assert "reusing job" in out.stderr
    else:
        assert plain.returncode == 0, plain.stderr[-3000:]
    if stage in ("during Create", "after Create"):  # found by its identity tag, not paid again
        assert "re-attaching to job" in plain.stderr or "reusing job" in plain.stderr
    assert api_calls.count("sagemaker", "CreateTrainingJob") == 1
    assert s3_text(aws, bucket, "wf/out.txt") == "steps=1\n"
    assert '"objects"' in s3_text(aws, bucket, "wf/runs/state.json")
    if stage in ("during promotion", "after promotion"):  # and Snakemake recorded it done
        assert "rule train" not in wf.run(*aws_args(bucket), "-n", env=env).stdout
    assert not wf.path(f".ssm_rules/tmp/{pid}").exists()  # cleaned by the next run
