"""What the live board and the bill cost a run: record writes, and the report's time and size.

Run from the repository root (no AWS, no jobs: the board is fed the statuses a run sees)::

    .venv/bin/python benchmarks/board_record.py

For 10, 100 and 1000 training jobs, each seen going through Starting, Downloading,
Training, Uploading and Completed, one status round at a time (all jobs in one round):

- ``MB written``: the bytes the run record writes, as a journal (ssm_rules.runrecord: a
  line per change, the snapshot at the end) and, side by side, as a whole ``run.json``
  rewritten at every change (quadratic: not run for 1000 jobs).
- ``report``: seconds to compute the bill and write report.html + timeline.png, and their size.

The board makes no API call of its own: it reads the statuses and log lines the executor
already has (benchmarks/poll_calls.py counts those).
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = (10, 100, 1000)
PHASES = ("Starting", "Downloading", "Training", "Uploading", "Completed")


class Quiet:
    def info(self, line: str) -> None:
        pass

    warning = info


def run(n: int, journal: bool, root: Path) -> tuple[int, float, int, int]:
    from ssm_rules import runrecord
    from ssm_rules.backends.base import JobState, JobStatus, JobType
    from ssm_rules.board import Board
    from ssm_rules.pricing import Prices, PriceTable
    from ssm_rules.report import write_report
    from ssm_rules.spec import build_spec
    from tests.jobviews import view

    if not journal:  # the simple design: every change rewrites the whole run.json

        def rewrite(record: runrecord.RunRecord, event: dict) -> None:
            record._apply(event)
            record.save()

        runrecord.RunRecord._append = rewrite  # type: ignore[method-assign]
    spec = build_spec(view(root), backend="local", default_instance_type="ml.m5.large")
    t0 = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
    now = [t0.timestamp()]
    prices = Prices(PriceTable("us-east-1", t0.date(), {"Training:ml.m5.large": 0.115}))
    board = Board(Quiet(), "aws", "us-east-1", root, "s3://b/p/", None, prices, lambda: now[0])
    names = [f"train-{i}" for i in range(n)]
    for name in names:
        board.submitted(spec, name, JobType.TRAINING, "submitted")
    transitions: dict[str, list[dict]] = {name: [] for name in names}
    for phase in PHASES:
        now[0] += 60
        at = datetime.datetime.fromtimestamp(now[0], datetime.UTC)
        state = JobState.COMPLETED if phase == "Completed" else JobState.IN_PROGRESS
        for name in names:
            if transitions[name]:
                transitions[name][-1]["EndTime"] = at
            transitions[name].append({"Status": phase, "StartTime": at})
            extra = {
                "CreationTime": t0,
                "TrainingStartTime": t0,
                "SecondaryStatusTransitions": [dict(t) for t in transitions[name]],
            }
            if state is JobState.COMPLETED:
                extra.update(
                    TrainingEndTime=at, TrainingTimeInSeconds=240, BillableTimeInSeconds=240
                )
            board.seen(name, JobStatus(name, state, phase, extra=extra))
        board.tick()
    record = board.close()
    assert record is not None
    start = time.perf_counter()
    html, png = write_report(record.path, record.doc, now[0])
    seconds = time.perf_counter() - start
    return record.written, seconds, html.stat().st_size, png.stat().st_size


def main() -> None:
    from ssm_rules import runrecord

    append = runrecord.RunRecord._append
    print(f"{'jobs':>5}  {'MB written: journal / rewrite':>30}  {'ratio':>6}  report")
    for n in SIZES:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            written, seconds, html, png = run(n, True, Path(a))
            rewritten, *_ = run(n, False, Path(b)) if n <= 100 else (None,)
            runrecord.RunRecord._append = append  # type: ignore[method-assign]
        other = f"{rewritten / 1e6:.1f}" if rewritten else "(not run)"
        ratio = f"{rewritten / written:.0f}x" if rewritten else "-"
        print(
            f"{n:>5}  {written / 1e6:>14.2f} / {other:<13}  {ratio:>6}"
            f"  {seconds:.2f}s, html {html / 1e3:.0f} kB, png {png / 1e3:.0f} kB"
        )


if __name__ == "__main__":
    main()
