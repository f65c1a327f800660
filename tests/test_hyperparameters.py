"""Hyperparameters as SageMaker hands them to a program: one copy (worker_toolkit.hyperparameters)
for the in-job launcher, WorkerConfig and the local backend's training toolkit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssm_rules.backends.local import toolkit
from ssm_rules.backends.local.sandbox import Sandbox
from ssm_rules.requests import build_request, task_description
from ssm_rules.spec import build_spec
from tests.jobviews import view
from tests.test_requests import place
from worker_toolkit import contract as c
from worker_toolkit import hyperparameters as hp
from worker_toolkit.launcher import load_task


@pytest.mark.parametrize(
    "mapping, args",
    [
        (
            {"b": True, "a": "x y", "c": {"k": 1, "j": "v"}, "d": None},
            ["-a", "x y", "-b", "True", "-c", "j=v,k=1", "-d", ""],
        ),
        (
            {"epochs": 3, "lr": 0.01, "layers": [1, 2]},
            ["--epochs", "3", "--layers", "[1, 2]", "--lr", "0.01"],
        ),
        ({"": "v"}, ["", "v"]),  # an empty key gives an empty name, as mapping.to_cmd_args
        ({"n": b"\xe9"}, ["-n", "\xe9"]),  # bytes are latin-1
    ],
)
def test_command_line_is_the_training_toolkits(mapping: dict[str, Any], args: list[str]) -> None:
    assert hp.to_cmd_args(mapping) == args


def test_values_decode_as_read_hyperparameters_does() -> None:
    raw = {"n": "1", "s": '"a"', "plain": "a", "l": "[1, 2]", "b": "true", "x": 3}
    assert hp.decode(raw) == {"n": 1, "s": "a", "plain": "a", "l": [1, 2], "b": True, "x": 3}


def test_the_toolkits_own_keys_are_split_off() -> None:
    sm, user = hp.split_sagemaker(
        {"sagemaker_program": "p", "_tuning_objective_metric": "m", "sagemaker_x": 1, "lr": 2}
    )
    assert set(sm) == {"sagemaker_program", "_tuning_objective_metric", "sagemaker_x"}
    assert user == {"lr": 2}
    assert hp.user_hps({"ssm_task": "{}", "sagemaker_region": "r", "lr": 2}) == {"lr": 2}


def test_env_values_are_to_env_vars() -> None:
    assert [hp.env_value(v) for v in ("a b", None, {"b": 1, "a": [1]}, 0.5, True)] == [
        "a b", "", '{"a":[1],"b":1}', "0.5", "true",
    ]  # fmt: skip


PARAMS = (
    ("epochs", 3),
    ("lr", 0.01),
    ("name", "a b"),
    ("flag", True),
    ("cfg", {"k": 1, "j": "v"}),
    ("items", [1, "two"]),
    ("number_as_text", "0.5"),
    ("nothing", None),
    ("e", "é"),
)


def test_a_script_gets_the_same_command_line_in_training_and_processing_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training: the request's JSON-encoded HyperParameters, read by the toolkit (here the local
    backend's), passed to the launcher. Processing (no toolkit): the task description's
    hyperparameters, formatted by the launcher. The script cannot tell them apart."""
    (tmp_path / "t.py").write_text("print(1)\n")
    expected = [
        "--cfg", "j=v,k=1", "-e", "é", "--epochs", "3", "--flag", "True", "--items", "[1, 'two']",
        "--lr", "0.01", "--name", "a b", "--nothing", "", "--number_as_text", "0.5",
    ]  # fmt: skip
    root = tmp_path / "optml"

    def spec(job_type: str):  # noqa: ANN202
        changes = dict(body="script", script="t.py", shell_template=None, params=PARAMS)
        resources = {"job_type": job_type, "spot": 0}
        return build_spec(
            view(tmp_path, resources=resources, **changes),
            backend="local",
            default_instance_type="ml.m5.large",
        )

    body = build_request(spec("training"), place()).body
    plan = toolkit.plan(body, Sandbox(tmp_path / "h", "algo-1", 0, False), ["algo-1"], 2)
    launcher_argv = plan.argv[plan.argv.index(c.LAUNCHER_PROGRAM) + 1 :]
    _, training_args = load_task(launcher_argv, str(root))
    assert training_args == expected

    task_file = root / c.PROCESSING_TASK_DIR.removeprefix(c.OPT_ML + "/") / c.TASK_FILE_NAME
    task_file.parent.mkdir(parents=True)
    task_file.write_text(task_description(spec("processing")).to_json())
    monkeypatch.setenv(c.ENV_OPT_ML_ROOT, str(root))
    _, processing_args = load_task([], str(root))
    assert processing_args == expected
    assert json.loads(task_file.read_text())["hps"]["e"] == "é"
