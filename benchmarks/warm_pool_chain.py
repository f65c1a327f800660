"""A chain of on-demand training jobs with warm pools and without, side by side.

Run from the repository root (starts the test suite's moto server, whose jobs really run
through the local backend; no AWS needed)::

    .venv/bin/python benchmarks/warm_pool_chain.py [N]

Two real ``snakemake`` runs of the same chain of N rules (default 4), each job on-demand
(``spot=0``) on one ml.m5.large: ``warm`` as ssm_rules plans it (each job keeps a pool for its
successor, the last one's is ended at once), ``cold`` with ``keep_alive_mins=0``. Printed:

- SageMaker calls by operation, per job: what the warm pools cost in API calls (status
  rounds, one ListTrainingJobs each, are left out: their number follows how long jobs run);
- pools reused (a job's WarmPoolStatus Reused, ReusedByJob its successor): start-ups saved
  on SageMaker (the local backend starts no faster on a pool, so no time is measured here);
- retained billable seconds per instance (the sum of WarmPoolStatus
  ResourceRetainedBillableTimeInSeconds), against what the same pools would be billed if the
  last one were left to run out its keep-alive instead of being ended.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import aws_args  # noqa: E402
from tests.moto_sagemaker import MotoServer  # noqa: E402

BUCKET = "ssm-bench-warm"


def snakefile(n: int, keep_alive: str) -> str:
    rules = [f"rule all:\n    input: 'r{n - 1}.txt'\n"]
    for i in range(n):
        inp = f"    input: 'r{i - 1}.txt'\n" if i else ""
        rules.append(
            f"rule r{i}:\n{inp}    output: 'r{i}.txt'\n"
            f"    resources: spot=0{keep_alive}\n    shell: 'echo {i} > {{output}}'\n"
        )
    return "\n".join(rules)


def run(server: MotoServer, work: Path, n: int, keep_alive: str) -> dict[str, Any]:
    server.reset()
    server.hook.reset(work / "jobs")
    server.client("s3").create_bucket(Bucket=BUCKET)
    server.calls.clear()
    wf = work / "wf"
    wf.mkdir(parents=True)
    (wf / "Snakefile").write_text(snakefile(n, keep_alive))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *aws_args(BUCKET)],
        cwd=wf,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{proc.stderr[-4000:]}")
    calls = server.calls.counts("sagemaker")
    sm = server.client("sagemaker")
    names = [
        json.loads(c.body)["TrainingJobName"]
        for c in server.calls.calls
        if c.operation == "CreateTrainingJob"
    ]
    pools = [sm.describe_training_job(TrainingJobName=n).get("WarmPoolStatus") or {} for n in names]
    keep = max(
        (json.loads(c.body)["ResourceConfig"].get("KeepAlivePeriodInSeconds", 0))
        for c in server.calls.calls
        if c.operation == "CreateTrainingJob"
    )
    retained = sum(p.get("ResourceRetainedBillableTimeInSeconds", 0) for p in pools)
    last = pools[-1].get("ResourceRetainedBillableTimeInSeconds", 0) if pools else 0
    return {
        "calls": calls,
        "reused": sum(1 for p in pools if p.get("Status") == "Reused"),
        "retained": retained,
        # the same pools, the last one left to run out its keep-alive
        "unended": retained - last + keep,
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        server = MotoServer(Path(tmp) / "server")
        server.start()
        os.environ.update(server.env())  # the hook's job runners are children of this process
        server.hook.install()
        try:
            warm = run(server, Path(tmp) / "warm", n, "")
            cold = run(server, Path(tmp) / "cold", n, ", keep_alive_mins=0")
        finally:
            server.stop()
    # status rounds (ListTrainingJobs) depend on how long the jobs run, not on warm pools
    rounds = "sagemaker.ListTrainingJobs"
    ops = sorted((set(warm["calls"]) | set(cold["calls"])) - {rounds})
    print(f"chain of {n} on-demand training jobs (ml.m5.large x 1), moto server")
    print(f"{'SageMaker calls per job':<40}{'warm':>8}{'cold':>8}")
    for op in ops:
        w, c = warm["calls"].get(op, 0) / n, cold["calls"].get(op, 0) / n
        print(f"  {op.removeprefix('sagemaker.'):<38}{w:>8.2f}{c:>8.2f}")
    total_w = sum(v for k, v in warm["calls"].items() if k != rounds) / n
    total_c = sum(v for k, v in cold["calls"].items() if k != rounds) / n
    print(
        f"  {'all but status rounds':<38}{total_w:>8.2f}{total_c:>8.2f}"
        f"   ratio {total_w / total_c:.2f}"
    )
    print(f"pools reused (start-ups saved):          {warm['reused']:>8}{cold['reused']:>8}")
    print(
        f"retained billable s per instance:        {warm['retained']:>8}{cold['retained']:>8}"
        f"   (last pool left to expire: {warm['unended']} s)"
    )


if __name__ == "__main__":
    main()
