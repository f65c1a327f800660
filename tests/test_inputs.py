"""How inputs arrive in the job, end to end on both backends: an artifact's kind comes from
the rule that produces it, a sharded list of files is one channel dealt over the instances,
an unpacked(...) tarball arrives as its files, free arguments reach the script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e import LOCAL_ARGS, Workflow, aws_args

pytestmark = pytest.mark.slow

SNAKEFILE = """
from ssm_rules import model, output_data, state, sharded, unpacked, local_input, job

rule all:
    input: "res/seen.json", "res/parts.json", "res/args.json", "res/kinds.json", "res/seen_p.json"

rule train:
    output:
        m=model("runs/train/model.tar.gz"),
        o=output_data("runs/train/output.tar.gz"),
        st=state("runs/train/state.json"),
    shell:
        "echo w > $SM_MODEL_DIR/weights.txt; mkdir -p $SM_OUTPUT_DATA_DIR/sub; "
        "echo r > $SM_OUTPUT_DATA_DIR/sub/report.txt; echo s > $SSM_INSTANCE_STATE/s.txt"

# the consumer names the producer's outputs without helpers: the kinds come from rule train
rule kinds:
    input: st=rules.train.output.st, m="runs/train/model.tar.gz"
    output: "res/kinds.json"
    script: "code/kinds.py"

rule seen:
    input:
        o=unpacked(output_data("runs/train/output.tar.gz")),
        m=unpacked(rules.train.output.m),
    output: "res/seen.json"
    script: "code/seen.py"

rule seen_p:
    input: o=unpacked(rules.train.output.o)
    output: "res/seen_p.json"
    params: sagemaker=job(args="one 'two words'")
    resources: job_type="processing", instance_count=2
    script: "code/seen_p.py"

rule parts:
    input:
        data=sharded([local_input("data/a.csv"), local_input("data/b.csv"), local_input("data/more/c.csv")]),
    output: "res/parts.json"
    resources: instance_count=2
    script: "code/parts.py"

rule args:
    output: "res/args.json"
    params: sagemaker=job(args=["arg1", "-arg2", "--arg3", "argument 4"]), lr=0.5
    script: "code/args.py"
"""

TREE = """
import json, os, pathlib
def tree(d):
    return sorted(str(p.relative_to(d)) for p in pathlib.Path(d).rglob("*") if p.is_file())
"""
KINDS_PY = (
    TREE
    + """
out = {"st": tree(snakemake.input.st), "m": os.path.basename(snakemake.input.m)}
pathlib.Path(snakemake.output[0]).write_text(json.dumps(out))
"""
)
SEEN_PY = (
    TREE
    + """
from worker_toolkit import worker_lib
cfg = worker_lib.WorkerConfig()
out = {"o": tree(snakemake.input.o), "m": tree(os.environ["SM_CHANNEL_M"]),
       "o_is": snakemake.input.o == os.environ["SSM_INPUT_O"] == cfg.channel_o,
       "report": (pathlib.Path(cfg.channel_o) / "sub/report.txt").read_text()}
pathlib.Path(snakemake.output[0]).write_text(json.dumps(out))
"""
)
SEEN_P_PY = (
    TREE
    + """
import sys
out = {"o": tree(snakemake.input.o), "argv": sys.argv[1:], "at": snakemake.input.o}
pathlib.Path(snakemake.output[0]).write_text(json.dumps(out))
"""
)
# every host writes what it got into the model; the main host's output is the file
PARTS_PY = (
    TREE
    + """
from worker_toolkit import worker_lib
cfg = worker_lib.WorkerConfig()
mine = tree(cfg.channel_data)
state = pathlib.Path(os.environ["SM_MODEL_DIR"]) / f"{cfg.current_host}.json"
state.write_text(json.dumps(mine))
if cfg.current_host == "algo-1":
    pathlib.Path(snakemake.output[0]).write_text(json.dumps({"algo-1": mine, "dir": snakemake.input.data}))
"""
)
ARGS_PY = """
import json, pathlib, sys
pathlib.Path(snakemake.output[0]).write_text(json.dumps(sys.argv[1:]))
"""


def _workflow(root: Path) -> Workflow:
    wf = Workflow(root)
    wf.write("Snakefile", SNAKEFILE)
    wf.write("code/kinds.py", KINDS_PY)
    wf.write("code/seen.py", SEEN_PY)
    wf.write("code/parts.py", PARTS_PY)
    wf.write("code/seen_p.py", SEEN_P_PY)
    wf.write("code/args.py", ARGS_PY)
    wf.write("data/a.csv", "a")
    wf.write("data/b.csv", "b")
    wf.write("data/more/c.csv", "c")
    wf.write("data/ignored.csv", "not listed")
    return wf


def _check(read) -> None:  # read(rel) -> text of a workflow output
    kinds = json.loads(read("res/kinds.json"))
    assert kinds == {"st": ["algo-1/s.txt"], "m": "model.tar.gz"}
    seen = json.loads(read("res/seen.json"))
    assert seen["o"] == ["sub/report.txt"] and seen["m"] == ["weights.txt"]
    assert seen["o_is"] and seen["report"] == "r\n"
    seen_p = json.loads(read("res/seen_p.json"))
    assert seen_p == {
        "o": ["sub/report.txt"],
        "argv": ["one", "two words"],
        "at": "/opt/ml/processing/unpacked/o",
    }
    parts = json.loads(read("res/parts.json"))
    # one channel "data" holding the three listed files (not the unlisted one), dealt over
    # two instances in the manifest's order: algo-1 gets a.csv and more/c.csv
    assert parts["algo-1"] == ["a.csv", "more/c.csv"]
    assert parts["dir"].endswith("/input/data/data")
    assert json.loads(read("res/args.json")) == [
        "arg1",
        "-arg2",
        "--arg3",
        "argument 4",
        "--lr",
        "0.5",
    ]


def test_inputs_arrive_as_the_producer_declared_on_the_local_backend(tmp_path: Path) -> None:
    wf = _workflow(tmp_path / "wf")
    wf.run(*LOCAL_ARGS)
    _check(lambda rel: wf.path(rel).read_text())
    import tarfile

    with tarfile.open(wf.path(".ssm_rules").parent / _parts_model(wf)) as tar:
        names = sorted(m.name.removeprefix("./") for m in tar.getmembers() if m.isfile())
    assert names == ["algo-1.json", "algo-2.json"]


def _parts_model(wf: Workflow) -> Path:
    """The parts job's merged model (not a declared output): what algo-2 got."""
    found = sorted(wf.root.glob(".ssm_rules/**/parts-*/output/model.tar.gz"))
    assert found, sorted(str(p) for p in wf.root.glob(".ssm_rules/**/model.tar.gz"))
    return found[-1]


def test_inputs_arrive_as_the_producer_declared_on_aws(tmp_path: Path, aws, bucket: str) -> None:
    wf = _workflow(tmp_path / "wf")
    wf.run(*aws_args(bucket))
    s3 = aws.client("s3")
    _check(lambda rel: s3.get_object(Bucket=bucket, Key=f"wf/{rel}")["Body"].read().decode())
    # the list travelled as a ManifestFile channel, sharded
    jobs = s3.list_objects_v2(Bucket=bucket, Prefix="ssm-rules/manifests/")
    manifest = [o["Key"] for o in jobs.get("Contents", []) if o["Key"].endswith("/data.json")]
    assert len(manifest) == 1
    body = json.loads(s3.get_object(Bucket=bucket, Key=manifest[0])["Body"].read())
    assert body[1:] == ["a.csv", "b.csv", "more/c.csv"]


SETUP_SNAKEFILE = """
from ssm_rules import job

rule all:
    input: "good.txt", "bad.txt"

rule good:
    output: "good.txt"
    params: sagemaker=job(setup="export GREETING=hi && unset HOME && echo setting up on $SM_CURRENT_HOST")
    resources: instance_count=2
    log: "good.log"
    shell: "echo $GREETING ${{HOME:-nohome}} > {output}"

rule bad:
    output: "bad.txt"
    params: sagemaker=job(setup="echo about to fail; false")
    log: "bad.log"
    shell: "echo never > {output}"
"""


def test_setup_runs_before_the_program_on_every_instance(tmp_path: Path) -> None:
    wf = Workflow(tmp_path)
    wf.write("Snakefile", SETUP_SNAKEFILE)
    proc = wf.run(*LOCAL_ARGS, "-k", check=False)
    assert wf.path("good.txt").read_text() == "hi nohome\n"  # exports and unsets reach it
    log = wf.path("good.log").read_text()
    assert "setting up on algo-1" in log and "setting up on algo-2" in log
    assert proc.returncode != 0 and not wf.path("bad.txt").exists()
    assert "setup 'echo about to fail; false'" in proc.stdout + proc.stderr


ANYWHERE = """
storage s3:
    provider="s3",

rule use:
    input: a=storage.s3("s3://{bucket}/elsewhere/x.csv"), d=storage.s3("s3://{bucket}/elsewhere/dir"){extra}
    output: "got.txt"
    shell: "cat {{input.a}} > {{output}}; cd {{input.d}}; find . -type f | sort >> {{output}}"
"""


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_objects_no_rule_produces_are_read_in_place(tmp_path: Path, aws, bucket, backend) -> None:
    """An S3 object or prefix is a channel pointing at it: nothing is copied, on both
    backends (the local backend reads it through boto3)."""
    s3 = aws.client("s3")
    for key, body in [
        ("elsewhere/x.csv", "hello\n"),
        ("elsewhere/dir/a.csv", "a"),
        ("elsewhere/dir/sub/b.csv", "b"),
        ("wf/raw/data.csv", "raw"),
    ]:
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    wf = Workflow(tmp_path)
    extra = ', raw="raw/data.csv"' if backend == "aws" else ""  # under the default storage
    wf.write("Snakefile", ANYWHERE.format(bucket=bucket, extra=extra))
    if backend == "aws":
        wf.run(*aws_args(bucket))
        got = s3.get_object(Bucket=bucket, Key="wf/got.txt")["Body"].read().decode()
    else:
        wf.run(*LOCAL_ARGS)
        got = wf.path("got.txt").read_text()
    assert got == "hello\n./a.csv\n./sub/b.csv\n"
    copies = [p for p in wf.root.glob(".snakemake/storage/**/*") if p.is_file()]
    staged = s3.list_objects_v2(Bucket=bucket, Prefix="ssm-rules/inputs/").get("KeyCount", 0)
    assert copies == [] and staged == 0


TENSORBOARD = """
from ssm_rules import tensorboard, job

rule train:
    output: tb=tensorboard("runs/train/tb"), done="done.txt"
    resources: instance_count=2
    shell:
        "mkdir -p $SSM_TENSORBOARD_DIR/$SM_CURRENT_HOST && "
        "echo event > $SSM_TENSORBOARD_DIR/$SM_CURRENT_HOST/events.out && "
        "python -c 'from worker_toolkit.worker_lib import WorkerConfig as W; import os; "
        "assert W().tensorboard_dir == os.environ[\\"SSM_TENSORBOARD_DIR\\"]' && echo ok > {output.done}"

rule quiet:
    output: tb=tensorboard("runs/quiet/tb")
    shell: "true"
"""


@pytest.mark.parametrize("backend", ["local", "aws"])
def test_tensorboard_files_are_an_artifact(tmp_path: Path, backend: str, request) -> None:
    wf = Workflow(tmp_path)
    wf.write("Snakefile", TENSORBOARD)
    if backend == "local":
        wf.run(*LOCAL_ARGS, "runs/train/tb", "runs/quiet/tb")
        files = sorted(
            str(p.relative_to(wf.path("runs/train/tb")))
            for p in wf.path("runs/train/tb").rglob("*")
            if p.is_file()
        )
        quiet = sorted(p.name for p in wf.path("runs/quiet/tb").iterdir())
    else:
        aws = request.getfixturevalue("aws")
        bucket = request.getfixturevalue("bucket")
        wf.run(*aws_args(bucket), "runs/train/tb", "runs/quiet/tb")
        s3 = aws.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="wf/runs/")["Contents"]]
        files = sorted(k.removeprefix("wf/runs/train/tb/") for k in keys if "/train/tb/" in k)
        quiet = sorted(k.rsplit("/", 1)[1] for k in keys if "/quiet/tb/" in k)
        job = aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
        config = [
            aws.client("sagemaker")
            .describe_training_job(TrainingJobName=j["TrainingJobName"])
            .get("TensorBoardOutputConfig")
            for j in job
        ]
        assert all(c and c["LocalPath"] == "/opt/ml/output/tensorboard" for c in config)
    assert files == ["algo-1/events.out", "algo-2/events.out"]
    assert quiet == [".ssm-empty"]  # a job that wrote none still has its (empty) folder
