"""JobViews built by hand, for spec/request tests that need no running workflow."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from snakemake.utils import format as sm_format

from ssm_rules.jobview import IOItem, JobView


def io(path: str, name: str | None = None, value: Any = None, **flags: Any) -> IOItem:
    """An input/output item; ``value`` is a path returned by a helper (model(...), ...)."""
    all_flags = dict(getattr(value, "flags", {}) or {})
    all_flags.update(flags)
    return IOItem(
        name=name,
        path=str(value) if value is not None else path,
        flags=all_flags,
        is_directory=bool(all_flags.get("directory")),
    )


def view(tmp_path: Path, **changes: Any) -> JobView:
    base = JobView(
        rule="train",
        jobid=1,
        wildcards={},
        inputs=(),
        outputs=(),
        logs=(),
        params=(),
        resources={},
        body="shell",
        shell_template="echo hello",
        script=None,
        snakefile_dir=tmp_path,
        workdir=tmp_path,
        format=lambda template, **kw: sm_format(template, **{"wildcards": {}, **kw}),
    )
    return replace(base, **changes)
