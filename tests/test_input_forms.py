"""Input forms, as pure decisions: the producer's artifact kind, sharded lists, unpacked
tarballs, free arguments; the traps among them are clear errors before anything runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ssm_rules import manifest_file
from ssm_rules.requests import task_description
from ssm_rules.rules import job, local_input, model, output_data, sharded, state, unpacked
from ssm_rules.spec import SpecError
from tests.jobviews import io
from tests.test_spec import spec_of


def _files(tmp_path: Path, *names: str) -> None:
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_text(n)


def test_a_plain_input_takes_the_kind_of_the_producing_rules_output(tmp_path):
    st = replace(io("runs/train/state.json", "prev"), producer="train", producer_kind="state")
    s = spec_of(tmp_path, inputs=(st,))
    assert s.channels[0].is_prefix and s.channels[0].uri.endswith("/runs/train/state/")


def test_a_kind_that_contradicts_the_producer_is_refused(tmp_path):
    item = replace(
        io("", "m", model("runs/train/x.tar.gz")), producer="train", producer_kind="output_data"
    )
    with pytest.raises(SpecError, match=r"written as model\(\.\.\.\) but rule train produces"):
        spec_of(tmp_path, inputs=(item,))


def test_a_sharded_list_is_one_channel_of_parts(tmp_path):
    _files(tmp_path, "d/a.csv", "d/b.csv")
    items = tuple(
        io("", "data", f) for f in sharded([local_input("d/a.csv"), local_input("d/b.csv")])
    )
    s = spec_of(
        tmp_path,
        inputs=items + (io("other.txt"),),
        resources={"instance_count": 2},
        shell_template="ls {input.data} {input[1]}",  # the list is one entry
    )
    assert [c.name for c in s.channels] == ["data", "in2"]
    data = s.channels[0]
    assert data.sharded and len(data.parts) == 2 and data.job_path == "/opt/ml/input/data/data"
    assert s.command == "ls /opt/ml/input/data/data /opt/ml/input/data/in2/other.txt"


def test_unnamed_sharded_files_side_by_side_are_one_channel(tmp_path):
    _files(tmp_path, "a.csv", "b.csv")
    items = tuple(io("", None, f) for f in sharded([local_input("a.csv"), local_input("b.csv")]))
    s = spec_of(tmp_path, inputs=items, resources={"instance_count": 2})
    assert [c.name for c in s.channels] == ["in0"] and len(s.channels[0].parts) == 2


def test_one_sharded_file_on_several_instances_is_refused(tmp_path):
    _files(tmp_path, "a.csv")
    with pytest.raises(SpecError, match=r"sharded over instance_count=2 but is one file"):
        spec_of(
            tmp_path,
            inputs=(io("", "data", sharded(local_input("a.csv"))),),
            resources={"instance_count": 2},
        )


def test_a_sharded_directory_with_fewer_files_than_instances_is_refused(tmp_path):
    _files(tmp_path, "d/only.csv", "e/a.csv", "e/sub/b.csv")
    with pytest.raises(SpecError, match=r"d holds 1 file: instances 2\.\.2 would get no data"):
        spec_of(
            tmp_path,
            inputs=(io("", "data", sharded(local_input("d"))),),
            resources={"instance_count": 2},
        )
    for count in (2, 3):  # files in subdirectories count, as their keys do
        fits = count == 2
        try:
            spec_of(
                tmp_path,
                inputs=(io("", "data", sharded(local_input("e"))),),
                resources={"instance_count": count},
            )
            assert fits
        except SpecError as e:
            assert not fits and "lower instance_count to 2" in str(e)


def test_a_sharded_list_shorter_than_the_instances_is_refused(tmp_path):
    _files(tmp_path, "a.csv", "b.csv")
    items = tuple(io("", "data", f) for f in sharded([local_input("a.csv"), local_input("b.csv")]))
    with pytest.raises(SpecError, match=r"the list names 2 files: instances 3\.\.3 would get"):
        spec_of(tmp_path, inputs=items, resources={"instance_count": 3})


def test_a_list_mixing_local_and_storage_files_is_refused(tmp_path):
    _files(tmp_path, "a.csv")
    items = (
        io("", "data", sharded(local_input("a.csv"))),
        replace(io("", "data", sharded("b.csv")), storage_uri="s3://bkt/wf/b.csv"),
    )
    with pytest.raises(SpecError, match="local files and storage files"):
        spec_of(tmp_path, backend="aws", inputs=items, resources={"instance_count": 2})


def test_unpacked_tarball_has_its_own_directory_and_the_task_says_where(tmp_path):
    s = spec_of(
        tmp_path,
        inputs=(io("", "o", unpacked(output_data("runs/t/output.tar.gz"))),),
        shell_template="ls {input.o}",
    )
    ch = s.channels[0]
    assert ch.job_path == "/opt/ml/input/unpacked/o"
    assert ch.packed_path == "/opt/ml/input/data/o/output.tar.gz"
    assert s.command == "ls /opt/ml/input/unpacked/o"
    assert task_description(s).unpack == {"o": (ch.job_path, ch.packed_path)}


def test_unpacked_of_what_is_not_a_tarball_is_refused(tmp_path):
    with pytest.raises(SpecError, match=r"only a tarball can arrive unpacked"):
        spec_of(tmp_path, inputs=(io("", "s", unpacked(state("runs/t/state.json"))),))


def test_free_args_travel_in_the_task_and_a_shell_body_refuses_them(tmp_path):
    (tmp_path / "t.py").write_text("print(1)\n")
    opts = job(args='arg1 -arg2 --arg3 "argument 4"')
    assert opts.args == ("arg1", "-arg2", "--arg3", "argument 4")
    s = spec_of(tmp_path, body="script", script="t.py", shell_template=None, params=(("sm", opts),))
    assert task_description(s).args == ("arg1", "-arg2", "--arg3", "argument 4")
    with pytest.raises(SpecError, match=r"put the arguments in the command"):
        spec_of(tmp_path, params=(("sm", opts),))
    with pytest.raises(ValueError, match=r"is not a command-line argument"):
        job(args=[{"a": 1}])


def test_unused_new_options_keep_the_params_repr_so_nothing_reruns():
    assert "args" not in repr(job()) and '"args": ["x"]' in repr(job(args=["x"]))


def test_manifest_names_the_common_folder_and_keys_in_order():
    text = manifest_file.build(["s3://b/wf/data/b.csv", "s3://b/wf/data/sub/a.csv"])
    assert json.loads(text) == [{"prefix": "s3://b/wf/data/"}, "b.csv", "sub/a.csv"]
    assert manifest_file.parse(text) == ("s3://b/wf/data/", ["b.csv", "sub/a.csv"])
    with pytest.raises(manifest_file.ManifestError, match="2 buckets"):
        manifest_file.build(["s3://b1/a", "s3://b2/a"])
    with pytest.raises(manifest_file.ManifestError, match="a manifest is"):
        manifest_file.parse('{"prefix": "s3://b/"}')
