"""docs/in-job.md stays true: its recipes plan as written, its tables name what jobs get."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e import LOCAL_ARGS, REPO, Workflow, planned_rules
from tests.test_worker_toolkit import ORIGINAL_ENV, ORIGINAL_FIELDS

DOC = REPO / "docs" / "in-job.md"
HEADER = "from ssm_rules import model, output_data, state, sharded, local_input, job, extract\n"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow  # a snakemake run
def test_the_sweep_recipe_plans_one_job_per_combination(tmp_path: Path) -> None:
    sweep = next(b for b in _python_blocks(DOC.read_text()) if "expand(" in b)
    wf = Workflow(tmp_path)
    wf.write("Snakefile", HEADER + sweep)
    wf.write("data/train/a.txt", "a")
    wf.write("data/train/b.txt", "b")  # sharded over 2 instances: one each
    wf.write("code/train.py", "print('train')\n")
    proc = wf.run(*LOCAL_ARGS, "-n")
    assert planned_rules(proc.stdout) == {"all", "train"}
    assert proc.stdout.count("rule train:") == 4, proc.stdout[-3000:]


def test_every_variable_and_field_of_simple_sagemaker_is_documented() -> None:
    text = DOC.read_text()
    # SM_CHANNEL_DATA is documented as SM_CHANNEL_<NAME>
    names = [n for n in (*ORIGINAL_ENV, *ORIGINAL_FIELDS) if n != "SM_CHANNEL_DATA"]
    missing = [name for name in names if f"`{name}" not in text]
    assert not missing, missing
    assert "`SM_CHANNEL_<NAME>`" in text
