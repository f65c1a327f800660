"""Snakefile.example on profiles/local, end to end through the real snakemake command."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from tests.e2e import Workflow, example_workflow, planned_rules

pytestmark = pytest.mark.slow
PROFILE = ("--profile", "profiles/local")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    wf = example_workflow(tmp_path_factory.mktemp("example"))
    wf.run(*PROFILE)
    return wf


def test_plan_lists_every_rule(tmp_path):
    wf = example_workflow(tmp_path)
    plan = wf.run(*PROFILE, "-n").stdout
    assert planned_rules(plan) == {"prepare", "train", "evaluate", "summarize", "download", "all"}
    assert not wf.path("runs").exists() and not wf.path(".ssm_rules/jobs").exists()


def test_results_are_downloaded_and_extracted(finished):
    summary = finished.path("results/summary.txt").read_text()
    assert '"coverage": 0.75' in summary and '"hosts": 2' in summary
    weights = sorted(p.name for p in finished.path("results/model").iterdir() if p.name[0] != ".")
    assert weights == ["weights-algo-1.json", "weights-algo-2.json"]  # merged from both hosts


def test_training_sharded_its_input_between_two_hosts(finished):
    with tarfile.open(finished.path("runs/train/output.tar.gz")) as tar:
        names = sorted(m.name.removeprefix("./") for m in tar.getmembers() if m.isfile())
        # output data is the main host's only; SageMaker gives host i the objects i, i+N, ...
        assert "files-algo-1.txt" in names and "files-algo-2.txt" not in names
        shard = tar.extractfile(
            [m for m in tar.getmembers() if m.name.endswith("files-algo-1.txt")][0]
        )
        assert shard.read().decode().split() == ["part-1.txt", "part-3.txt"]


def test_state_manifest_lists_each_instance_state(finished):
    manifest = json.loads(finished.path("runs/train/state.json").read_text())
    assert [o["key"] for o in manifest["objects"]] == [
        "algo-1/progress.json",
        "algo-2/progress.json",
    ]
    assert finished.path("runs/train/state/algo-2/progress.json").exists()


def test_log_holds_every_instance(finished):
    log = finished.path("logs/train.log").read_text()
    assert "/algo-1-" in log and "/algo-2-" in log and "epoch=3; loss=0.333;" in log


def test_second_run_has_nothing_to_do(finished):
    out = finished.run(*PROFILE)
    assert "Nothing to be done" in out.stdout + out.stderr


def test_changed_param_reruns_dependants_and_resumes_state(finished, tmp_path):
    # a copy of the finished run (Snakemake's records, the task state, the local jobs), times
    # kept: the same start as running the pipeline again from scratch, without paying for it
    wf = Workflow(tmp_path / "wf")
    shutil.copytree(finished.root, wf.root, symlinks=True)
    snakefile = wf.path("Snakefile")
    snakefile.write_text(snakefile.read_text().replace("epochs=3,", "epochs=4,"))
    plan = planned_rules(wf.run(*PROFILE, "-n").stdout)
    assert {"train", "evaluate", "summarize", "download"} <= plan and "prepare" not in plan
    wf.run(*PROFILE)
    metrics = json.loads(wf.path("runs/train/metrics.json").read_text())
    assert metrics["epochs_total"] == 3 + 4  # resumed from the task state of the first run
