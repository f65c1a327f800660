"""The task description: one typed, versioned structure written by the client, read by the launcher."""

from __future__ import annotations

import json

import pytest

from worker_toolkit.task import TASK_VERSION, TaskDescription, TaskError


def _full() -> TaskDescription:
    return TaskDescription(
        kind="script",
        job_type="processing",
        program="train.py",
        files={"/opt/ml/processing/ssm_files/runs/m.json": "runs/m.json"},
        state_dir="/opt/ml/processing/state",
        model=True,
        output_data=True,
        inputs={"data": "/opt/ml/processing/input/data"},
        outputs={"metrics": "/opt/ml/processing/ssm_files/runs/m.json"},
        args=("--flag", "argument 2"),
        setup="export A=1",
        unpack={"o": ("/opt/ml/processing/unpacked/o", "/opt/ml/processing/input/o/x.tar.gz")},
        snakemake={"input": [["data", "/opt/ml/processing/input/data"]]},
        hps={"epochs": 3, "lr": 0.01},
        state_input="/opt/ml/processing/input/ssm_state",
    )


def test_every_field_survives_json() -> None:
    task = _full()
    assert TaskDescription.from_json(task.to_json()) == task
    assert json.loads(task.to_json())["version"] == TASK_VERSION


def test_empty_fields_are_left_out_of_the_json() -> None:
    """The training task travels in a hyperparameter of at most 2,500 characters."""
    task = TaskDescription(kind="shell", job_type="training", command="echo hi")
    assert json.loads(task.to_json()) == {
        "version": TASK_VERSION,
        "kind": "shell",
        "job_type": "training",
        "command": "echo hi",
    }


@pytest.mark.parametrize(
    "data, message",
    [
        ({"kind": "shell", "job_type": "training", "command": "x"}, "version None is not one"),
        ({"version": 99, "kind": "shell", "job_type": "training"}, "version 99 is not one"),
        (
            {
                "version": TASK_VERSION,
                "kind": "shell",
                "job_type": "training",
                "command": "x",
                "members": [],
            },
            "unknown keys ['members']",
        ),
        ({"version": TASK_VERSION, "kind": "shell", "command": "x"}, "has no 'job_type'"),
        (
            {"version": TASK_VERSION, "kind": "run", "job_type": "training"},
            "task kind must be one of",
        ),
        (
            {"version": TASK_VERSION, "kind": "script", "job_type": "training"},
            "needs a non-empty 'program'",
        ),
        (
            {"version": TASK_VERSION, "kind": "shell", "job_type": "batch", "command": "x"},
            "job_type must be one of",
        ),
        (
            {
                "version": TASK_VERSION,
                "kind": "shell",
                "job_type": "training",
                "command": "x",
                "files": [],
            },
            "'files' must be a JSON object",
        ),
        (
            {
                "version": TASK_VERSION,
                "kind": "shell",
                "job_type": "training",
                "command": "x",
                "args": "a b",
            },
            "'args' must be a JSON array",
        ),
        (
            {
                "version": TASK_VERSION,
                "kind": "shell",
                "job_type": "training",
                "command": "x",
                "unpack": {"o": ["a"]},
            },
            "'unpack' of 'o' must be [extracted, tarball]",
        ),
        (
            {
                "version": TASK_VERSION,
                "kind": "shell",
                "job_type": "training",
                "command": "x",
                "model": "yes",
            },
            "'model' must be true or false",
        ),
        (
            {
                "version": TASK_VERSION,
                "kind": "shell",
                "job_type": "training",
                "command": "x",
                "state_dir": 1,
            },
            "'state_dir' must be a path",
        ),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_malformed_or_foreign_description_is_refused_by_name(data: object, message: str) -> None:
    with pytest.raises(TaskError) as info:
        TaskDescription.from_dict(data)
    assert message in str(info.value)


def test_not_json_is_refused() -> None:
    with pytest.raises(TaskError, match="is not JSON"):
        TaskDescription.from_json("kind=script")
