"""Time before the first job of a 1,000-job plan, against plain ``snakemake -n`` of it.

Run from the repository root (local backend: no AWS needed)::

    .venv/bin/python benchmarks/plan_time.py [jobs]

One Snakefile of ``jobs`` (default 1,000) training jobs on a framework image, timed side by
side in one run, each a fresh ``snakemake`` process:

- ``snakemake -n``: plain Snakemake's dry run (no executor, no logger plugin): the DAG alone;
- ``plan (-n, sagemaker)``: the dry run with the sagemaker executor and logger plugin, which
  checks every job and prints the plan;
- ``first Create``: a real run (``--jobs 1``), until the local backend holds the first job
  (its Create*Job request); the client is then interrupted (Ctrl-C stops the job);

the last two with an empty image-URI cache (``cold``: sagemaker-core imported to resolve the
image) and with the cache the cold run filled (``warm``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = """
from ssm_rules import job

rule all:
    input: expand("out/{i}.txt", i=range(N))

rule work:
    output: "out/{i}.txt"
    params: sagemaker=job(framework="pytorch")
    resources: spot=0
    shell: "echo {wildcards.i} > {output}"
"""
SAGEMAKER = (
    *("--executor", "sagemaker", "--sagemaker-backend", "local", "--logger", "sagemaker"),
    *("--jobs", "1"),
)


def snakemake(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--cores", "1", *args]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.monotonic() - started


def until_first_job(cwd: Path, env: dict[str, str]) -> float:
    jobs = cwd / ".ssm_rules" / "jobs"
    started = time.monotonic()
    proc = subprocess.Popen(
        snakemake(*SAGEMAKER),
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not (jobs.is_dir() and any(jobs.iterdir())):
            if proc.poll() is not None:
                raise RuntimeError(f"snakemake exited {proc.returncode} before any job")
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the job is stopped, the client returns
        proc.wait(timeout=120)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wf, cache = root / "wf", root / "cache"
        wf.mkdir()
        (wf / "Snakefile").write_text(SNAKEFILE.replace("N", str(n)))
        # a PYTHONPATH given first: the same figures for another checkout's ssm_rules
        path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
        env = {**os.environ, "PYTHONPATH": path, "XDG_CACHE_HOME": str(cache)}
        plain = timed(snakemake("-n"), wf, env)
        rows = [("snakemake -n", plain)]
        for label in ("cold", "warm"):
            if label == "cold":
                shutil.rmtree(cache, ignore_errors=True)
            rows.append(
                (f"plan (-n, sagemaker), {label}", timed(snakemake("-n", *SAGEMAKER), wf, env))
            )
            if label == "cold":
                shutil.rmtree(cache, ignore_errors=True)
            rows.append((f"first Create, {label}", until_first_job(wf, env)))
            shutil.rmtree(wf / ".ssm_rules", ignore_errors=True)
            shutil.rmtree(wf / ".snakemake", ignore_errors=True)
    print(f"{n} jobs")
    print(f"{'':<30} {'seconds':>8} {'x snakemake -n':>15} {'ms per job':>11}")
    for label, seconds in rows:
        print(f"{label:<30} {seconds:>8.2f} {seconds / plain:>15.2f} {1000 * seconds / n:>11.1f}")


if __name__ == "__main__":
    main()
