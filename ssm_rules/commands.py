"""``python -m ssm_rules plan|status|report|stop|clean`` (also ``ssm-rules ...``).

All but ``plan`` read the run records this workflow directory's runs wrote
(``<local root>/runs/``, ssm_rules.runrecord) and ask the backend named in the record about
the jobs that had not ended: the record says which backend, region and staging prefix a run
used, so no profile is needed.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import Backend, JobState, JobType
from ssm_rules.backends.local.jobdir import CODE_CACHE
from ssm_rules.bill import bill_of
from ssm_rules.board import status_line, summary_line
from ssm_rules.report import bill_lines, cost_text, write_report
from ssm_rules.runrecord import RunRecord, latest, runs

DEFAULT_ROOT = ".ssm_rules"  # --sagemaker-local-root's default


def backend_of(record: RunRecord) -> Backend:
    if record.doc["backend"] == "local":
        from ssm_rules.backends.local.service import LocalBackend

        return LocalBackend(Path(record.doc["jobs_root"]))
    from ssm_rules.backends.aws.service import AwsBackend

    return AwsBackend.for_region(record.doc["region"])


def refresh(record: RunRecord, backend: Backend | None = None) -> list[str]:
    """Ask the backend about the record's jobs that had not ended; the record is updated.
    Returns what could not be asked (said, not raised: the record still shows what it has)."""
    unfinished = [(j["name"], JobType(j["job_type"])) for j in record.unfinished()]
    if not unfinished:
        return []
    try:
        statuses = (backend or backend_of(record)).poll(unfinished)
    except Exception as e:  # noqa: BLE001 — no credentials, no network: the record as it is
        return [f"could not ask the {record.doc['backend']} backend about the jobs: {e}"]
    for name, status in statuses.items():
        record.update_job(name, status)
    return []


def _root(args: argparse.Namespace) -> Path:
    return Path(args.directory) / args.local_root


def _record(args: argparse.Namespace) -> RunRecord | None:
    record = latest(_root(args), args.run_id)
    if record is None:
        what = f"run {args.run_id}" if args.run_id else "run"
        print(
            f"no {what} recorded under {_root(args) / 'runs'}: run the workflow with the "
            "sagemaker executor first (or pass --directory / --local-root)",
            file=sys.stderr,
        )
    return record


def job_lines(record: RunRecord, now: float) -> list[str]:
    bill = bill_of(record.doc, now)
    lines = []
    for job in bill.jobs:
        shown = job.secondary if job.secondary not in ("", job.state) else ""
        state = job.state + (f" ({shown})" if shown else "")
        elapsed = (job.ended or now) - job.created if job.created else None
        cost = cost_text(job.cost, job.instance_seconds)
        line = status_line(job.rule, job.wildcards, job.name, state, elapsed)
        lines.append(f"{line}, {'so far ' if job.running else ''}{cost}")
    lines.append(summary_line(bill, record.doc["backend"]))
    return lines


def _refreshed_record(args: argparse.Namespace) -> RunRecord | None:
    """The run asked about, its unfinished jobs asked of their backend (problems warned)."""
    record = _record(args)
    if record is not None:
        for problem in refresh(record):
            print(f"warning: {problem}", file=sys.stderr)
    return record


def status(args: argparse.Namespace) -> int:
    record = _refreshed_record(args)
    if record is None:
        return 1
    ended = record.doc.get("ended")
    alive = "running" if record.client_alive() else "its client is gone"
    print(f"run {record.run_id}: {'ended ' + ended if ended else 'not ended, ' + alive}")
    for line in job_lines(record, time.time()):
        print("  " + line)
    others = [r for r in _records(args) if r.run_id != record.run_id and r.unfinished()]
    for other in others:  # an earlier run's jobs still in flight cost money too
        refresh(other)
        for job in other.unfinished():
            print(f"  earlier run {other.run_id}: job {job['name']} {job.get('state')}")
    return 0


def report(args: argparse.Namespace) -> int:
    record = _refreshed_record(args)
    if record is None:
        return 1
    now = time.time()
    for line in bill_lines(record.doc, bill_of(record.doc, now)):
        print(line)
    html, png = write_report(record.path, record.doc, now)
    print(f"report: {html}\ntimeline: {png}\nrecord: {record.path}")
    return 0


def _records(args: argparse.Namespace) -> Iterator[RunRecord]:
    for path in runs(_root(args)):
        yield RunRecord.load(path)


def stop(args: argparse.Namespace) -> int:
    """Stop the jobs of earlier runs that are still running (their client is gone: killed,
    or detached with --sagemaker-detach). A run whose client still runs is left to it."""
    found = 0
    for record in _records(args):
        if not record.unfinished():
            continue
        if record.client_alive():
            names = ", ".join(j["name"] for j in record.unfinished())
            print(
                f"run {record.run_id} is still running (pid {record.doc['client']['pid']}): "
                f"left to it ({names}); interrupt it with Ctrl-C to stop its jobs"
            )
            continue
        backend = backend_of(record)
        for problem in refresh(record, backend):
            print(f"warning: run {record.run_id}: {problem}", file=sys.stderr)
        running = [
            (j["name"], JobType(j["job_type"]))
            for j in record.unfinished()
            if j.get("state") == JobState.IN_PROGRESS.value
        ]
        if not running:
            continue
        found += len(running)
        names = ", ".join(n for n, _ in running)
        if args.dry_run:
            print(f"would stop {len(running)} job(s) of run {record.run_id}: {names}")
            continue
        backend.stop(running)
        print(f"stopping {len(running)} job(s) of run {record.run_id}: {names}")
        refresh(record, backend)
    if not found:
        print("no job of an earlier run is still running")
    return 0


# --- clean -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stale:
    what: str  # shown to the user: a path or a URI
    size: int
    remove: Any  # () -> None


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _latest_mtime(path: Path) -> float:
    times = [path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*")]
    return max(times)


def local_stale(root: Path, cutoff: float, keep_jobs: set[str]) -> list[Stale]:
    """What under the local root is older than ``cutoff``: ended runs' records, ended local
    jobs (sandboxes and logs), staged objects (code, inputs, job outputs before promotion),
    and the extracted code bundles and bytecode of the code cache when no local job runs.
    Never the jobs still running, nor the requirements environments (jobs may be using
    them)."""
    stale: list[Stale] = []
    running = bool(keep_jobs)
    for record_path in runs(root):
        directory = record_path.parent
        record = RunRecord.load(record_path)
        if record.unfinished() or record.client_alive():
            continue
        if _latest_mtime(directory) < cutoff:
            stale.append(Stale(str(directory), _tree_size(directory), _rmtree(directory)))
    for jobdir in sorted((root / "jobs").glob("*/")):
        if jobdir.name in keep_jobs or not (jobdir / "status.json").is_file():
            continue
        if not _local_job_ended(jobdir):
            running = True
            continue
        if _latest_mtime(jobdir) < cutoff:
            stale.append(Stale(str(jobdir), _tree_size(jobdir), _rmtree(jobdir)))
    # a starting job copies its code out of the cache: emptied only while no job runs
    cache = root / CODE_CACHE
    for entry in sorted(cache.glob("*/*")) if cache.is_dir() and not running else []:
        if _latest_mtime(entry) < cutoff:
            remove = _rmtree(entry) if entry.is_dir() else entry.unlink
            stale.append(Stale(str(entry), _tree_size(entry), remove))
    store = root / "store"
    for path in sorted(store.rglob("*")) if store.is_dir() else []:
        rel = path.relative_to(store).parts
        if not path.is_file() or (len(rel) > 1 and rel[0] == "jobs" and rel[1] in keep_jobs):
            continue
        if path.stat().st_mtime < cutoff:
            stale.append(Stale(str(path), path.stat().st_size, path.unlink))
    return stale


def _local_job_ended(jobdir: Path) -> bool:
    import json

    doc = json.loads((jobdir / "status.json").read_text())
    value = doc.get("TrainingJobStatus") or doc.get("ProcessingJobStatus")
    return value in {s.value for s in JobState} and JobState(value).is_done


def _rmtree(path: Path) -> Any:
    return lambda: shutil.rmtree(path, ignore_errors=True)


def s3_stale(root_uri: str, region: str, cutoff: float, keep_jobs: set[str]) -> list[Stale]:
    """Objects under an aws run's staging prefix older than ``cutoff`` (LastModified),
    except the staged outputs of jobs still running."""
    from ssm_rules import aws_clients
    from ssm_rules.objects import ObjectURI

    uri = ObjectURI.parse(root_uri)
    s3 = aws_clients.client("s3", region)
    stale: list[Stale] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=uri.key):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(uri.key) :].split("/")
            if len(rel) > 1 and rel[0] == "jobs" and rel[1] in keep_jobs:
                continue
            if obj["LastModified"].timestamp() < cutoff:
                key = obj["Key"]
                stale.append(
                    Stale(
                        f"s3://{uri.bucket}/{key}",
                        obj.get("Size", 0),
                        lambda key=key: s3.delete_object(Bucket=uri.bucket, Key=key),
                    )
                )
    return stale


def clean(args: argparse.Namespace) -> int:
    if args.older_than < 0:
        print(
            f"error: --older-than {args.older_than}: write a number of days >= 0", file=sys.stderr
        )
        return 2
    root = _root(args)
    cutoff = time.time() - args.older_than * 86400
    records = list(_records(args))
    for record in records:  # what is still running must be known before anything goes
        if record.unfinished() and not record.client_alive():
            refresh(record)
    keep = {j["name"] for r in records for j in r.unfinished()}
    stale = local_stale(root, cutoff, keep) if root.is_dir() else []
    prefixes = {
        (r.doc["staging_root"], r.doc["region"]) for r in records if r.doc["backend"] == "aws"
    }
    for prefix, region in sorted(prefixes):
        try:
            stale += s3_stale(prefix, region, cutoff, keep)
        except Exception as e:  # noqa: BLE001 — say it; the local part is still cleaned
            print(f"warning: could not list {prefix}: {e}", file=sys.stderr)
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=args.older_than)
    size = sum(s.size for s in stale)
    verb = "removing" if args.yes else "would remove"
    print(
        f"{verb} {len(stale)} item(s), {size / 1e6:.1f} MB, last changed before "
        f"{when.strftime('%Y-%m-%d %H:%M UTC')}:"
    )
    for s in stale:
        print(f"  {s.what}")
    if not args.yes:
        if stale:
            print("nothing removed (a dry run): run again with --yes to remove them")
        return 0
    for s in stale:
        s.remove()
    return 0


def plan(args: argparse.Namespace) -> int:
    """``snakemake -n`` with this package's executor and logger: the SageMaker plan."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--executor", "sagemaker"]
    cmd += ["--logger", "sagemaker"]
    given = args.snakemake_args
    if not any(a == "--jobs" or a.startswith(("--jobs=", "-j")) for a in given):
        # Snakemake refuses a remote executor without --jobs, also under -n (where the
        # number does not matter)
        cmd += ["--jobs", "1"]
    cmd += given
    return subprocess.call(cmd)


def add_commands(commands: Any) -> None:
    """The subcommands, added to ``python -m ssm_rules``'s parser."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--directory", "-d", default=".", help="the workflow's directory")
        p.add_argument(
            "--local-root", default=DEFAULT_ROOT, help="--sagemaker-local-root of the runs"
        )

    p = commands.add_parser(
        "plan",
        help="the SageMaker plan: snakemake -n with the sagemaker executor",
        description="Run snakemake -n --executor sagemaker --logger sagemaker with the "
        "arguments given (e.g. --profile profiles/local, targets).",
    )
    # every other argument is snakemake's (parse_known_args in ssm_rules.__main__)
    p.set_defaults(run=plan, snakemake_args=[])

    p = commands.add_parser("status", help="the jobs of the last run (or in flight), cost so far")
    common(p)
    p.add_argument("--run", dest="run_id", help="a run id (default: the last run)")
    p.set_defaults(run=status)

    p = commands.add_parser("report", help="the bill of the last run: text, HTML and PNG")
    common(p)
    p.add_argument("--run", dest="run_id", help="a run id (default: the last run)")
    p.set_defaults(run=report)

    p = commands.add_parser("stop", help="stop the jobs of earlier runs that still run")
    common(p)
    p.add_argument("--dry-run", "-n", action="store_true", help="only list them")
    p.set_defaults(run=stop)

    p = commands.add_parser(
        "clean",
        help="remove local records and staged objects older than N days (a dry run first)",
        description="Lists what is older than --older-than days under the local root and the "
        "aws runs' staging prefixes; removes it only with --yes. Task state and rule outputs "
        "are never touched, nor anything of a job still running.",
    )
    common(p)
    p.add_argument("--older-than", type=float, default=7, help="days (default 7)")
    p.add_argument("--yes", action="store_true", help="remove what the dry run lists")
    p.set_defaults(run=clean)
