"""Per-job overhead of the local backend over plain Snakemake, serial and parallel.

Run from the repository root (no AWS, no Docker)::

    .venv/bin/python benchmarks/local_overhead.py [--jobs 20] [--rounds 1]

The same Snakefile of no-op ``shell:`` rules runs side by side in one run: with plain
Snakemake (``--cores``: each job a local shell) and with ``profiles/local``, as a user runs
it (each job a local SageMaker training job: a runner, its /opt/ml sandbox, the launcher,
the outputs promoted). ``serial`` chains the jobs (each needs the one before), ``parallel``
makes them independent (``--jobs 4``). The figure of interest is the overhead per job,
(ours - plain) / N: it includes learning of each job's end and submitting the next.

Every run shares one cache directory (``XDG_CACHE_HOME``), warmed first by a dry run, as
a user's ``~/.cache/ssm_rules`` is after a first run: resolving a framework's image URI
imports the SageMaker SDK (seconds), once per machine and image, not per run. The two dry
runs before the measured ones, cold and warm, print what that first run pays once.

On a shared machine, ``--rounds R`` measures each mode R times (plain and ours back to back
in each round) and prints the round of median overhead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARALLEL_JOBS = 4


def snakefile(n: int, serial: bool) -> str:
    targets = [f"out/j{n - 1}.txt"] if serial else [f"out/j{i}.txt" for i in range(n)]
    rules = [f"rule all:\n    input: {targets!r}\n"]
    for i in range(n):
        dep = f'    input: "out/j{i - 1}.txt"\n' if serial and i else ""
        rules.append(
            f'rule j{i}:\n{dep}    output: "out/j{i}.txt"\n    shell: "echo {i} > {{output}}"\n'
        )
    return "\n".join(rules)


def run(root: Path, args: list[str], cache: Path) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(REPO),
            "PATH": "/usr/bin:/bin",
            "HOME": str(root),
            "XDG_CACHE_HOME": str(cache),
        },
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return took


def measure(n: int, serial: bool, cache: Path) -> tuple[float, float]:
    jobs = "1" if serial else str(PARALLEL_JOBS)
    with tempfile.TemporaryDirectory(prefix="ssm-overhead-") as tmp:
        plain_root, ours_root = Path(tmp, "plain"), Path(tmp, "ours")
        for root in (plain_root, ours_root):
            root.mkdir()
            (root / "Snakefile").write_text(snakefile(n, serial))
        plain = run(plain_root, ["--cores", jobs], cache)
        # the local profile, as a user runs it (its status-check interval included)
        ours = run(ours_root, [*profile(), "--jobs", jobs], cache)
    return plain, ours


def profile() -> list[str]:
    return ["--profile", str(REPO / "profiles" / "local")]


def warm_up(n: int, cache: Path) -> tuple[float, float]:
    """Dry runs with the profile: the first fills the image-URI cache, the second uses it."""
    with tempfile.TemporaryDirectory(prefix="ssm-overhead-") as tmp:
        root = Path(tmp)
        (root / "Snakefile").write_text(snakefile(n, True))
        return run(root, [*profile(), "-n"], cache), run(root, [*profile(), "-n"], cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="no-op jobs per run")
    parser.add_argument("--rounds", type=int, default=1, help="paired rounds per mode (median)")
    args = parser.parse_args()
    n, rounds = args.jobs, max(1, args.rounds)
    with tempfile.TemporaryDirectory(prefix="ssm-overhead-cache-") as cache_dir:
        cache = Path(cache_dir)
        cold, warm = warm_up(n, cache)
        print(f"dry run with the profile: {cold:.2f} s with an empty cache, {warm:.2f} s after")
        median = f", the median of {rounds} rounds" if rounds > 1 else ""
        print(f"{n} no-op jobs; plain snakemake vs the local backend, same Snakefile{median}")
        print(f"{'mode':10} {'plain s':>8} {'ours s':>8} {'ratio':>6} {'overhead/job s':>15}")
        for serial in (True, False):
            row(n, serial, cache, rounds)


def row(n: int, serial: bool, cache: Path, rounds: int) -> None:
    measured = sorted((measure(n, serial, cache) for _ in range(rounds)), key=lambda r: r[1] - r[0])
    plain, ours = measured[len(measured) // 2]
    mode = "serial" if serial else f"parallel{PARALLEL_JOBS}"
    print(f"{mode:10} {plain:8.2f} {ours:8.2f} {ours / plain:6.2f} {(ours - plain) / n:15.3f}")


if __name__ == "__main__":
    main()
