"""simple-sagemaker's README examples, their workers copied verbatim, run unmodified as rules.

``tests/data/simple_sagemaker_examples/``: the Snakefile ports the README's ``ssm`` command
lines (Getting started, command-line arguments, state and output, input data, chaining, the
single-file example's two tasks, an older README's ``task_toolkit`` worker), plus a processing
shell worker writing to ``$SSM_OUTPUT`` and a job that writes nothing. One real snakemake run
per backend: the local backend, and the aws backend against the moto server whose jobs run.

Not ported: worker1.py (needs torch and GPUs), example 6 (its worker is not in the README, only
a snippet, and it needs a custom Docker image and ``transformers``), and the shell example's
``nvidia-smi`` half (no GPU here).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e import LOCAL_ARGS, Workflow, aws_args
from tests.moto_sagemaker import MotoServer

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parent / "data" / "simple_sagemaker_examples"
STORAGE_PREFIX = "wf"  # aws_args: --default-storage-prefix s3://<bucket>/wf

Read = Callable[[str], bytes]  # an artifact's bytes by its path in the Snakefile
LOGGED_RULES = (
    "shell_task", "task2", "task4", "task5", "sf_task2", "empty",
)  # fmt: skip


def _workflow(tmp_path: Path) -> Workflow:
    root = tmp_path / "wf"
    shutil.copytree(EXAMPLES, root)
    return Workflow(root)


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _state_keys(manifest: bytes) -> set[str]:
    return {o["key"] for o in json.loads(manifest)["objects"]}


def _check(read: Read, client_output: str) -> None:
    """What each example's README says its worker does, found in its artifacts and logs."""
    log = {name: read(f"logs/{name}.log").decode() for name in LOGGED_RULES}

    assert "processor" in log["shell_task"]  # cat /proc/cpuinfo

    assert "-***- Hello, world!" in log["task2"]

    for task in ("task3", "old_task3"):
        assert _members(read(f"out/{task}/model.tar.gz")) == {"model_dir": b"model_dir file"}
        output = _members(read(f"out/{task}/output.tar.gz"))
        assert output == {"output_data_dir": b"output_data_dir file"}
        assert "state_dir" in _state_keys(read(f"out/{task}/state.json"))

    assert "sample_data.txt" in log["task4"] and "persons.json" in log["task4"]
    assert "END file listing /opt/ml/input/data/bucket" in log["task5"]
    assert "model.tar.gz" in log["task5"]  # the chained model arrives as the tarball

    model = _members(read("out/sf_task1/model.tar.gz"))
    assert model == {
        "sample_data1.txt_proc_by_algo-1": b"sample data 1\n processed by algo-1",
        "sample_data2.txt_proc_by_algo-2": b"sample data 2\n processed by algo-2",
        "output_algo-1": b"output",
        "output_algo-2": b"output",
    }  # sharded: one file per instance, both instances' model dirs merged
    state = _state_keys(read("out/sf_task1/state.json"))
    assert {"algo-1/state_algo-1", "algo-2/state_algo-2"} <= state
    assert (
        "Input task2_data: [PosixPath('/opt/ml/input/data/task2_data/model.tar.gz')]"
        in (log["sf_task2"])
    )
    dist = "Input task2_data_dist: [PosixPath('/opt/ml/input/data/task2_data_dist/model.tar.gz')]"
    assert log["sf_task2"].count(dist) == 2  # replicated (see the Snakefile: no one-file shard)

    processed = _members(read("out/proc_shell/output.tar.gz"))
    assert processed["copied.txt"] == b"sample data\n"
    assert processed["state_dir.txt"].decode().strip().endswith("/processing/state")

    # A job that wrote nothing: valid, empty tarballs, and a warning naming SM_MODEL_DIR
    # in its log (the job's) and in the client's output.
    assert _members(read("out/empty/model.tar.gz")) == {}
    assert _members(read("out/empty/output.tar.gz")) == {}
    assert "nothing was written to SM_MODEL_DIR" in log["empty"]
    assert "rule empty: job empty-" in client_output
    assert "wrote nothing to its model directory (SM_MODEL_DIR" in client_output
    warned = {line.split(":")[0] for line in client_output.splitlines() if "SM_MODEL_DIR" in line}
    assert "rule task3" not in warned and "rule sf_task1" not in warned  # they wrote a model


def test_readme_examples_run_unmodified_on_the_local_backend(tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    proc = wf.run(*LOCAL_ARGS)
    _check(lambda rel: wf.path(rel).read_bytes(), proc.stdout + proc.stderr)


def test_readme_examples_run_unmodified_on_aws_against_moto(
    tmp_path: Path, aws: MotoServer, bucket: str
) -> None:
    wf = _workflow(tmp_path)
    proc = wf.run(*aws_args(bucket), env=aws.env())
    s3 = aws.client("s3")

    def read(rel: str) -> bytes:
        key = f"{STORAGE_PREFIX}/{rel}"
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    _check(read, proc.stdout + proc.stderr)


def test_a_failed_job_promotes_no_empty_tarball(tmp_path: Path) -> None:
    """The empty output.tar.gz is only for a job that completed: one that wrote nothing and
    failed leaves its output_data() and model() absent."""
    wf = Workflow(tmp_path)
    wf.write(
        "Snakefile",
        "from ssm_rules import model, output_data\n\n"
        "rule fails:\n"
        '    output: m=model("m.tar.gz"), o=output_data("o.tar.gz")\n'
        '    shell: "echo wrote nothing; exit 3"\n',
    )
    proc = wf.run(*LOCAL_ARGS, check=False)
    assert proc.returncode != 0 and "ExitCode 3" in proc.stdout + proc.stderr
    assert not wf.path("m.tar.gz").exists() and not wf.path("o.tar.gz").exists()
