"""TaskSpec: in-job paths, defaults, and the catalogue of bad input (each a clear error that
names the value and the fix, raised by a pure function before anything is sent or written)."""

from __future__ import annotations

import pytest

from ssm_rules.backends.base import JobType
from ssm_rules.rules import job, local_input, model, output_data, sharded, state
from ssm_rules.spec import OutputKind, SpecError, build_spec
from tests.jobviews import io, view


def spec_of(tmp_path, backend: str = "local", **changes):
    return build_spec(
        view(tmp_path, **changes), backend=backend, default_instance_type="ml.m5.large"
    )


def test_defaults_are_a_spot_training_job(tmp_path):
    s = spec_of(tmp_path)
    assert s.job_type is JobType.TRAINING
    assert (s.instance.instance_type, s.instance.count, s.instance.spot) == ("ml.m5.large", 1, True)
    assert s.instance.max_run_seconds == 24 * 3600
    assert s.instance.max_wait_seconds == 2 * 24 * 3600  # spot wait + training


def test_inputs_become_channels_with_in_job_paths(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    s = spec_of(
        tmp_path,
        inputs=(
            io(
                "",
                "data",
                sharded(local_input("data")),
            ),
            io("", "base", model("runs/pre/model.tar.gz")),
            io("", "prev", state("runs/pre/state.json")),
            io("plain.txt"),
        ),
        shell_template="run {input.data} {input.base} {input.prev} {input[3]}",
    )
    by_name = {c.name: c for c in s.channels}
    assert set(by_name) == {"data", "base", "prev", "in3"}
    assert by_name["data"].sharded and by_name["data"].local_path and by_name["data"].uri is None
    assert by_name["prev"].uri.endswith("/runs/pre/state/") and by_name["prev"].is_prefix
    assert s.command == (
        "run /opt/ml/input/data/data /opt/ml/input/data/base/model.tar.gz "
        "/opt/ml/input/data/prev /opt/ml/input/data/in3/plain.txt"
    )


def test_outputs_map_to_sagemaker_directories(tmp_path):
    s = spec_of(
        tmp_path,
        outputs=(
            io("", "model", model("runs/t/model.tar.gz")),
            io("", "out", output_data("runs/t/output.tar.gz")),
            io("", "st", state("runs/t/state.json")),
            io("runs/t/metrics.json", "metrics"),
        ),
        shell_template="x {output.model} {output.out} {output.st} {output.metrics}",
    )
    assert [o.kind for o in s.outputs] == [
        OutputKind.MODEL,
        OutputKind.OUTPUT_DATA,
        OutputKind.STATE,
        OutputKind.FILE,
    ]
    assert s.command == (
        "x /opt/ml/model /opt/ml/output/data /opt/ml/checkpoints "
        "/opt/ml/output/ssm_files/runs/t/metrics.json"
    )
    assert s.state_prefix.endswith("/runs/t/state/")


def test_processing_paths(tmp_path):
    s = spec_of(
        tmp_path,
        resources={"job_type": "processing"},
        inputs=(io("a.txt", "a"),),
        outputs=(io("b.txt", "b"),),
        shell_template="cp {input.a} {output.b}",
    )
    assert not s.instance.spot
    assert s.command == "cp /opt/ml/processing/input/a/a.txt /opt/ml/processing/ssm_files/b.txt"


def test_params_are_hyperparameters_and_job_options_are_not(tmp_path):
    s = spec_of(tmp_path, params=(("sagemaker", job(tags={"a": "b"})), ("epochs", 3), ("lr", 0.1)))
    assert s.hyperparameters == (("epochs", 3), ("lr", 0.1))
    assert s.options.tags == {"a": "b"}


def test_runtime_resource_is_the_default_max_run(tmp_path):
    assert spec_of(tmp_path, resources={"runtime": 90}).instance.max_run_seconds == 90 * 60


def test_job_options_repr_is_stable_for_snakemake_param_tracking():
    assert repr(job(tags={"b": "1", "a": "2"})) == repr(job(tags={"a": "2", "b": "1"}))


# --- the catalogue of bad input ------------------------------------------------------------


def _script(tmp_path, name="train.py"):
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / name).write_text("print(1)")
    (tmp_path / "other").mkdir(exist_ok=True)
    (tmp_path / "other" / name).write_text("print(1)")
    return name


def sm(**options):
    """A rule whose job(...) options are ``options``."""
    return dict(params=(("sm", job(**options)),))


BAD = {
    "unknown instance type": (
        dict(resources={"instance_type": "ml.fake"}),
        ["'ml.fake'", "ml.m5.large"],
    ),
    "malformed instance type": (
        dict(resources={"instance_type": "m5.large"}),
        ["'m5.large'", "did you mean", "'ml.m5.large'"],
    ),
    "instance_count < 1": (dict(resources={"instance_count": 0}), ["instance_count=0", ">=1"]),
    "instance_count not a number": (
        dict(resources={"instance_count": "two"}),
        ["'two'", "whole number"],
    ),
    "max_wait < max_run": (
        dict(resources={"max_run_mins": 60, "max_wait_mins": 30}),
        ["max_wait_mins=30", "max_wait_mins>=60"],
    ),
    "spot on processing": (
        dict(resources={"job_type": "processing", "spot": 1}),
        ["spot=1", "write spot=0"],
    ),
    "max_wait without spot": (
        dict(resources={"spot": 0, "max_wait_mins": 10}),
        ["max_wait_mins=10", "spot=1"],
    ),
    "max_run beyond SageMaker's limit": (
        dict(resources={"max_run_mins": 10**6}),
        ["max_run_mins=1000000", "<="],
    ),
    "spot not a flag": (dict(resources={"spot": "maybe"}), ["'maybe'", "spot=0"]),
    "keep_alive_mins with spot": (
        dict(resources={"keep_alive_mins": 5}),
        ["keep_alive_mins=5 with spot", "set spot=0", "drop keep_alive_mins"],
    ),
    "keep_alive_mins on processing": (
        dict(resources={"keep_alive_mins": 5, "job_type": "processing"}),
        ["keep_alive_mins=5 on a processing rule", "training jobs only"],
    ),
    "keep_alive_mins beyond SageMaker's limit": (
        dict(resources={"keep_alive_mins": 61, "spot": 0}),
        ["keep_alive_mins=61", "keep_alive_mins<=60"],
    ),
    "keep_alive_mins not a number": (
        dict(resources={"keep_alive_mins": "soon", "spot": 0}),
        ["'soon'", "whole number"],
    ),
    "job_type unknown": (dict(resources={"job_type": "batch"}), ["'batch'", "'processing'"]),
    "volume 0": (dict(resources={"volume_size_gb": 0}), ["volume_size_gb=0", ">=1"]),
    "run: body": (dict(body="run"), ["run: body", "script"]),
    "notebook body": (dict(body="notebook"), ["notebook", "script: or shell:"]),
    "non-JSON param": (dict(params=(("obj", object()),)), ["param obj", "JSON"]),
    "too many params": (
        dict(params=tuple((f"p{i}", i) for i in range(120))),
        ["120 params", "config file"],
    ),
    "param too long": (dict(params=(("big", "x" * 3000),)), ["param big", "2500"]),
    "unnamed param": (dict(params=((None, 5),)), ["unnamed param 5", "lr=0.01"]),
    "reserved param": (
        dict(params=(("sagemaker_program", "x"),)),
        ["'sagemaker_program'", "rename"],
    ),
    "invalid channel name": (dict(inputs=(io("a.txt", "données"),)), ["'données'", "rename"]),
    "reserved channel name": (dict(inputs=(io("a.txt", "ssm_task"),)), ["'ssm_task'", "reserved"]),
    "duplicated channel": (dict(inputs=(io("a.txt"), io("b.txt", "in0"))), ["['in0']", "rename"]),
    "too many channels": (
        dict(inputs=tuple(io(f"f{i}.txt") for i in range(21))),
        ["21 inputs", "at most 20"],
    ),
    "missing local input": (
        dict(inputs=(io("", "d", local_input("nope/data")),)),
        ["'nope/data'", "does not exist"],
    ),
    "clean_state without state": (
        dict(params=(("sm", job(clean_state=True)),)),
        ["clean_state=True", "state(...)", "drop clean_state"],
    ),
    "two job() params": (dict(params=(("a", job()), ("b", job()))), ["['a', 'b']", "keep one"]),
    "missing source_dir": (
        dict(params=(("sm", job(source_dir="nope")),)),
        ["'nope'", "no such directory"],
    ),
    "dependency named worker_toolkit": (
        dict(params=(("sm", job(dependencies=["worker_toolkit"])),)),
        ["worker_toolkit", "unique"],
    ),
    "two model outputs": (
        dict(outputs=(io("", "a", model("a/model.tar.gz")), io("", "b", model("b/model.tar.gz")))),
        ["2 model", "keep one"],
    ),
    "model of a multi-instance processing rule": (
        dict(
            resources={"job_type": "processing", "spot": 0, "instance_count": 2},
            outputs=(io("", "m", model("m/model.tar.gz")),),
        ),
        ["model(...)", "instance_count=2", "job_type='training'", "instance_count=1"],
    ),
    "directory output": (
        dict(outputs=(io("outdir", directory=True),)),
        ["'outdir'", "output_data"],
    ),
    "missing script": (
        dict(body="script", script="code/nope.py"),
        ["'code/nope.py'", "relative to the Snakefile"],
    ),
    "script of another language": (
        dict(body="script", script="code/x.R"),
        ["'code/x.R'", ".py or .sh"],
    ),
    # --- issue 12.3 / 7.3: what SageMaker would refuse, or what would silently mean else
    "instance type with a typo in the size": (
        dict(resources={"instance_type": "ml.m5.xlage"}),
        ["'ml.m5.xlage'", "did you mean 'ml.m5.xlarge'"],
    ),
    "image_uri without a registry": (
        sm(image_uri="pytorch:2.8"),
        ["'pytorch:2.8'", "<registry>/<repository>:<tag>"],
    ),
    "image_uri with a scheme": (
        sm(image_uri="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/img:1"),
        ["'https://", "<registry>/<repository>:<tag>"],
    ),
    "image_uri longer than 255": (
        sm(image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/" + "a" * 250),
        ["at most 255 characters"],
    ),
    "metric regex that does not compile": (
        sm(metric_definitions={"loss": "loss=(.*"}),
        ["'loss=(.*'", "does not compile", "loss=([0-9.eE+-]+)"],
    ),
    "metric regex without a group": (
        sm(metric_definitions={"loss": "loss=.*"}),
        ["'loss=.*'", "captures nothing", "first group"],
    ),
    "metrics on a processing rule": (
        dict(
            resources={"job_type": "processing"},
            params=(("sm", job(metric_definitions={"loss": "loss=(.*)"})),),
        ),
        ["metric_definitions", "processing jobs have no metrics", "job_type='training'"],
    ),
    "more than 40 metrics": (
        sm(metric_definitions={f"m{i}": f"m{i}=(.*)" for i in range(41)}),
        ["41 metrics", "at most 40"],
    ),
    "tag key with the aws: prefix": (
        sm(tags={"aws:team": "ml"}),
        ["'aws:team'", "reserved prefix", "rename"],
    ),
    "tag key with AWS: in capitals": (sm(tags={"AWS:cost": "1"}), ["'AWS:cost'", "reserved"]),
    "tag value with the aws: prefix": (sm(tags={"team": "aws:ml"}), ["'aws:ml'", "reserved"]),
    "tag key with ssm_rules' own prefix": (
        sm(tags={"ssm-rules:rule": "x"}),
        ["'ssm-rules:rule'", "ssm_rules' own"],
    ),
    "48 user tags (51 with ssm_rules' three)": (
        sm(tags={f"t{i}": "v" for i in range(48)}),
        ["48 tags", "ssm_rules adds 3", "at most 47"],
    ),
    "tag key longer than 128": (sm(tags={"k" * 129: "v"}), ["'kkkk", "1-128"]),
    "tag value longer than 256": (sm(tags={"team": "v" * 257}), ["'vvvv", "at most 256"]),
    "tag key with a character SageMaker refuses": (
        sm(tags={"team#1": "ml"}),
        ["'team#1'", "letters, digits, spaces and _ . : / = + - @"],
    ),
    "max_wait beyond SageMaker's limit": (
        dict(resources={"max_wait_mins": 50000}),
        ["max_wait_mins=50000", "max_wait_mins<=40320"],
    ),
    "volume beyond the largest ML storage volume": (
        dict(resources={"volume_size_gb": 20000}),
        ["volume_size_gb=20000", "volume_size_gb<=16384"],
    ),
    "volume on an instance with fixed NVMe storage": (
        dict(resources={"instance_type": "ml.g5.xlarge", "volume_size_gb": 500}),
        ["volume_size_gb=500", "ml.g5.xlarge", "NVMe", "drop volume_size_gb"],
    ),
    "instance_count not a whole number": (
        dict(resources={"instance_count": 2.5}),
        ["instance_count=2.5", "whole number"],
    ),
    "instance_count '2.5' as a string": (
        dict(resources={"instance_count": "2.5"}),
        ["instance_count='2.5'", "whole number"],
    ),
    "unknown resource close to ours": (
        dict(resources={"instance_cont": 2}),
        ["instance_cont", "did you mean instance_count"],
    ),
    "unknown resource not close to ours": (
        dict(resources={"num_instances": 2}),
        ["num_instances=2", "no effect", "instance_count", "--resources num_instances=<limit>"],
    ),
    "local() on a job rule's input": (
        dict(inputs=(io("data/a.txt", "a", local=True),)),
        ["local('data/a.txt')", "local_input('data/a.txt')", "localrules"],
    ),
    "local() on a job rule's output": (
        dict(outputs=(io("out.txt", "o", local=True),)),
        ["local('out.txt')", "Drop local()", "localrules"],
    ),
    "python script with a syntax error": (
        dict(body="script", script="code/broken.py"),
        ["'code/broken.py'", "syntax error", "line 2", "fix the script"],
    ),
    "shell script with a syntax error": (
        dict(body="script", script="code/broken.sh"),
        ["'code/broken.sh'", "shell syntax error", "fix the script"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_clear_error(tmp_path, case):
    changes, fragments = BAD[case]
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "x.R").write_text("1")
    (tmp_path / "code" / "broken.py").write_text("import os\ndef main(:\n    pass\n")
    (tmp_path / "code" / "broken.sh").write_text("if true; then\n  echo hi\n")
    (tmp_path / "worker_toolkit").mkdir()
    with pytest.raises(SpecError) as err:
        spec_of(tmp_path, **changes)
    message = str(err.value)
    assert message.startswith("rule train:"), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not (tmp_path / ".ssm_rules").exists()


def test_script_outside_source_dir(tmp_path):
    _script(tmp_path)
    with pytest.raises(SpecError, match="outside source_dir") as err:
        spec_of(
            tmp_path,
            body="script",
            script="other/train.py",
            params=(("sm", job(source_dir="code")),),
        )
    assert "other/train.py" in str(err.value) and "move it into source_dir" in str(err.value)


def test_empty_local_input_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="empty directory"):
        spec_of(tmp_path, inputs=(io("", "d", local_input("empty")),))


def test_aws_backend_refuses_outputs_it_cannot_write(tmp_path):
    with pytest.raises(SpecError) as err:
        spec_of(tmp_path, backend="aws", outputs=(io("plain/out.txt"),))
    assert "'plain/out.txt'" in str(err.value) and "default storage provider" in str(err.value)


def test_helpers_refuse_wrong_suffixes():
    with pytest.raises(ValueError, match="must end with '.tar.gz'"):
        model("runs/model.zip")
    with pytest.raises(ValueError, match="must end with '.json'"):
        state("runs/state")
