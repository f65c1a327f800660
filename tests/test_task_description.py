"""The task description: one typed, versioned structure written by the client, read by the launcher."""

from __future__ import annotations

import json

import pytest

from worker_toolkit.task import (
    GROUP_TASK_VERSION,
    TASK_VERSION,
    GroupTaskDescription,
    MemberTask,
    TaskDescription,
    TaskError,
    parse_task,
)


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


# --- version 2: a group's one job ------------------------------------------------------------
def _group() -> GroupTaskDescription:
    first = MemberTask.of(
        TaskDescription(kind="script", job_type="training", program="a.py", model=True),
        rule="a",
        label="a, lr=0.1",
        code_dir="ssm_members/0",
        hps={"lr": 0.1},
        env={"A": "1"},
        channels={"data": "/opt/ml/input/data/data"},
        links=(("/opt/ml/input/data/data", "/opt/ml/input/data/ssm_0_data"),),
    )
    second = MemberTask.of(
        TaskDescription(kind="shell", job_type="training", command="cat x > y"),
        rule="b",
        label="b",
        channels={"m": "/opt/ml/input/data/m"},
        handoffs=(("tar", "/opt/ml/model", "/opt/ml/input/data/m/model.tar.gz"),),
    )
    return GroupTaskDescription(
        group="g",
        job_type="training",
        members=(first, second),
        files={"/opt/ml/ssm_files/y": "y"},
        model=True,
    )


def test_a_group_description_survives_json_and_keeps_version_1_for_one_rule() -> None:
    group = _group()
    data = json.loads(group.to_json())
    assert data["version"] == GROUP_TASK_VERSION and data["kind"] == "group"
    assert all("version" not in m for m in data["members"])  # the group's version says it
    assert data["members"][1]["handoffs"] == [
        ["tar", "/opt/ml/model", "/opt/ml/input/data/m/model.tar.gz"]
    ]
    assert GroupTaskDescription.from_json(group.to_json()) == group
    assert parse_task(data) == group
    one = TaskDescription(kind="shell", job_type="training", command="echo hi")
    assert parse_task(json.loads(one.to_json())) == one
    assert json.loads(one.to_json())["version"] == TASK_VERSION == 1


def _group_data(**changes: object) -> dict[str, object]:
    data = json.loads(_group().to_json())
    data.update(changes)
    return data


def _member_data(**changes: object) -> dict[str, object]:
    member = json.loads(_group().to_json())["members"][1]
    member.update(changes)
    return _group_data(members=[member])


@pytest.mark.parametrize(
    "data, message",
    [
        (_group_data(version=3), "version 3 is not one this launcher reads (it reads 1, 2)"),
        (_group_data(board=True), "version 2: unknown keys ['board']"),
        (_group_data(members=[]), "group g: its task needs a non-empty list of 'members'"),
        (_group_data(members={}), "'members' must be a JSON array"),
        (_group_data(kind="script"), "a group's task has kind 'group'"),
        ({"version": 2, "job_type": "training", "members": []}, "has no 'group'"),
        (_member_data(version=1), "member 1: a group member of the task description: unknown "),
        (_member_data(next_member="c"), "unknown keys ['next_member']"),
        (_member_data(rule=""), "member 1: a group member needs its 'rule'"),
        (_member_data(handoffs=[["move", "/a", "/b"]]), "a handoff must be [one of"),
        (_member_data(links=[["/a"]]), "a link must be [path, target]"),
        (_member_data(env={"A": 1}), "'env' must map names to strings"),
        (_member_data(job_type="processing"), "not of the job's type 'training'"),
        (_member_data(kind="run"), "task kind must be one of"),
    ],
)
def test_a_malformed_group_description_is_refused_by_name(data: object, message: str) -> None:
    with pytest.raises(TaskError) as info:
        parse_task(data)
    assert message in str(info.value)


def test_one_rules_reader_refuses_a_groups_description() -> None:
    with pytest.raises(TaskError, match="version 2 is a group's job"):
        TaskDescription.from_dict(json.loads(_group().to_json()))
    with pytest.raises(TaskError, match="version 1 is one rule's, not a group's"):
        GroupTaskDescription.from_dict({"version": 1, "kind": "shell"})
