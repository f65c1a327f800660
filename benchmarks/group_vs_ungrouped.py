"""A 5-rule chain as one ``group:`` (one SageMaker job) vs the same rules ungrouped (5 jobs),
on the local backend with a simulated cold start.

Run from the repository root (no AWS needed)::

    .venv/bin/python benchmarks/group_vs_ungrouped.py [cold start seconds, default 5]

A real SageMaker job spends minutes starting (instances, image pull) before its program runs;
the local backend starts at once. ``SSM_LOCAL_COLD_START_SECONDS`` makes each local job wait
that long in Starting (ssm_rules/backends/local/runner.py), so that what a group saves shows:
ungrouped, every rule pays the start-up; grouped, the chain pays it once. Both runs go side by
side in this one process, each in a fresh copy of the workflow; the figures are the wall time
of each ``snakemake`` run, the number of jobs it made, and the ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RULES = 5


def snakefile(grouped: bool) -> str:
    rules = [f'rule all:\n    input: "out/r{RULES - 1}.txt"\n']
    for i in range(RULES):
        source = f'"out/r{i - 1}.txt"' if i else 'local_input("data/in.txt")'
        group = '    group: "chain"\n' if grouped else ""
        rules.append(
            f'rule r{i}:\n    input: {source}\n    output: "out/r{i}.txt"\n{group}'
            '    shell: "cat {input} > {output}; echo r' + str(i) + ' >> {output}"\n'
        )
    return "from ssm_rules import local_input\n\n" + "\n".join(rules)


def run(grouped: bool, cold_start: float, tmp: Path) -> tuple[float, int]:
    root = tmp / ("grouped" if grouped else "ungrouped")
    (root / "data").mkdir(parents=True)
    (root / "data" / "in.txt").write_text("in\n")
    (root / "Snakefile").write_text(snakefile(grouped))
    cmd = [sys.executable, "-m", "snakemake", "--executor", "sagemaker"]
    cmd += ["--sagemaker-backend", "local", "--jobs", "4"]
    cmd += ["--seconds-between-status-checks", "0", "--latency-wait", "1"]
    env = {
        **os.environ,
        "SSM_LOCAL_COLD_START_SECONDS": str(cold_start),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{done.stderr[-3000:]}")
    expected = "in\n" + "".join(f"r{i}\n" for i in range(RULES))
    assert (root / f"out/r{RULES - 1}.txt").read_text() == expected
    return seconds, len(list((root / ".ssm_rules" / "jobs").iterdir()))


def main() -> None:
    cold_start = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    with tempfile.TemporaryDirectory(prefix="ssm-bench-groups-") as tmp:
        ungrouped, ungrouped_jobs = run(False, cold_start, Path(tmp))
        grouped, grouped_jobs = run(True, cold_start, Path(tmp))
    print(f"{RULES}-rule chain, local backend, simulated cold start {cold_start:g} s per job")
    print(f"  ungrouped: {ungrouped:6.1f} s wall, {ungrouped_jobs} jobs")
    print(f"  grouped:   {grouped:6.1f} s wall, {grouped_jobs} job")
    print(f"  ungrouped / grouped: {ungrouped / grouped:.2f}x")


if __name__ == "__main__":
    main()
