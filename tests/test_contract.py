"""The backend contract, end to end: the same scenarios run against both backends, the
local one and the aws one on the moto server whose jobs really run. Never lose work or money:
a killed client's rerun re-attaches, no spot capacity goes on-demand with the task state, a
spot interruption resumes the same job, Ctrl-C stops every job (once) and waits for it,
--sagemaker-detach leaves them running for the next run.

What only one backend shows stays in its own file (test_resilience.py: reuse after a kill,
forced reruns, task-state carry-over and warnings; test_aws_backend.py: API-call costs)."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from ssm_rules.backends.base import JobType
from ssm_rules.backends.local import LocalBackend
from ssm_rules.backends.local.jobdir import JobDir
from tests.e2e import LOCAL_ARGS, Workflow, aws_args, wait_for
from tests.moto_sagemaker import MotoServer
from tests.test_resilience import STATEFUL, TRAIN_PY, gated, rerun_until, slow_jobs

pytestmark = pytest.mark.slow


@dataclass
class Site:
    """Where a test's jobs run, and what SageMaker (or the local backend) says of them."""

    backend: str
    wf: Workflow
    aws: MotoServer | None = None
    bucket: str = ""

    @property
    def args(self) -> tuple[str, ...]:
        return LOCAL_ARGS if self.aws is None else aws_args(self.bucket)

    def run(self, *extra: str, check: bool = True):
        return self.wf.run(*self.args, *extra, check=check)

    def popen(self, *extra: str):
        return self.wf.popen(*self.args, *extra)

    def jobs(self) -> list[dict]:
        """Every training job created, oldest first, as DescribeTrainingJob shows it."""
        if self.aws is None:
            root = self.wf.root / ".ssm_rules" / "jobs"
            # a job's directory exists a moment before its status (written atomically)
            docs = [json.loads(f.read_text()) for f in root.glob("*/status.json")]
        else:
            sm = self.aws.client("sagemaker")
            summaries = sm.list_training_jobs()["TrainingJobSummaries"]
            docs = [
                sm.describe_training_job(TrainingJobName=s["TrainingJobName"]) for s in summaries
            ]
        return sorted(docs, key=lambda d: str(d["CreationTime"]))

    def statuses(self) -> list[str]:
        return [d["TrainingJobStatus"] for d in self.jobs()]

    def training(self, n: int) -> bool:
        """``n`` jobs exist and each one's program runs."""
        docs = self.jobs()
        return len(docs) == n and all(d.get("SecondaryStatus") == "Training" for d in docs)

    def warm_pool(self, name: str) -> dict:
        """DescribeTrainingJob's WarmPoolStatus (local: computed as the backend describes it)."""
        if self.aws is None:
            backend = LocalBackend(self.wf.root / ".ssm_rules" / "jobs")
            return backend.describe(name, JobType.TRAINING)["WarmPoolStatus"]
        return self.aws.client("sagemaker").describe_training_job(TrainingJobName=name)[
            "WarmPoolStatus"
        ]

    def stops_asked(self) -> int:
        """StopTrainingJob calls (local: the jobs marked to stop)."""
        if self.aws is None:
            root = self.wf.root / ".ssm_rules" / "jobs"
            return sum(JobDir(d).stop_requested for d in root.glob("*/"))
        return self.aws.calls.count("sagemaker", "StopTrainingJob")

    def text(self, rel: str) -> str:
        """A file of the workflow, where Snakemake keeps it (aws: the S3 storage prefix)."""
        if self.aws is None:
            return self.wf.path(rel).read_text()
        obj = self.aws.client("s3").get_object(Bucket=self.bucket, Key=f"wf/{rel}")
        return obj["Body"].read().decode()

    def put(self, rel: str, text: str) -> None:
        if self.aws is None:
            self.wf.write(rel, text)
        else:
            self.aws.client("s3").put_object(Bucket=self.bucket, Key=f"wf/{rel}", Body=text)

    def exists(self, rel: str) -> bool:
        try:
            self.text(rel)
        except Exception:  # noqa: BLE001 — FileNotFoundError, or S3's NoSuchKey
            return False
        return True


@pytest.fixture(params=["local", "aws"])
def site(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    # the runners (local: the client's; aws: the moto hook's, in this process) read these
    monkeypatch.setenv("SSM_STOP_GRACE_SECONDS", "3")
    wf = Workflow(tmp_path / "wf")
    if request.param == "local":
        return Site("local", wf)
    return Site("aws", wf, request.getfixturevalue("aws"), request.getfixturevalue("bucket"))


def stateful(site: Site, steps: int, train_py: str = TRAIN_PY) -> None:
    site.wf.write("Snakefile", STATEFUL.replace("STEPS", str(steps)).replace("SPOT", "1"))
    site.wf.write("train.py", train_py)


def faults(site: Site, monkeypatch: pytest.MonkeyPatch, table: dict) -> None:
    monkeypatch.setenv("SSM_LOCAL_FAULTS", str(site.wf.write("faults.json", json.dumps(table))))


def test_a_killed_clients_rerun_re_attaches_and_creates_no_second_job(site, tmp_path):
    gate = tmp_path / "gate"  # the job ends once it exists: still running for the rerun
    stateful(site, steps=2, train_py=gated(TRAIN_PY, gate))
    client = site.popen()
    wait_for(lambda: site.training(1))
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    site.run("--unlock")  # Snakemake's own lock survives a SIGKILL
    # no --rerun-incomplete needed: the output never existed
    out = rerun_until(site.popen(), "re-attaching to job", gate.touch)
    assert "re-attaching to job" in out
    assert len(site.jobs()) == 1  # zero extra CreateTrainingJob
    assert site.text("out.txt") == "steps=2\n"


def test_a_re_attached_jobs_warm_pool_is_ended_when_nothing_of_the_rerun_follows(site, tmp_path):
    """The killed client planned a → b, so a was created keeping its instances warm for b; the
    rerun asks for a alone and re-attaches to it. Its pool would idle, billed, for the
    keep-alive: the rerun ends it, though it did not create the job."""
    gate = tmp_path / "gate"
    site.wf.write(
        "Snakefile",
        'rule a:\n    output: "a.txt"\n    resources: spot=0\n'
        f'    shell: "while [ ! -e {gate} ]; do sleep 0.1; done; echo a > {{output}}"\n'
        'rule b:\n    input: "a.txt"\n    output: "b.txt"\n    resources: spot=0\n'
        '    shell: "cat {input} > {output}"\n',
    )
    client = site.popen("b.txt")
    wait_for(lambda: site.training(1))
    (a,) = site.jobs()
    assert a["ResourceConfig"]["KeepAlivePeriodInSeconds"] > 0  # kept for b
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    site.run("--unlock")
    out = rerun_until(site.popen("a.txt"), "re-attaching to job", gate.touch)
    name = a["TrainingJobName"]
    assert f"ended the warm pool of job {name}: no matching job follows" in out
    assert site.warm_pool(name)["Status"] == "Terminated"
    assert site.text("a.txt") == "a\n"


def test_no_spot_capacity_retries_spot_then_goes_on_demand_with_the_state(site, monkeypatch):
    stateful(site, steps=2)
    site.put("runs/state/algo-1/progress.json", json.dumps({"step": 1}))  # earlier progress
    faults(site, monkeypatch, {"train": {"spot_capacity": False}})
    out = site.run()
    # spot_retries=1: two spot tries, then on-demand
    assert [d["EnableManagedSpotTraining"] for d in site.jobs()] == [True, True, False]
    assert "retrying on-demand" in out.stderr
    assert "starting at step 1" in site.text("train.log")  # the state carried over
    assert site.text("out.txt") == "steps=2\n"


def test_a_spot_interruption_resumes_the_same_job_from_its_state(site, monkeypatch):
    # 16 steps of 0.3 s: the interruption at 3 s comes after the first step, however slow
    # the program's start on a loaded machine, and before the last
    stateful(site, steps=16)
    faults(site, monkeypatch, {"train": {"spot_interruptions": 1, "interrupt_after_seconds": 3}})
    site.run()
    (job,) = site.jobs()  # managed spot restarts the same job
    transitions = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert "Interrupted" in transitions and transitions[-1] == "Completed"
    log = site.text("train.log")
    assert "saved at step" in log  # the program got SIGTERM and time to save
    starts = [int(ln.split()[-1]) for ln in log.splitlines() if ln.startswith("starting at step")]
    assert starts[0] == 0 and starts[-1] > 0  # the restart began from the saved state
    assert site.text("out.txt") == "steps=16\n"


def test_ctrl_c_stops_each_job_once_and_waits_for_it(site):
    site.wf.write("Snakefile", slow_jobs(2))
    client = site.popen()
    wait_for(lambda: site.training(2))
    client.send_signal(signal.SIGINT)
    output = client.communicate(timeout=120)[0]
    assert "stopping 2 SageMaker job(s)" in output
    assert site.stops_asked() == 2  # one StopTrainingJob per job in flight
    # the client exits only once each job is Stopping or Stopped (StopTrainingJob accepted)
    assert set(site.statuses()) <= {"Stopping", "Stopped"}
    wait_for(lambda: site.statuses() == ["Stopped"] * 2)
    assert not site.exists("o0.txt") and not site.exists("o1.txt")


def test_detach_leaves_the_job_running_and_the_next_run_picks_it_up(site, tmp_path):
    gate = tmp_path / "gate"  # the job ends once it exists: still running when the client left
    site.wf.write(
        "Snakefile",
        'rule slow:\n    output: "o.txt"\n    resources: spot=0\n'
        f'    shell: "while [ ! -e {gate} ]; do sleep 0.1; done; echo ok > {{output}}"\n',
    )
    client = site.popen("--sagemaker-detach")
    wait_for(lambda: site.training(1))
    client.send_signal(signal.SIGINT)
    output = client.communicate(timeout=60)[0]
    assert "leaving 1 SageMaker job(s) running" in output and "same snakemake command" in output
    assert site.statuses() == ["InProgress"] and site.stops_asked() == 0
    site.run("--unlock")
    out = rerun_until(site.popen(), "re-attaching to job", gate.touch)  # and promotes
    assert len(site.jobs()) == 1 and site.text("o.txt") == "ok\n", out
