"""After a real run: the board's lines, the record, the HTML report checked in a headless
chromium (it renders, and its numbers are the job descriptions'), the PNG, and the commands
(status, report, clean, stop on moto)."""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssm_rules.board import money
from ssm_rules.commands import local_stale
from ssm_rules.pricing import PriceTable, write_cache
from ssm_rules.runrecord import RunRecord
from tests.e2e import LOCAL_ARGS, Workflow, aws_args, wait_for
from tests.test_bill import read_png

pytestmark = pytest.mark.slow

PRICES = {"Training:ml.m5.xlarge": 0.23, "Processing:ml.m5.large": 0.115}
SNAKEFILE = """
from ssm_rules import job

rule all:
    input: "model.txt"

rule prepare:
    output: "data.txt"
    resources: job_type="processing", instance_type="ml.m5.large"
    shell: "echo data > {output}"

rule train:
    input: "data.txt"
    output: "model.txt"
    params: sagemaker=job(metric_definitions={"loss": "loss=(.*?);"})
    resources: instance_type="ml.m5.xlarge", instance_count=2
    log: "train.log"
    shell: "echo 'loss=0.5;'; sleep 1; echo 'loss=0.25;'; cp {input} {output}"
"""
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


def ssm_rules(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "ssm_rules", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def the_record(root: Path) -> dict:
    (path,) = (root / ".ssm_rules" / "runs").glob("*/run.json")
    return RunRecord.load(path).doc


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One real run on the local backend with a price list cached: (workflow, its output)."""
    tmp = tmp_path_factory.mktemp("bill")
    cache = tmp / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        write_cache(PriceTable("us-east-1", datetime.date.today(), dict(PRICES)))
    finally:
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old
    wf = Workflow(tmp / "wf")
    wf.write("Snakefile", SNAKEFILE)
    proc = wf.run(*LOCAL_ARGS, env=env)
    return wf, proc.stdout + proc.stderr, env


def test_the_board_says_each_status_change_the_log_to_follow_metrics_and_a_summary(finished):
    wf, out, _ = finished
    record = the_record(wf.root)
    train = next(j for j in record["jobs"] if j["rule"] == "train")
    name = train["name"]
    assert f"rule train: job {name}: follow its log with: tail -f {wf.root}/train.log" in out
    for status in ("Training", "Completed"):  # Starting may pass between two rounds
        assert re.search(rf"rule train: job {name} {status} after \d+s", out), status
    assert f"rule train: job {name} metrics: loss=" in out
    assert train["metrics"] == {"loss": 0.25}  # the last value the log gave
    assert "rule prepare: job prepare-" in out and " Completed after " in out
    # the last summary: priced from the cache, what the descriptions say was billable
    expected = (
        sum(
            _billable(j) * j["instance_count"] * PRICES[f"{_component(j)}:{j['instance_type']}"]
            for j in record["jobs"]
        )
        / 3600
    )
    assert (
        f"SageMaker: 0 running (0 on spot), 2 done, 0 failed; would cost {money(expected)} so far"
        in out
    )
    assert record["ended"] and record["backend"] == "local"


def _component(entry: dict) -> str:
    return "Training" if entry["job_type"] == "training" else "Processing"


def _billable(entry: dict) -> float:
    """Per instance, straight from the description (not through ssm_rules.bill)."""
    desc = entry["description"]
    if entry["job_type"] == "training":
        return desc["BillableTimeInSeconds"]
    start = datetime.datetime.fromisoformat(desc["ProcessingStartTime"])
    end = datetime.datetime.fromisoformat(desc["ProcessingEndTime"])
    return (end - start).total_seconds()


# Loads the report in a frame and reads it as rendered: each cell's innerText (laid out,
# not the source), each timeline bar's size on screen, the PNG's decoded size.
PROBE = """<!DOCTYPE html><html><body>
<iframe id="f" src="report.html" width="1600" height="3000"></iframe>
<img id="png" src="timeline.png">
<pre id="out">pending</pre>
<script>
document.getElementById('f').onload = () => {
  const d = document.getElementById('f').contentDocument;
  const cells = el => Object.fromEntries(
    [...el.querySelectorAll('td[data-field]')].map(td => [td.dataset.field, td.innerText]));
  const jobs = Object.fromEntries(
    [...d.querySelectorAll('#jobs tr[data-job]')].map(tr => [tr.dataset.job, cells(tr)]));
  const bars = [...d.querySelectorAll('rect.phase')].map(r => {
    const b = r.getBoundingClientRect();
    return {job: r.dataset.job, status: r.dataset.status, w: b.width, h: b.height};
  });
  const png = document.getElementById('png');
  document.getElementById('out').textContent = JSON.stringify({
    title: d.title, jobs, bars, totals: cells(d.getElementById('totals')),
    png: [png.naturalWidth, png.naturalHeight]});
};
</script></body></html>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs it)")
def test_the_report_renders_in_chromium_with_the_numbers_of_the_job_descriptions(finished):
    wf, _, _ = finished
    record = the_record(wf.root)
    directory = next((wf.root / ".ssm_rules" / "runs").glob("*/"))
    (directory / "probe.html").write_text(PROBE)
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=10000", "--dump-dom", (directory / "probe.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    match = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    assert match and match.group(1) != "pending", proc.stdout[-2000:] + proc.stderr[-2000:]
    seen = json.loads(html.unescape(match.group(1)))
    assert seen["title"] == f"ssm_rules run {record['run_id']}"
    total = 0.0
    for entry in record["jobs"]:
        cells = seen["jobs"][entry["name"]]
        desc = entry["description"]
        billable = _billable(entry)
        price = PRICES[f"{_component(entry)}:{entry['instance_type']}"]
        cost = billable * entry["instance_count"] * price / 3600
        total += cost
        assert cells["billable-seconds"] == f"{billable:.0f}"
        if entry["job_type"] == "training":
            assert cells["training-seconds"] == str(desc["TrainingTimeInSeconds"])
            assert cells["instances"] == "2 x ml.m5.xlarge" and cells["metrics"] == "loss=0.25"
            transitions = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
        else:
            transitions = ["Starting", "Processing"]
        assert cells["cost"] == money(cost)
        bars = [b for b in seen["bars"] if b["job"] == entry["name"]]
        assert [b["status"] for b in bars] == transitions
        assert all(b["w"] >= 1 and b["h"] > 0 for b in bars)  # laid out, on screen
    assert seen["totals"]["total-cost"] == money(total)
    assert seen["png"][0] > 0 and seen["png"][1] > 0  # the PNG decodes in the browser too
    width, height, _ = read_png((directory / "timeline.png").read_bytes())
    assert seen["png"] == [width, height]


def test_status_report_then_clean_on_a_finished_local_run(finished):
    wf, _, env = finished
    record = the_record(wf.root)
    names = [j["name"] for j in record["jobs"]]
    out = ssm_rules(wf.root, "status", env=env)
    assert f"run {record['run_id']}: ended " in out
    for name in names:
        assert re.search(rf"job {name} Completed after \d+s, <?\$", out)
    assert "SageMaker: 0 running (0 on spot), 2 done, 0 failed; would cost $" in out

    (Path(wf.root) / ".ssm_rules/runs" / record["run_id"] / "report.html").unlink()
    out = ssm_rules(wf.root, "report", env=env)
    assert re.search(r"total: would cost \$\d", out) and "rule train: 1 job(s), $" in out
    assert (wf.root / ".ssm_rules/runs" / record["run_id"] / "report.html").is_file()

    out = ssm_rules(wf.root, "plan", "--sagemaker-backend", "local", "-F", env=env)
    assert "SageMaker plan total: 2 job(s) to run, would cost $" in out

    out = ssm_rules(wf.root, "clean", "--older-than", "0", env=env)
    jobs = wf.root / ".ssm_rules" / "jobs"
    assert "nothing removed (a dry run): run again with --yes" in out
    # the training job's code, extracted once per content, and the launcher's bytecode
    cached = sorted((wf.root / ".ssm_rules" / "code-cache").glob("*/*"))
    assert {p.parent.name for p in cached} == {"trees", "pyc"}
    assert all(f"{p.relative_to(wf.root)}\n" in out for p in cached), out
    for name in names:
        assert f".ssm_rules/jobs/{name}\n" in out and (jobs / name).is_dir()
    assert record["run_id"] in out
    assert ssm_rules(wf.root, "clean", "--older-than", "1", env=env).startswith(
        "would remove 0 item(s)"
    )  # all of it is younger than a day

    out = ssm_rules(wf.root, "clean", "--older-than", "0", "--yes", env=env)
    assert out.startswith("removing ")
    assert not any(jobs.iterdir()) and not list((wf.root / ".ssm_rules/runs").iterdir())
    assert not list((wf.root / ".ssm_rules" / "code-cache").glob("*/*"))
    assert wf.path("model.txt").read_text() == "data\n"  # the rule outputs stay
    assert not list((wf.root / ".ssm_rules" / "store").rglob("*.tar.gz"))


def test_clean_leaves_the_code_cache_while_a_local_job_runs(tmp_path):
    """A starting job copies its code out of the cache: it is emptied only when none runs."""
    root = tmp_path / ".ssm_rules"
    tree = root / "code-cache" / "trees" / "ab12"
    tree.mkdir(parents=True)
    (tree / "train.py").write_text("print('hi')\n")
    job = root / "jobs" / "train-1"
    job.mkdir(parents=True)
    status = {"TrainingJobName": "train-1", "TrainingJobStatus": "InProgress"}
    (job / "status.json").write_text(json.dumps(status))
    later = time.time() + 60
    assert [s.what for s in local_stale(root, later, set())] == []
    (job / "status.json").write_text(json.dumps(dict(status, TrainingJobStatus="Completed")))
    assert [s.what for s in local_stale(root, later, set())] == [str(job), str(tree)]
    assert [s.what for s in local_stale(root, later, {"prepare-2"})] == [str(job)]


def test_stop_stops_the_running_job_of_a_killed_client_on_moto(tmp_path, aws, bucket, api_calls):
    wf = Workflow(tmp_path)
    wf.write(
        "Snakefile",
        """
rule slow:
    output: "o.txt"
    resources: spot=0
    shell: "sleep 120; echo ok > {output}"
""",
    )
    client = wf.popen(*aws_args(bucket), env=aws.env())
    runs = wf.root / ".ssm_rules" / "runs"
    wait_for(lambda: any(RunRecord.load(p).jobs for p in runs.glob("*/run.json")))
    sm = aws.client("sagemaker")
    wait_for(
        lambda: (
            [j["TrainingJobStatus"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
            == ["InProgress"]
        )
    )
    os.kill(client.pid, signal.SIGKILL)  # nothing tidies up: the job goes on
    client.wait()
    (name,) = [j["name"] for j in the_record(wf.root)["jobs"]]
    assert "would stop 1 job(s)" in ssm_rules(wf.root, "stop", "--dry-run", env=aws.env())
    assert api_calls.count("sagemaker", "StopTrainingJob") == 0
    out = ssm_rules(wf.root, "stop", env=aws.env())
    assert f"stopping 1 job(s) of run {the_record(wf.root)['run_id']}: {name}" in out
    assert api_calls.count("sagemaker", "StopTrainingJob") == 1
    status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    assert status in ("Stopping", "Stopped")
    assert "no job of an earlier run is still running" in ssm_rules(wf.root, "stop", env=aws.env())
    out = ssm_rules(wf.root, "report", env=aws.env())
    assert f"slow {name}: Stop" in out  # Stopping or Stopped, as moto now says
    page = (wf.root / ".ssm_rules/runs" / the_record(wf.root)["run_id"] / "report.html").read_text()
    assert (
        f"https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/{name}"
        in page
    )


def test_commands_refuse_bad_input_and_say_when_there_is_no_run(tmp_path, capsys, monkeypatch):
    from ssm_rules.__main__ import main

    monkeypatch.chdir(tmp_path)
    assert main(["clean", "--older-than", "-1"]) == 2
    assert "--older-than -1.0: write a number of days >= 0" in capsys.readouterr().err
    for command in ("status", "report"):
        assert main([command]) == 1
        err = capsys.readouterr().err
        assert f"no run recorded under {Path('.ssm_rules') / 'runs'}" in err
    assert main(["stop"]) == 0
    assert "no job of an earlier run is still running" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["status", "--profile", "x"])  # only plan passes arguments on to snakemake
    assert "unrecognized arguments: --profile x" in capsys.readouterr().err
