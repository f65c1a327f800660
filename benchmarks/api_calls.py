"""AWS API calls per job of a whole run, at 1, 12, 50 and 200 jobs, by service.operation.

Run from the repository root (starts its own moto server on 127.0.0.1; no AWS needed)::

    .venv/bin/python benchmarks/api_calls.py [sizes...]

Each size is one real ``snakemake`` run of a rule over that many wildcards (``shell: echo``)
on the aws backend, against the moto server whose SageMaker jobs really run
(tests/moto_sagemaker.py), with S3 as Snakemake's default storage, ``--jobs 50``, a status
round every 2 s. Columns, per job:

- ``ours``: the executor's own calls, as it counts them (a botocore hook on its clients,
  ``ssm_rules made ... calls`` at the end of the run);
- ``storage``: the S3 storage plugin's (requests without ssm_rules' User-Agent);
- ``jobs``: the simulated SageMaker jobs' own traffic (fetching code and inputs, uploading
  outputs and logs: SageMaker's, not the client's), which the server saw with ssm_rules'
  User-Agent beyond what the executor counted.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import Workflow, aws_args  # noqa: E402
from tests.moto_sagemaker import MotoServer  # noqa: E402

SIZES = (1, 12, 50, 200)
BUCKET = "bench-bucket"
SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(N))

rule work:
    output: "out/{i}.txt"
    resources: spot=0
    shell: "echo {wildcards.i} > {output}"
"""


def our_counts(output: str) -> Counter[str]:
    found = re.search(r"ssm_rules made \d+ calls: (.*) to AWS", output)
    if not found:
        return Counter()
    return Counter({op: int(n) for op, n in (x.rsplit(" ", 1) for x in found[1].split(", "))})


def run(server: MotoServer, n: int, root: Path) -> tuple[Counter[str], Counter[str], Counter[str]]:
    server.reset()
    server.hook.reset(root / "sagemaker-jobs")
    server.client("s3").create_bucket(Bucket=BUCKET)
    server.calls.clear()
    wf = Workflow(root / "wf")
    wf.write("Snakefile", SNAKEFILE.replace("N", str(n)))
    args = [*aws_args(BUCKET), "--jobs", "50", "--seconds-between-status-checks", "2"]
    proc = wf.run(*args, env=server.env(), timeout=3600)
    ours = our_counts(proc.stdout + proc.stderr)
    tagged: Counter[str] = Counter()
    storage: Counter[str] = Counter()
    for call in server.calls.calls:
        if call.service == "moto-api":
            continue
        op = f"{call.service}.{call.operation}"
        (tagged if "ssm_rules" in call.headers.get("user-agent", "") else storage)[op] += 1
    jobs = tagged - ours  # Counter subtraction keeps the positive counts
    return ours, storage, jobs


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sizes = [int(a) for a in sys.argv[1:]] or list(SIZES)
    with tempfile.TemporaryDirectory() as tmp:
        server = MotoServer(Path(tmp) / "jobs")
        server.start()
        os.environ.update(server.env())  # the hook's job runners are children of this process
        server.hook.install()
        try:
            results = {n: run(server, n, Path(tmp) / str(n)) for n in sizes}
        finally:
            server.stop()
    ops = sorted({op for r in results.values() for c in r for op in c})
    for title, index in (("ours", 0), ("storage", 1), ("jobs", 2)):
        print(f"\n{title}: calls per job")
        print(f"{'operation':<36}" + "".join(f"{f'{n} jobs':>10}" for n in sizes))
        for op in ops:
            values = [results[n][index][op] / n for n in sizes]
            if any(values):
                print(f"{op:<36}" + "".join(f"{v:>10.2f}" for v in values))
        totals = [sum(results[n][index].values()) / n for n in sizes]
        print(f"{'total':<36}" + "".join(f"{v:>10.2f}" for v in totals))


if __name__ == "__main__":
    main()
