"""What ssm_rules reads off a Snakemake job, as plain frozen data.

Everything downstream (spec, requests, staging) works from a :class:`JobView`, so it is
testable without a running workflow and the Snakemake attributes we rely on are listed in
one place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssm_rules._snakemake_internals import (
    file_flags,
    job_params,
    job_wildcards,
    named_items,
    preemptible_retries,
    producer_flags,
    rule_body,
    storage_uri,
)
from ssm_rules.rules import ARTIFACT_FLAG


@dataclass(frozen=True)
class IOItem:
    name: str | None  # the input/output name in the rule, None when unnamed
    path: str  # as Snakemake shows it (for storage files: the local copy's path)
    flags: Mapping[str, Any] = field(default_factory=dict)
    storage_uri: str | None = None  # s3://... when the file is a storage object
    is_directory: bool = False
    producer: str | None = None  # the rule whose output this input is (chaining), if any
    producer_kind: str | None = None  # that output's artifact kind (model, state, ...), if any


@dataclass(frozen=True)
class JobView:
    rule: str
    jobid: int
    wildcards: Mapping[str, str]
    inputs: tuple[IOItem, ...]
    outputs: tuple[IOItem, ...]
    logs: tuple[IOItem, ...]
    params: tuple[tuple[str | None, Any], ...]
    resources: Mapping[str, Any]
    body: str  # "shell" | "script" | "run" | "notebook" | "wrapper" | "cwl" | "none"
    shell_template: str | None
    script: str | None  # as written in the rule (relative to the Snakefile's directory)
    snakefile_dir: Path
    workdir: Path
    format: Callable[..., str] = field(compare=False, repr=False)
    preemptible_retries: int | None = None  # Snakemake's --preemptible-retries for this rule


def _io(
    name: str | None, f: Any, produced: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None
) -> IOItem:
    flags = file_flags(f)
    producer, producer_out_flags = (produced or {}).get(str(f), (None, {}))
    return IOItem(
        name=name,
        path=str(f),
        flags=flags,
        storage_uri=storage_uri(f),
        is_directory=bool(flags.get("directory")) or os.path.isdir(str(f)),
        producer=producer,
        producer_kind=producer_out_flags.get(ARTIFACT_FLAG),
    )


def view_of(job: Any) -> JobView:
    """Read a Snakemake (single, non-group) job."""
    rule = job.rule
    body = rule_body(job)
    produced = producer_flags(job)
    return JobView(
        rule=rule.name,
        jobid=job.jobid,
        wildcards=job_wildcards(job),
        inputs=tuple(_io(n, f, produced) for n, f in named_items(job.input)),
        outputs=tuple(_io(n, f) for n, f in named_items(job.output)),
        logs=tuple(_io(n, f) for n, f in named_items(job.log)),
        params=job_params(job),
        resources={k: v for k, v in job.resources.items()},
        body=body.kind,
        shell_template=body.shell_template,
        script=body.script,
        snakefile_dir=Path(rule.snakefile).parent.resolve(),
        workdir=Path.cwd(),
        format=job.format_wildcards,
        preemptible_retries=preemptible_retries(job),
    )
