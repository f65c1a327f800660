"""A group's one job, built from its members' specs (ssm_rules.group): pure functions, no run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssm_rules.backends.base import JobType, LogEvent
from ssm_rules.group import group_spec
from ssm_rules.identity import identity
from ssm_rules.logs import log_texts, member_parts
from ssm_rules.requests import Placement, build_request, task_description
from ssm_rules.rules import local_input, model, state
from ssm_rules.spec import SpecError, TaskSpec, build_spec
from tests.jobviews import io, view
from worker_toolkit import contract as C
from worker_toolkit.task import GROUP_TASK_VERSION, GroupTaskDescription, parse_task


def spec(tmp_path: Path, rule: str, **changes: object) -> TaskSpec:
    return build_spec(
        view(tmp_path, rule=rule, **changes), backend="local", default_instance_type="ml.m5.large"
    )


def chain(tmp_path: Path, **c_changes: object) -> list[TaskSpec]:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "in.txt").write_text("x")
    a = spec(
        tmp_path,
        "a",
        inputs=(io("", "data", local_input("data/in.txt")),),
        outputs=(io("out/a.txt"),),
        logs=(io("logs/a.log"),),
        params=(("lr", 0.1),),
    )
    b = spec(
        tmp_path,
        "b",
        inputs=(io("out/a.txt"),),
        outputs=(io("", "model", model("out/b/model.tar.gz")),),
        logs=(io("logs/b.log"),),
        resources={"max_run_mins": 30, "spot": 0},
    )
    c_changes = {"outputs": (io("out/c.txt"),), **c_changes}
    c = spec(
        tmp_path,
        "c",
        inputs=(io("", "m", model("out/b/model.tar.gz")), io("", "data", local_input("data"))),
        **c_changes,
    )
    return [a, b, c]


def test_the_group_job_holds_the_outside_inputs_and_every_members_outputs(tmp_path: Path) -> None:
    g = group_spec("g", chain(tmp_path))
    assert g.kind == "group" and g.label == "group g"
    # inputs from outside are channels, named per member; inputs made inside are not
    assert [ch.name for ch in g.channels] == ["ssm_0_data", "ssm_2_data"]
    assert g.channels[0].job_path == "/opt/ml/input/data/ssm_0_data/in.txt"
    assert [o.uri.rsplit("/", 2)[-2:] for o in g.outputs] == [
        ["out", "a.txt"],
        ["b", "model.tar.gz"],
        ["out", "c.txt"],
    ]
    a, b, c = g.members
    assert [link.path for link in a.links] == ["/opt/ml/input/data/data"]
    assert [(h.how, h.source, h.target) for h in b.handoffs] == [
        ("copy", "/opt/ml/output/ssm_files/out/a.txt", "/opt/ml/input/data/in0/a.txt")
    ]
    assert [(h.how, h.source) for h in c.handoffs] == [("tar", "/opt/ml/model")]
    assert len(c.links) == 1  # its local input from outside
    # run limit: the members' together; on-demand because b asked for it; one code dir each
    assert g.instance.max_run_seconds == (24 * 60 + 30 + 24 * 60) * 60
    assert not g.instance.spot and g.instance.max_wait_seconds is None
    assert g.logs == tuple(s.logs[0] for s in (a.spec, b.spec)) + c.spec.logs


def test_members_reading_the_same_data_share_one_channel(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("x")
    a, b = (
        spec(
            tmp_path,
            rule,
            inputs=(io("", name, local_input("data/in.txt")),),
            outputs=(io(f"out/{rule}.txt"),),
        )
        for rule, name in (("a", "data"), ("b", "table"))
    )
    g = group_spec("g", [a, b])
    assert [ch.name for ch in g.channels] == ["ssm_0_data"]
    assert [(link.path, link.target) for m in g.members for link in m.links] == [
        ("/opt/ml/input/data/data", "/opt/ml/input/data/ssm_0_data"),
        ("/opt/ml/input/data/table", "/opt/ml/input/data/ssm_0_data"),
    ]


def test_the_group_request_carries_its_task_as_a_file_not_a_hyperparameter(tmp_path: Path) -> None:
    g = group_spec("g", chain(tmp_path))
    place = Placement(
        job_name="g-1",
        code_uri="s3://b/code.tar.gz",
        channel_uris={ch.name: f"s3://b/{ch.name}/" for ch in g.channels},
        jobs_uri="s3://b/jobs",
        image_uri="img",
        role_arn="arn:aws:iam::123456789012:role/r",
        region="us-east-1",
    )
    body = build_request(g, place).body
    assert C.HP_TASK not in body["HyperParameters"]
    assert [c["ChannelName"] for c in body["InputDataConfig"]][-1] == C.TRAINING_TASK_CHANNEL
    assert body["InputDataConfig"][-1]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://b/jobs/g-1/task.json"
    )
    description = task_description(g)
    assert isinstance(description, GroupTaskDescription)
    assert parse_task(json.loads(description.to_json())) == description  # what the launcher reads
    task = json.loads(description.to_json())
    assert task["version"] == GROUP_TASK_VERSION and task["kind"] == "group"
    assert all("version" not in m for m in task["members"])  # the group's says it
    assert [m["rule"] for m in task["members"]] == ["a", "b", "c"]
    assert task["members"][0]["hps"] == {"lr": 0.1}
    assert task["members"][0]["channels"] == {"data": "/opt/ml/input/data/data"}
    assert description.model and not description.output_data and "output_data" not in task


def test_the_identity_covers_every_member(tmp_path: Path) -> None:
    first = group_spec("g", chain(tmp_path))
    other = group_spec("g", chain(tmp_path, params=(("times", 4),)))  # c's param only
    assert identity(first, "code", {}) != identity(other, "code", {})
    assert identity(first, "code", {}) == identity(group_spec("g", chain(tmp_path)), "code", {})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"resources": {"instance_type": "ml.c5.xlarge"}}, "must agree on instance_type"),
        ({"resources": {"instance_count": 2}}, "must agree on instance_count"),
        ({"resources": {"job_type": "processing"}}, "must agree on job_type"),
        (
            {"outputs": (io("", "model", model("out/c/model.tar.gz")),)},
            "rule b and rule c both declare a model(...) output",
        ),
    ],
)
def test_members_that_cannot_share_one_job_are_refused(
    tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    with pytest.raises(SpecError, match="^group g: ") as refused:
        group_spec("g", chain(tmp_path, **changes))
    assert expected in str(refused.value)


def test_the_group_keeps_the_warm_pool_its_members_agree_on(tmp_path: Path) -> None:
    """One job keeps one warm pool: the keep_alive_mins its members give must agree."""

    def member(rule: str, **resources: object) -> TaskSpec:
        return spec(tmp_path, rule, outputs=(io(f"out/{rule}.txt"),), resources=resources)

    told = [member("a", spot=0, keep_alive_mins=10), member("b", spot=0)]
    assert group_spec("g", told).instance.keep_alive_mins == 10
    assert group_spec("g", told[1:]).instance.keep_alive_mins is None  # the run's plan decides
    with pytest.raises(SpecError, match="must agree on resources keep_alive_mins") as refused:
        group_spec("g", [*told, member("c", spot=0, keep_alive_mins=3)])
    assert "rule a: 10, rule c: 3" in str(refused.value)


def test_outputs_of_one_instance_are_not_handed_over_on_several(tmp_path: Path) -> None:
    two = {"instance_count": 2}
    a = spec(tmp_path, "a", outputs=(io("out/a.txt"),), resources=two)
    b = spec(tmp_path, "b", inputs=(io("out/a.txt"),), outputs=(io("out/b.txt"),), resources=two)
    c = spec(tmp_path, "c", outputs=(io("out/c.txt"),), resources=two)
    assert group_spec("g", [a, c]).instance.count == 2  # independent members: one job
    with pytest.raises(SpecError, match="instance_count=2: inside one job an output is only"):
        group_spec("g", [a, b])


def test_two_members_states_are_refused(tmp_path: Path) -> None:
    a = spec(tmp_path, "a", outputs=(io("", "s", state("runs/a/state.json")),))
    b = spec(tmp_path, "b", outputs=(io("", "s", state("runs/b/state.json")),))
    with pytest.raises(SpecError, match="both declare a state"):
        group_spec("g", [a, b])


def test_different_requirements_are_refused(tmp_path: Path) -> None:
    for name, req in (("one", "numpy\n"), ("two", "pandas\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "requirements.txt").write_text(req)
        (tmp_path / name / "run.py").write_text("")
    a, b = (
        spec(
            tmp_path,
            rule,
            body="script",
            script=f"{rule}/run.py",
            shell_template=None,
        )
        for rule in ("one", "two")
    )
    with pytest.raises(SpecError, match="different requirements.txt files"):
        group_spec("g", [a, b])


def test_the_log_is_split_at_each_members_start_on_every_stream(tmp_path: Path) -> None:
    mark = C.GROUP_MEMBER_MARK

    def ev(stream: str, message: str) -> LogEvent:
        return LogEvent(stream, message)

    events = [
        ev("h1", "toolkit starts"),
        ev("h1", f"{mark}1/2: rule a"),
        ev("h2", f"{mark}1/2: rule a"),
        ev("h1", "a says"),
        ev("h1", f"{mark}2/2: rule b"),
        ev("h2", "a says on h2"),
        ev("h1", "b says"),
    ]
    first, second = member_parts(events, 2)
    assert [e.message for e in first] == [
        "toolkit starts",
        f"{mark}1/2: rule a",
        f"{mark}1/2: rule a",
        "a says",
        "a says on h2",
    ]
    assert [e.message for e in second] == [f"{mark}2/2: rule b", "b says"]
    a = spec(tmp_path, "a", logs=(io("logs/a.log"),), outputs=(io("a.txt"),))
    b = spec(tmp_path, "b", logs=(io("logs/b.log"),), outputs=(io("b.txt"),))
    texts = log_texts(group_spec("g", [a, b]), "g-1", events)
    assert [uri.rsplit("/", 1)[-1] for uri in texts] == ["a.log", "b.log"]
    assert "b says" in texts[b.logs[0]] and "b says" not in texts[a.logs[0]]


def test_a_processing_group_keeps_its_inputs_under_processing(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("x")
    processing = {"job_type": "processing"}
    a = spec(
        tmp_path,
        "a",
        inputs=(io("", "data", local_input("data/in.txt")),),
        outputs=(io("out/a.txt"),),
        resources=processing,
    )
    b = spec(tmp_path, "b", inputs=(io("out/a.txt"),), outputs=(io("b.txt"),), resources=processing)
    g = group_spec("g", [a, b])
    assert g.job_type is JobType.PROCESSING
    assert g.channels[0].job_path == "/opt/ml/processing/input/ssm_0_data/in.txt"
    assert g.members[1].handoffs[0].source == "/opt/ml/processing/ssm_files/out/a.txt"
    place = Placement("g-1", "s3://b/c", {"ssm_0_data": "s3://b/d/"}, "s3://b/j", "i", "r", "x")
    inputs = build_request(g, place).body["ProcessingInputs"]
    assert [i["InputName"] for i in inputs] == ["code", "ssm_task", "ssm_0_data"]


def test_group_components_put_one_rules_jobs_in_one_job(tmp_path: Path) -> None:
    """--group-components g=2: Snakemake hands two chains of the same rules as one group."""
    (tmp_path / "data").mkdir()
    for s in "xy":
        (tmp_path / "data" / f"{s}.txt").write_text(s)
    a_x, a_y = (
        spec(
            tmp_path,
            "a",
            wildcards={"s": s},
            inputs=(io("", "data", local_input(f"data/{s}.txt")),),
            outputs=(io(f"out/{s}.txt"),),
        )
        for s in "xy"
    )
    g = group_spec("g", [a_x, a_y])
    assert [ch.name for ch in g.channels] == ["ssm_0_data", "ssm_1_data"]
    assert g.wildcards == (("s", "x"), ("s", "y"))
    assert g.task_id != group_spec("g", [a_y, a_x]).task_id != a_x.task_id
    with_models = [
        spec(tmp_path, "t", wildcards={"s": s}, outputs=(io("", "m", model(f"m/{s}.tar.gz")),))
        for s in "xy"
    ]
    with pytest.raises(SpecError, match=r"rule t \(s=x\) and rule t \(s=y\) both declare a model"):
        group_spec("g", with_models)
