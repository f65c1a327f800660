"""Input staging against ``aws s3 sync`` on one moto server: a first sync and an unchanged re-sync.

Run from the repository root (starts its own moto server process on 127.0.0.1; no AWS needed;
awscli comes with the ``bench`` extra: ``pip install -e '.[bench]'``)::

    .venv/bin/python benchmarks/staging_vs_awscli.py [--files 1500] [--mb 300] [--rounds 5]

Generates ``--files`` files of varied sizes (most small, a few above the 8 MB multipart
threshold) totalling about ``--mb`` MB, then, in each round on an emptied server, syncs the
folder with each tool side by side (the order alternates between rounds):

- ``first``: into an empty bucket;
- ``unchanged``: again, nothing changed since.

ssm_rules syncs through ``staging.sync_local_input`` on an ``S3Objects`` store with the run's
``DigestCache``, as the executor does for a local input (each sync a new run: the cache read
from disk); awscli runs in this process (``awscli.clidriver``, as the ``aws``
command does, without its interpreter start-up), with its default settings. Times are the
median over the rounds; a ratio is the median over the rounds of ssm_rules' time over awscli's
in the same round (below 1: ours is faster), for wall time and for this process's CPU time.
Requests and bytes are counted with botocore hooks on each tool's own session: bytes are the
payload of every PUT/POST request (``X-Amz-Decoded-Content-Length`` when the body is
aws-chunked, else ``Content-Length``). After the first sync both copies are compared object by
object (key, size, ETag): the same bytes must have arrived.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssm_rules.digests import RACY_NS  # noqa: E402  (after the path setup)
from tests.moto_server import FOREIGN_ENV, PlainMotoServer  # noqa: E402

BUCKET = "ssm-bench"
OURS, AWSCLI = "ssm_rules", "aws s3 sync"
PHASES = ("first", "unchanged")
MB = 1 << 20


def generate(folder: Path, files: int, total_mb: int, seed: int = 7) -> int:
    """Files of varied sizes under a few sub-folders: about 90% small (1 KB to 512 KB), the
    rest up to 4 MB, and one in a hundred above the multipart threshold. Returns the bytes."""
    rng = random.Random(seed)
    sizes = []
    for i in range(files):
        if i % 100 == 0:
            sizes.append(rng.uniform(9, 24) * MB)
        elif i % 10 == 0:
            sizes.append(rng.uniform(0.5, 4) * MB)
        else:
            sizes.append(2 ** rng.uniform(10, 19))
    scale = total_mb * MB / sum(sizes)
    total = 0
    for i, size in enumerate(sizes):
        path = folder / f"part-{i % 30:02d}" / f"file-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(max(1, int(size * scale)))
        path.write_bytes(data)
        total += len(data)
    return total


class Counted:
    """Requests (by operation) and payload bytes a botocore session sends."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.sent = 0

    def attach(self, events: Any) -> None:
        events.register("before-call.s3", self._call)
        events.register("before-send.s3", self._send)

    def clear(self) -> None:
        self.calls.clear()
        self.sent = 0

    def _call(self, model: Any, **_kwargs: Any) -> None:
        self.calls[model.name] += 1

    def _send(self, request: Any, **_kwargs: Any) -> None:
        attempt = request.headers.get("amz-sdk-request", b"attempt=1")
        if not bytes(attempt).startswith(b"attempt=1;") and bytes(attempt) != b"attempt=1":
            self.calls["(retries)"] += 1  # botocore's retry of a failed request
        if request.method in ("PUT", "POST"):
            headers = request.headers
            size = headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length")
            self.sent += int(size or 0)


class Ours:
    """Each sync as a new run: a new DigestCache read from the run's state directory."""

    name = OURS

    def __init__(self, state_dir: Path) -> None:
        from ssm_rules.aws_clients import client
        from ssm_rules.objects import S3Objects

        self.counted = Counted()
        s3 = client("s3")
        self.counted.attach(s3.meta.events)
        self.store = S3Objects(client=s3)
        self.state_dir = state_dir
        self.prefix = ""
        self.hashed = 0  # files read to hash them, last sync

    def sync(self, data: Path) -> None:
        from ssm_rules import staging
        from ssm_rules.digests import CACHE_FILE, DigestCache

        digests = DigestCache(self.state_dir / CACHE_FILE)
        self.prefix = staging.input_prefix(f"s3://{BUCKET}/ours/", data)
        staging.sync_local_input(self.store, data, self.prefix, digests)
        self.hashed = digests.hashed


class AwsCli:
    name = AWSCLI

    def __init__(self) -> None:
        self.counted = Counted()
        self.prefix = f"s3://{BUCKET}/awscli/data/"

    def sync(self, data: Path) -> None:
        from awscli.clidriver import create_clidriver

        driver = create_clidriver()
        self.counted.attach(driver.session)
        code = driver.main(["s3", "sync", str(data), self.prefix, "--only-show-errors"])
        if code != 0:
            raise SystemExit(f"aws s3 sync failed with exit code {code}")


def listing(s3: Any, prefix: str) -> dict[str, tuple[int, str]]:
    key = prefix[len(f"s3://{BUCKET}/") :]
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=key):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(key) :]] = (obj["Size"], obj["ETag"])
    return found


def measured(fn: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of this process (all its threads: the tool's own work,
    less shaken than wall time by the machine's other load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _sync(tool: Ours | AwsCli, data: Path) -> Callable[[], None]:
    return lambda: tool.sync(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = PlainMotoServer()
    server.start()
    for name in FOREIGN_ENV:
        os.environ.pop(name, None)
    os.environ.update(server.env())
    try:
        run(server, args.files, args.mb, args.rounds)
    finally:
        server.stop()


def run(server: PlainMotoServer, files: int, total_mb: int, rounds: int) -> None:
    from ssm_rules.aws_clients import client

    s3 = client("s3")
    took: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (wall, cpu) per round
    counts: dict[tuple[str, str], Counted] = {}
    hashed: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ssm-bench-") as tmp:
        data = Path(tmp) / "data"
        total = generate(data, files, total_mb)
        # files younger than that are hashed again on the next sync (digests.py, racy rule)
        time.sleep(RACY_NS / 1e9)
        print(f"{files} files, {total:,} bytes; {rounds} round(s) on one moto server")
        for r in range(rounds):
            server.reset()
            s3.create_bucket(Bucket=BUCKET)
            ours = Ours(Path(tmp) / f"state-{r}")
            tools: list[Ours | AwsCli] = [ours, AwsCli()]
            if r % 2:
                tools.reverse()
            for phase in PHASES:
                for tool in tools:
                    tool.counted.clear()
                    took.setdefault((tool.name, phase), []).append(measured(_sync(tool, data)))
                    counted = Counted()
                    counted.calls, counted.sent = Counter(tool.counted.calls), tool.counted.sent
                    counts[(tool.name, phase)] = counted
                hashed[phase] = ours.hashed
                if phase == "first":
                    copies = {t.name: listing(s3, t.prefix) for t in tools}
                    if copies[OURS] != copies[AWSCLI]:
                        raise SystemExit("the two tools' objects differ after the first sync")
    print(
        f"{'':<11}{'tool':<13}{'wall s':>8}{'ratio':>7}{'cpu s':>7}{'ratio':>7}"
        f"{'requests':>10}{'bytes sent':>13}"
    )
    for phase in PHASES:
        # each round's ours/awscli, side by side in time; the median of those
        ratios = [
            [a[i] / b[i] for a, b in zip(took[(OURS, phase)], took[(AWSCLI, phase)], strict=True)]
            for i in (0, 1)
        ]
        for name in (OURS, AWSCLI):
            wall, cpu = (statistics.median(t[i] for t in took[(name, phase)]) for i in (0, 1))
            wall_ratio, cpu_ratio = (
                statistics.median(ratios[i]) if name == OURS else 1.0 for i in (0, 1)
            )
            c = counts[(name, phase)]
            print(
                f"{phase:<11}{name:<13}{wall:>8.2f}{wall_ratio:>7.2f}{cpu:>7.2f}{cpu_ratio:>7.2f}"
                f"{sum(c.calls.values()):>10}{c.sent:>13,}"
            )
        print(f"  {phase}: wall ratio of each round {', '.join(f'{x:.2f}' for x in ratios[0])}")
    print(f"  files ssm_rules read to hash: first {hashed['first']}, then {hashed['unchanged']}")
    for phase in PHASES:
        for name in (OURS, AWSCLI):
            calls = ", ".join(f"{op} {n}" for op, n in sorted(counts[(name, phase)].calls.items()))
            print(f"  {phase} {name}: {calls}")


if __name__ == "__main__":
    main()
