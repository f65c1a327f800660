"""Never lose work or money (local backend): reuse after a kill, forced reruns, the task
state kept, resumed, wiped or warned about, orphans named. Each asserts how many SageMaker
jobs were created (job records in the local backend) and what the outputs and task state are
afterwards. The scenarios both backends share (re-attach, spot capacity and interruptions,
Ctrl-C, detach) are in test_contract.py, run against each backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ssm_rules.backends.base import JobType
from ssm_rules.backends.local import LocalBackend
from tests.e2e import LOCAL_ARGS, Workflow, wait_for

pytestmark = pytest.mark.slow
ARGS = LOCAL_ARGS

STATEFUL = """
from ssm_rules import state, job

rule train:
    output: out="out.txt", st=state("runs/state.json")
    params: steps=STEPS
    resources: spot=SPOT, spot_retries=1
    log: "train.log"
    script: "train.py"
"""

# A worker that makes one step per ~0.3 s, keeps its progress in the task state, and saves on
# SIGTERM (what a spot interruption or a stop gives it time to do).
TRAIN_PY = """
import json, os, pathlib, signal, sys, time
from worker_toolkit import worker_lib
cfg = worker_lib.WorkerConfig(per_instance_state=True)
progress = pathlib.Path(cfg.instance_state) / "progress.json"
done = json.loads(progress.read_text())["step"] if progress.exists() else 0
print(f"starting at step {done}", flush=True)
def save(*_):
    progress.write_text(json.dumps({"step": done}))
    print(f"saved at step {done}", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, save)
while done < int(cfg.hps["steps"]):
    time.sleep(0.3)
    done += 1
    progress.write_text(json.dumps({"step": done}))
pathlib.Path(os.environ["SSM_OUTPUT_OUT"]).write_text(f"steps={done}\\n")
"""


def slow_jobs(n: int) -> str:
    """A Snakefile of n on-demand jobs that each run a minute (to be interrupted)."""
    return f"""
rule all:
    input: expand("o{{i}}.txt", i=range({n}))
rule slow:
    output: "o{{i}}.txt"
    resources: spot=0
    shell: "sleep 60; touch {{output}}"
"""


def workflow(tmp_path: Path, steps: int = 3, spot: int = 1) -> Workflow:
    wf = Workflow(tmp_path)
    wf.write("Snakefile", STATEFUL.replace("STEPS", str(steps)).replace("SPOT", str(spot)))
    wf.write("train.py", TRAIN_PY)
    return wf


def jobs(wf: Workflow) -> list[dict]:
    return _records(wf, "request.json")


def job_status(wf: Workflow) -> list[dict]:
    return _records(wf, "status.json")


def _records(wf: Workflow, name: str) -> list[dict]:
    """Each job's record, of the jobs created so far: a job being created (its directory
    made, its files not yet written, atomically) is not one yet."""
    root = wf.root / ".ssm_rules" / "jobs"
    if not root.exists():
        return []
    files = [d / name for d in sorted(root.iterdir())]
    return [json.loads(f.read_text()) for f in files if f.exists()]


def start_and_kill_client(wf: Workflow, *extra: str, env: dict[str, str] | None = None) -> None:
    client = wf.popen(*ARGS, *extra, env=env)
    wait_for(
        lambda: (
            any(s.get("SecondaryStatus") == "Training" for s in job_status(wf))
            if jobs(wf)
            else False
        )
    )
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    wf.run(*ARGS, "--unlock")  # Snakemake's own lock survives a SIGKILL


def gated(
    train_py: str, gate: Path, before: str = 'pathlib.Path(os.environ["SSM_OUTPUT_OUT"])'
) -> str:
    """The worker, going on past the line starting with ``before`` (by default: finishing)
    only once ``gate`` exists (the job's processes see this machine's files): still running
    when a second client starts, however loaded the machine."""
    wait = f"while not pathlib.Path({str(gate)!r}).exists():\n    time.sleep(0.1)\n"
    assert train_py.count(f"\n{before}") == 1, before
    return train_py.replace(f"\n{before}", f"\n{wait}{before}")


def rerun_until(proc: subprocess.Popen[str], text: str, then: Callable[[], None]) -> str:
    """Read the client's output until ``text``, call ``then``; the whole output at its end."""
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout or ():
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(text in line for line in lines), timeout=300)
    finally:
        then()
    proc.wait(timeout=120)
    reader.join(timeout=10)
    return "".join(lines)


def test_rerun_incomplete_reuses_the_job_that_completed_meanwhile(tmp_path):
    wf = workflow(tmp_path, steps=2)
    start_and_kill_client(wf)
    wait_for(lambda: job_status(wf)[0]["TrainingJobStatus"] == "Completed")
    out = wf.run(*ARGS, "--rerun-incomplete")
    assert "reusing job" in out.stderr
    assert len(jobs(wf)) == 1
    assert wf.path("out.txt").read_text() == "steps=2\n"
    assert json.loads(wf.path("runs/state.json").read_text())["objects"]


def test_forcerun_does_not_reuse(tmp_path):
    """Only the user's forcing stops reuse: a rule, a file, or -f of the target."""
    wf = workflow(tmp_path, steps=1)
    wf.run(*ARGS)
    wf.run(*ARGS, "--forcerun", "train")
    assert len(jobs(wf)) == 2
    wf.run(*ARGS, "--forcerun", "runs/state.json")
    assert len(jobs(wf)) == 3
    out = wf.run(*ARGS, "-f", "out.txt")
    assert len(jobs(wf)) == 4 and "reusing job" not in out.stderr


def test_user_error_is_never_retried_as_capacity(tmp_path):
    wf = workflow(tmp_path)
    wf.write("train.py", "raise SystemExit(5)\n")
    proc = wf.run(*ARGS, check=False)
    assert proc.returncode != 0 and len(jobs(wf)) == 1


def test_failed_job_keeps_its_state_and_the_next_run_resumes(tmp_path):
    wf = workflow(tmp_path, steps=4)
    wf.write(
        "train.py",
        TRAIN_PY.replace(
            "while done <",
            "if done == 0:\n    progress.write_text(json.dumps({'step': 2}))\n    raise SystemExit('crash after 2 steps')\nwhile done <",
        ),
    )
    proc = wf.run(*ARGS, check=False)
    assert proc.returncode != 0 and "crash after 2 steps" in proc.stdout + proc.stderr
    assert json.loads(wf.path("runs/state/algo-1/progress.json").read_text()) == {"step": 2}
    assert not wf.path("runs/state.json").exists()  # no manifest: the state is not complete
    wf.write("train.py", TRAIN_PY)
    out = wf.run(*ARGS)
    assert "starting at step 2" in wf.path("train.log").read_text()
    # the state it resumed from was written by other code: the log says so, and the way out
    assert "resumes from the task state at" in out.stderr
    assert "wrote with other code (source_dir, dependencies, script)" in out.stderr
    assert "job(clean_state=True)" in out.stderr
    assert wf.path("out.txt").read_text() == "steps=4\n"


def test_clean_state_wipes_the_state_first(tmp_path):
    wf = workflow(tmp_path, steps=2)
    snakefile = wf.path("Snakefile")
    snakefile.write_text(
        snakefile.read_text().replace(
            "params: steps=2", "params: sm=job(clean_state=True), steps=2"
        )
    )
    wf.write("runs/state/algo-1/progress.json", json.dumps({"step": 1}))
    wf.write("runs/state/stale.bin", "x")
    wf.run(*ARGS)
    assert "starting at step 0" in wf.path("train.log").read_text()
    assert not wf.path("runs/state/stale.bin").exists()


def test_orphan_of_an_earlier_run_with_other_params_is_named_with_how_to_stop_it(tmp_path):
    wf = workflow(tmp_path, steps=2)
    # The orphan makes no step, so it writes no task state that its checkpoint syncs could
    # hand to the new job, and runs until it is stopped (its gate never opens), however
    # loaded the machine.
    gate = tmp_path / "gate"
    wf.write("train.py", gated(TRAIN_PY, gate, before="while done <"))
    start_and_kill_client(wf)
    # named now: a job name holds the second it was created and then a random suffix, so
    # the order of the names of two jobs of the same second is not theirs
    (orphan,) = (j["TrainingJobName"] for j in jobs(wf))
    wf.write("train.py", TRAIN_PY)  # ungated: the new job runs through
    snakefile = wf.path("Snakefile")
    snakefile.write_text(snakefile.read_text().replace("steps=2", "steps=1"))
    try:
        out = wf.run(*ARGS)
        assert (
            f"job {orphan} of an earlier run (other code, inputs or params) is still running"
            in out.stderr
        ), out.stderr
        assert f"stop-training-job --training-job-name {orphan}" in out.stderr
        assert len(jobs(wf)) == 2 and wf.path("out.txt").read_text() == "steps=1\n"
    finally:  # no runner outlives its test
        LocalBackend(wf.root / ".ssm_rules" / "jobs").stop([(orphan, JobType.TRAINING)])
