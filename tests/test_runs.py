"""Real snakemake runs of small workflows on the local backend: shell bodies, failures,
stale outputs, a killed client."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from ssm_rules.digests import RACY_NS
from tests.e2e import LOCAL_ARGS, Workflow

pytestmark = pytest.mark.slow
ARGS = LOCAL_ARGS
HEADER = "from ssm_rules import model, output_data, state, sharded, local_input, job\n\n"


def workflow(tmp_path: Path, snakefile: str) -> Workflow:
    wf = Workflow(tmp_path)
    wf.write("Snakefile", HEADER + snakefile)
    return wf


def test_shell_paths_resolve_inside_the_job(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule make:
    output: "out/{sample}.txt"
    params: greeting="hi"
    shell: "echo {params.greeting} {wildcards.sample} > {output}; echo {output} >&2"

rule use:
    input: a="out/x.txt", d=local_input("data")
    output: m=model("res/{name}/model.tar.gz"), f="res/{name}.json"
    log: "logs/use.{name}.log"
    shell: "cp {input.a} $SM_MODEL_DIR/copied.txt; ls {input.d} > {output.m}/listing; echo '{{}}' > {output.f}; echo {input.a} {input.d} > {log}"
""",
    )
    wf.write("data/one.txt", "1")
    wf.run(*ARGS, "res/n1.json")
    assert wf.path("out/x.txt").read_text() == "hi x\n"
    log = wf.path("logs/use.n1.log").read_text()
    assert "/opt/ml/input/data/a/x.txt /opt/ml/input/data/d" in log  # paths inside the job
    import tarfile

    with tarfile.open(wf.path("res/n1/model.tar.gz")) as tar:
        names = {m.name.removeprefix("./") for m in tar.getmembers()}
    assert {"copied.txt", "listing"} <= names
    # a run that hashes the local input once it is RACY_NS old keeps its digest for the runs
    # after it (both runs may come sooner than that after the write: neither would keep it)
    st = wf.path("data/one.txt").stat()
    written_ns = max(st.st_mtime_ns, st.st_ctime_ns)
    time.sleep(max(0.0, (written_ns + RACY_NS - time.time_ns()) / 1e9 + 0.05))
    wf.run(*ARGS, "res/n2.json")
    digests = json.loads(wf.path(".ssm_rules/sync-digests.json").read_text())["files"]
    assert digests[str(wf.path("data/one.txt"))][-1] == hashlib.sha256(b"1").hexdigest()


def test_failed_job_leaves_no_output_and_reports_reason_and_log(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule fail:
    output: m=model("m.tar.gz"), f="f.txt"
    log: "fail.log"
    shell: "echo partial > {output.f}; echo 'something broke here' >&2; exit 3"
""",
    )
    proc = wf.run(*ARGS, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "Failed" in text and "ExitCode 3" in text and "something broke here" in text
    assert not wf.path("f.txt").exists() and not wf.path("m.tar.gz").exists()
    assert "something broke here" in wf.path("fail.log").read_text()


def test_forcerun_never_accepts_the_old_output(tmp_path):
    # the job's processes see this machine's files: a flag of this test's own (a shared path
    # in /tmp would be another run's to delete)
    flag = tmp_path / "fail-yes"
    wf = workflow(
        tmp_path / "wf",
        f"""
rule r:
    output: "v.txt"
    shell: "test -e {tmp_path}/fail-{{config[fail]}} && exit 4; echo new > {{output}}"
""",
    )
    wf.run(*ARGS, "--config", "fail=no")
    assert wf.path("v.txt").read_text() == "new\n"
    wf.write("v.txt", "old\n")
    flag.touch()
    proc = wf.run(*ARGS, "--config", "fail=yes", "--forcerun", "r", check=False)
    assert proc.returncode != 0
    assert not wf.path("v.txt").exists()  # the stale "old" can never pass as this run's result


def test_run_body_is_a_clear_error_before_anything_runs(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule r:
    output: "x.txt"
    run:
        open(output[0], "w").write("x")
""",
    )
    proc = wf.run(*ARGS, check=False)
    assert proc.returncode != 0
    assert "run: body" in proc.stdout + proc.stderr and "script" in proc.stdout + proc.stderr
    assert not (tmp_path / ".ssm_rules" / "jobs").exists()


def test_killed_client_then_rerun_incomplete_completes(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule slow:
    output: "slow.txt"
    shell: "sleep 4; echo done > {output}"
""",
    )
    client = wf.popen(*ARGS)
    jobs = tmp_path / ".ssm_rules" / "jobs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (jobs.exists() and any(jobs.iterdir())):
        time.sleep(0.2)
    assert jobs.exists(), "the job was never submitted"
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    assert not wf.path("slow.txt").exists()
    wf.run(*ARGS, "--unlock")  # Snakemake's own lock survives a SIGKILL
    wf.run(*ARGS, "--rerun-incomplete")
    assert wf.path("slow.txt").read_text() == "done\n"


def test_a_job_end_wakes_the_status_check_whatever_the_interval(tmp_path):
    """The client learns of a local job's end when its runner exits, not at the next status
    round: a chain of three jobs (each submitted once the one before was promoted) and the
    run's end wait out none of the 600 s between status checks."""
    wf = workflow(
        tmp_path,
        """
rule all:
    input: "c.txt"
rule a:
    output: "a.txt"
    shell: "echo a > {output}"
rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "cat {input} > {output}; echo b >> {output}"
rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "cat {input} > {output}; echo c >> {output}"
""",
    )
    # a run that slept between rounds would take 4 x 600 s: subprocess.run's timeout ends it
    wf.run(*ARGS, "--seconds-between-status-checks", "600", timeout=300)
    assert wf.path("c.txt").read_text() == "a\nb\nc\n"


def test_log_is_written_while_the_job_runs(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule r:
    output: "r.txt"
    log: "r.log"
    shell: "echo first-line; sleep 5; echo done > {output}"
""",
    )
    client = wf.popen(*ARGS)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            log = wf.path("r.log")
            if log.exists() and "first-line" in log.read_text():
                break
            time.sleep(0.2)
        assert "first-line" in wf.path("r.log").read_text()
        assert not wf.path("r.txt").exists()  # the job was still running
    finally:
        assert client.wait(timeout=60) == 0
    assert wf.path("r.txt").exists() and "first-line" in wf.path("r.log").read_text()


def test_state_and_output_data_chain_into_a_processing_script(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule produce:
    output: st=state("a/state.json"), out=output_data("a/output.tar.gz")
    shell: "mkdir -p $SSM_INSTANCE_STATE; echo s > $SSM_INSTANCE_STATE/s.txt; echo o > {output.out}/o.txt"

rule consume:
    input: st=state("a/state.json"), out=output_data("a/output.tar.gz")
    output: report="b/report.txt"
    params: greeting="hello", n=2
    resources: job_type="processing"
    script: "consume.py"
""",
    )
    wf.write(
        "consume.py",
        """
import argparse, os, pathlib
from worker_toolkit import worker_lib
parser = argparse.ArgumentParser()
parser.add_argument("--greeting")
parser.add_argument("-n", type=int)
args = parser.parse_args()
cfg = worker_lib.WorkerConfig(per_instance_state=False)
state = sorted(str(p.relative_to(cfg.channel_st)) for p in pathlib.Path(cfg.channel_st).rglob("*") if p.is_file())
tarball = pathlib.Path(os.environ["SSM_INPUT_OUT"])
pathlib.Path(os.environ["SSM_OUTPUT_REPORT"]).write_text(f"{args.greeting} {args.n} {state} {tarball.name} {cfg.hps}")
""",
    )
    wf.run(*ARGS, "b/report.txt")
    report = wf.path("b/report.txt").read_text()
    assert report.startswith("hello 2 ['algo-1/s.txt'] output.tar.gz")
    assert "'greeting': 'hello'" in report and "'n': 2" in report


def test_bad_input_anywhere_in_the_plan_stops_the_run_before_any_job(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule all:
    input: "b.txt"
rule first:
    output: "a.txt"
    shell: "echo a > {output}"
rule second:
    input: "a.txt"
    output: "b.txt"
    resources: instance_type="ml.m5.huge-ish"
    shell: "cp {input} {output}"
""",
    )
    proc = wf.run(*ARGS, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "nothing was submitted" in text and "rule second" in text and "'ml.m5.huge-ish'" in text
    assert not (tmp_path / ".ssm_rules" / "jobs").exists() and not wf.path("a.txt").exists()


def test_snakemake_style_script_gets_the_snakemake_object(tmp_path):
    wf = workflow(
        tmp_path,
        """
rule make:
    output: "in/{sample}.txt"
    shell: "echo data-{wildcards.sample} > {output}"

rule script_rule:
    input: data="in/{sample}.txt", extra="in/b.txt"
    output: res="out/{sample}.json", m=model("out/{sample}/model.tar.gz")
    params: lr=0.5, tag="t1"
    log: "logs/{sample}.log"
    script: "scripts/work.py"
""",
    )
    wf.write("scripts/helper.py", "def shout(s):\n    return s.upper()\n")
    wf.write(
        "scripts/work.py",
        """
import json, os
from helper import shout  # a module next to the script, as Snakemake deploys the script's directory
with open(snakemake.log[0], "w") as log:
    print("logging works", file=log)
data = open(snakemake.input.data).read().strip()
extra = open(snakemake.input[1]).read().strip()
open(os.path.join(snakemake.output.m, "w.txt"), "w").write(data)
json.dump({"data": shout(data), "extra": extra, "lr": snakemake.params.lr, "tag": snakemake.params[1],
           "sample": snakemake.wildcards.sample, "rule": snakemake.rule}, open(snakemake.output.res, "w"))
""",
    )
    wf.run(*ARGS, "out/a.json")
    result = json.loads(wf.path("out/a.json").read_text())
    assert result == {
        "data": "DATA-A",
        "extra": "data-b",
        "lr": 0.5,
        "tag": "t1",
        "sample": "a",
        "rule": "script_rule",
    }
    assert "logging works" in wf.path("logs/a.log").read_text()


def _processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and stat[stat.rindex(")") + 2] not in "ZX":
            found.append(int(entry))
    return found


@pytest.mark.parametrize("no_mount", ["", "1"])
def test_no_process_of_a_job_outlives_it(tmp_path, no_mount):
    from tests.e2e import wait_for

    marker = f"ssm-marker-{os.getpid()}-{no_mount or 'mnt'}"
    wf = workflow(
        tmp_path,
        f"""
rule bg:
    output: "bg.txt"
    resources: spot=0
    shell: "(exec -a {marker}-bg sleep 300) & echo done > {{output}}"

rule stuck:
    output: "stuck.txt"
    resources: spot=0
    shell: "trap '' TERM; (exec -a {marker}-stuck sleep 300); touch {{output}}"
""",
    )
    env = {"SSM_LOCAL_NO_MOUNT": no_mount, "SSM_STOP_GRACE_SECONDS": "1"}
    try:
        wf.run(*ARGS, "bg.txt", env=env)
        assert wf.path("bg.txt").read_text() == "done\n"
        wait_for(lambda: not _processes_with(marker), timeout=120)  # completion kills them
        client = wf.popen(*ARGS, "stuck.txt", env=env)
        wait_for(lambda: _processes_with(marker + "-stuck"))
        client.send_signal(signal.SIGINT)  # stop: SIGTERM is ignored, SIGKILL must reach all
        client.communicate(timeout=60)
        wait_for(lambda: not _processes_with(marker), timeout=120)
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_the_program_sees_itself_in_the_toolkit_variables(tmp_path):
    """SM_USER_ARGS, SM_HPS, SM_USER_ENTRY_POINT, SM_MODULE_NAME describe the rule's script,
    not the launcher that runs it (nor its --ssm_task)."""
    wf = workflow(
        tmp_path,
        """
rule r:
    output: res="res.json"
    params: lr=0.5, name="x y"
    resources: spot=0
    script: "code/fit.py"
""",
    )
    wf.write(
        "code/fit.py",
        """
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--name")
args = parser.parse_args(json.loads(os.environ["SM_USER_ARGS"]))
json.dump({"args": vars(args), "hps": json.loads(os.environ["SM_HPS"]),
           "entry": os.environ["SM_USER_ENTRY_POINT"], "module": os.environ["SM_MODULE_NAME"],
           "hp_vars": sorted(k for k in os.environ if k.startswith("SM_HP_")),
           "training_env": json.loads(os.environ["SM_TRAINING_ENV"])["hyperparameters"]},
          open(os.environ["SSM_OUTPUT_RES"], "w"))
""",
    )
    wf.run(*ARGS)
    seen = json.loads(wf.path("res.json").read_text())
    assert seen["args"] == {"lr": 0.5, "name": "x y"}
    assert seen["hps"] == seen["training_env"] == {"lr": 0.5, "name": "x y"}
    assert (seen["entry"], seen["module"]) == ("fit.py", "fit")
    assert seen["hp_vars"] == ["SM_HP_LR", "SM_HP_NAME"]
