"""Readable and tidy (issue 7.5): job names carry the wildcards, no ``Shell command: None``
lines, files made with the user's umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssm_rules import aws_names
from ssm_rules.aws_names import job_name_problem
from ssm_rules.backends.base import JobType
from ssm_rules.backends.local import LocalBackend
from ssm_rules.identity import TASK_TAG
from ssm_rules.objects import LocalObjects, file_uri
from ssm_rules.requests import job_name, job_name_prefix
from tests.e2e import LOCAL_ARGS, Workflow


def test_sweep_jobs_read_apart() -> None:
    names = [job_name("train", [("lr", lr)], now=0, token="abc123") for lr in ("0.01", "0.1", "1")]
    assert names == [
        "train-0-01-0101000000-abc123",
        "train-0-1-0101000000-abc123",
        "train-1-0101000000-abc123",
    ]
    two = job_name("train", [("lr", "0.01"), ("seed", "7")], now=0, token="abc123")
    assert two == "train-0-01-7-0101000000-abc123"
    assert job_name("train", now=0, token="abc123") == "train-0101000000-abc123"


@pytest.mark.parametrize(
    ("rule", "wildcards"),
    [
        ("train", [("path", "a/b c/ü.csv")]),
        ("train", [("x", "---")]),  # nothing name-worthy: left out
        ("train", [("v", "x" * 200)]),  # cut at the limit
        ("a_very_long_rule_name_" * 5, [("lr", "0.01")]),  # no room left: the tag has them
        ("r", [("a", "1" * 40), ("b", "-2")]),
    ],
)
def test_names_stay_valid_and_findable_by_the_rule_prefix(
    rule: str, wildcards: list[tuple[str, str]]
) -> None:
    name = job_name(rule, wildcards, now=0, token="abc123")
    assert job_name_problem(name) is None, name
    # re-attach lists a rule's jobs by this prefix (then tells them apart by the task tag)
    assert name.startswith(job_name_prefix(rule))


@pytest.mark.parametrize("job_type", list(JobType))
def test_the_job_name_rule_is_botocores(job_type: JobType) -> None:
    """One rule for the names we build and the names the local SageMaker accepts: the
    pattern and limit of TrainingJobName / ProcessingJobName in botocore's model."""
    operation, member = {
        JobType.TRAINING: ("CreateTrainingJob", "TrainingJobName"),
        JobType.PROCESSING: ("CreateProcessingJob", "ProcessingJobName"),
    }[job_type]
    shape = aws_names.sagemaker_service_model().operation_model(operation).input_shape
    metadata = shape.members[member].metadata
    pattern, longest = aws_names.job_name_rule(job_type)
    assert (pattern.pattern, longest) == (metadata["pattern"], metadata["max"])
    for good in ("a", "a-b", "a--b", "A1", "x" * longest):
        assert job_name_problem(good, job_type) is None
    for bad in ("", "-a", "a-", "a_b", "a.b", "x" * (longest + 1), 7):
        problem = job_name_problem(bad, job_type)
        assert problem is not None and repr(bad) in problem and pattern.pattern in problem


def test_without_botocores_pattern_the_name_rule_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A botocore whose model lacks the pattern and limit: names are still checked."""
    from botocore.model import ServiceModel

    bare = ServiceModel(
        {
            "metadata": {"protocol": "json", "apiVersion": "2017-07-24", "endpointPrefix": "api"},
            "operations": {
                "CreateTrainingJob": {"name": "CreateTrainingJob", "input": {"shape": "Req"}}
            },
            "shapes": {
                "Req": {"type": "structure", "members": {"TrainingJobName": {"shape": "Name"}}},
                "Name": {"type": "string"},
            },
        }
    )
    monkeypatch.setattr(aws_names, "sagemaker_service_model", lambda: bare)
    aws_names.job_name_rule.cache_clear()
    try:
        assert aws_names.job_name_rule(JobType.TRAINING)[1] == 63
        assert job_name_problem("ok-name") is None
        assert job_name_problem("not_ok") is not None
    finally:
        aws_names.job_name_rule.cache_clear()


def test_local_store_files_get_the_umask(tmp_path: Path, umask: int) -> None:
    src = tmp_path / "src.txt"
    src.write_text("x")
    store = LocalObjects()
    dest = file_uri(tmp_path / "store" / "a.txt")
    store.upload(src, dest)
    store.copy(dest, file_uri(tmp_path / "store" / "b.txt"))
    store.download(dest, tmp_path / "c.txt")
    for name in ("store/a.txt", "store/b.txt", "c.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


@pytest.fixture
def umask() -> Iterator[int]:
    """A umask other than the common 022, so that a hard-coded 0644 would not pass."""
    old = os.umask(0o002)
    try:
        yield 0o002
    finally:
        os.umask(old)


SWEEP = """
rule all:
    input: expand("out/{lr}.txt", lr=["0.01", "0.1", "1"])

rule train:
    output: "out/{lr}.txt"
    log: "logs/{lr}.log"
    script: "train.py"
"""

TRAIN = """
open(snakemake.output[0], "w").write(snakemake.wildcards.lr)
print("lr", snakemake.wildcards.lr)
"""


@pytest.mark.slow  # a snakemake run
def test_sweep_run_names_logs_and_file_modes(tmp_path: Path, umask: int) -> None:
    wf = Workflow(tmp_path / "wf")
    wf.write("Snakefile", SWEEP)
    wf.write("train.py", TRAIN)
    done = wf.run(*LOCAL_ARGS, "--printshellcmds")  # as the shipped profiles set it
    output = done.stdout + done.stderr
    assert "Shell command: None" not in output
    assert "rule train:" in output and "wildcards: lr=0.01" in output  # the rest is printed

    jobs_root = wf.path(".ssm_rules/jobs")
    names = sorted(p.name for p in jobs_root.iterdir())
    assert [n.rsplit("-", 2)[0] for n in names] == ["train-0-01", "train-0-1", "train-1"]
    for name in names:
        lr = {"train-0-01": "0.01", "train-0-1": "0.1", "train-1": "1"}[name.rsplit("-", 2)[0]]
        assert f"submitted training job {name} for lr={lr} (" in output
        # what re-attach asks for: the rule's prefix and the task tag (rule and wildcards)
        found = LocalBackend(jobs_root).find(
            JobType.TRAINING, job_name_prefix("train"), {TASK_TAG: f"train.lr={lr}"}
        )
        assert [st.name for st in found] == [name]

    written = [
        *wf.root.glob("out/*.txt"),
        *wf.root.glob("logs/*.log"),
        *(p for p in wf.root.glob(".ssm_rules/store/**/*") if p.is_file()),
        *wf.root.glob(".ssm_rules/jobs/*/*.json"),
    ]
    assert len(written) > 3 * 4
    modes = {str(p.relative_to(wf.root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert {m for m in modes.values()} == {oct(0o666 & ~umask)}, modes
