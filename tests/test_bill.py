"""The bill computed from job descriptions, the board's lines and the timeline PNG (pure)."""

from __future__ import annotations

import datetime
import struct
import zlib

from ssm_rules.backends.base import JobState, JobStatus, JobType, LogEvent
from ssm_rules.bill import Bill, bill_of, job_bill
from ssm_rules.board import (
    Board,
    MetricReader,
    duration,
    follow_command,
    metric_line,
    money,
    status_line,
    summary_line,
)
from ssm_rules.png import bar_x, layout, timeline_png
from ssm_rules.pricing import Prices, PriceTable
from ssm_rules.report import colour
from ssm_rules.spec import build_spec
from tests.jobviews import view

T0 = datetime.datetime(2026, 12, 2, 1, 0, tzinfo=datetime.UTC)


def at(seconds: float) -> str:
    return (T0 + datetime.timedelta(seconds=seconds)).isoformat()


def spot_training(**changes):
    """A managed-spot training job on 2 instances as DescribeTrainingJob reports it."""
    desc = {
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "CreationTime": at(0),
        "TrainingStartTime": at(60),
        "TrainingEndTime": at(560),
        "TrainingTimeInSeconds": 500,
        "BillableTimeInSeconds": 100,  # AWS: savings = (1 - 100/500) = 80 %
        "EnableManagedSpotTraining": True,
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": at(0), "EndTime": at(60)},
            {"Status": "Training", "StartTime": at(60), "EndTime": at(540)},
            {"Status": "Uploading", "StartTime": at(540), "EndTime": at(560)},
            {"Status": "Completed", "StartTime": at(560), "EndTime": at(560)},
        ],
        "WarmPoolStatus": {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 60},
        "FinalMetricDataList": [{"MetricName": "loss", "Value": 0.25, "Timestamp": at(550)}],
    }
    entry = {
        "name": "train-1",
        "rule": "train",
        "wildcards": {"size": "big"},
        "job_type": "training",
        "instance_type": "ml.m5.xlarge",
        "instance_count": 2,
        "spot": True,
        "price": 0.36,  # USD per instance-hour: 0.0001 per instance-second
        "how": "submitted",
        "state": "Completed",
        "description": desc,
        "metrics": {"loss": 0.3, "acc": 0.9},
    }
    entry.update(changes)
    return entry


def processing(**changes):
    entry = {
        "name": "prep-1",
        "rule": "prepare",
        "job_type": "processing",
        "instance_type": "ml.m5.large",
        "instance_count": 3,
        "price": 0.36,
        "state": "Completed",
        "description": {
            "ProcessingJobStatus": "Completed",
            "CreationTime": at(0),
            "ProcessingStartTime": at(30),
            "ProcessingEndTime": at(120),
        },
    }
    entry.update(changes)
    return entry


def test_spot_training_is_billed_for_its_billable_seconds_and_saves_the_rest():
    job = job_bill(spot_training(), now=0, region="eu-west-1", local_jobs=None)
    assert (job.training_seconds, job.billable_seconds, job.retained_seconds) == (500, 100, 60)
    # (billable 100 + warm pool 60) x 2 instances x $0.0001/s
    assert round(job.cost, 6) == 0.032
    assert round(job.spot_savings, 6) == 0.08  # (500 - 100) x 2 x $0.0001
    assert [p.status for p in job.phases] == ["Starting", "Training", "Uploading", "Completed"]
    assert job.phases[1].end - job.phases[1].start == 480
    assert job.metrics == {"loss": 0.25, "acc": 0.9}  # SageMaker's final value wins
    assert job.console_url == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/train-1"
    )
    assert "log-group/$252Faws$252Fsagemaker$252FTrainingJobs" in job.logs_url
    assert job.logs_url.endswith("$3FlogStreamNameFilter$3Dtrain-1")


def test_processing_is_billed_from_start_to_end_on_every_instance():
    job = job_bill(processing(), now=0, region="us-east-1", local_jobs=None)
    assert (job.training_seconds, job.billable_seconds) == (90, 90)
    assert round(job.cost, 6) == 0.027  # 90 s x 3 instances x $0.0001
    assert job.spot_savings == 0
    assert [(p.status, p.end - p.start) for p in job.phases] == [
        ("Starting", 30),
        ("Processing", 90),
    ]
    assert "#/processing-jobs/prep-1" in job.console_url


def test_a_running_job_is_billed_so_far_and_its_last_phase_runs_until_now():
    entry = spot_training(state="InProgress")
    desc = entry["description"]
    for key in ("TrainingEndTime", "TrainingTimeInSeconds", "BillableTimeInSeconds"):
        del desc[key]
    desc["SecondaryStatusTransitions"] = desc["SecondaryStatusTransitions"][:2]
    del desc["SecondaryStatusTransitions"][1]["EndTime"]
    now = T0.timestamp() + 300
    job = job_bill(entry, now=now, region="us-east-1", local_jobs=None)
    assert job.running and job.billable_seconds == 240  # since TrainingStartTime
    assert job.phases[-1].end == now


def test_a_job_that_never_started_costs_nothing():
    entry = processing(state="Failed")
    entry["description"] = {"ProcessingJobStatus": "Failed", "CreationTime": at(0)}
    job = job_bill(entry, now=T0.timestamp() + 99, region="us-east-1", local_jobs=None)
    assert job.cost == 0 and job.billable_seconds == 0


def test_totals_and_cost_per_rule_leave_out_a_reused_job():
    record = {
        "backend": "aws",
        "region": "us-east-1",
        "jobs": [
            spot_training(),
            processing(),
            processing(name="prep-2", how="reused"),  # paid by the run that ran it
        ],
    }
    bill = bill_of(record, now=0)
    assert round(bill.total, 6) == round(0.032 + 0.027, 6)
    assert round(bill.savings, 6) == 0.08
    assert bill.billable_instance_seconds == 100 * 2 + 90 * 3
    assert bill.training_instance_seconds == 500 * 2 + 90 * 3
    assert bill.retained_instance_seconds == 120
    rules = {rule: (n, round(cost, 6)) for rule, (n, cost, _) in bill.by_rule().items()}
    assert rules == {"train": (1, 0.032), "prepare": (1, 0.027)}


def test_an_unpriced_job_is_counted_in_instance_hours():
    bill = bill_of({"jobs": [processing(price=None)]}, now=0)
    assert not bill.priced and bill.jobs[0].cost is None
    assert bill.instance_seconds == 270
    line = summary_line(bill, "aws")
    assert "0.075 instance-hours (not every job has a price)" in line


def test_local_jobs_link_to_their_describe_document_and_logs():
    record = {"backend": "local", "jobs_root": "/w/.ssm_rules/jobs", "jobs": [processing()]}
    job = bill_of(record, now=0).jobs[0]
    assert job.console_url == "file:///w/.ssm_rules/jobs/prep-1/status.json"
    assert job.logs_url == "file:///w/.ssm_rules/jobs/prep-1/logs/"


# --- the board's lines --------------------------------------------------------------------


def test_status_metric_and_summary_lines():
    assert duration(5) == "5s" and duration(65) == "1m05s" and duration(3720) == "1h02m"
    assert [money(x) for x in (0, 0.00001, 0.0123, 12.5)] == [
        "$0.00",
        "<$0.0001",  # not $0.0000: it did cost something
        "$0.0123",
        "$12.50",
    ]
    assert (
        status_line("train", {"size": "big", "seed": "1"}, "train-1", "Downloading", 65)
        == "rule train (size=big, seed=1): job train-1 Downloading after 1m05s"
    )
    assert status_line("prep", {}, "p-1", "InProgress", None) == "rule prep: job p-1 InProgress"
    # a group's one job is named by its group, as the executor's messages name it
    assert status_line("group g", {}, "g-1", "Training", None) == "group g: job g-1 Training"
    assert (
        metric_line("train", {}, "t-1", {"loss": 0.25}) == "rule train: job t-1 metrics: loss=0.25"
    )
    record = {
        "jobs": [
            spot_training(state="InProgress"),
            spot_training(name="train-2"),
            processing(state="Failed"),
            processing(name="p-2", state="Stopped"),
        ]
    }
    # 2 x (100 + 60 warm) x 2 x $0.0001 + 2 x 90 x 3 x $0.0001
    assert summary_line(bill_of(record, now=T0.timestamp() + 600), "aws") == (
        "SageMaker: 1 running (1 on spot), 1 done, 2 failed; spent $0.1180 so far"
    )
    assert summary_line(Bill(()), "local") == (
        "SageMaker: 0 running (0 on spot), 0 done, 0 failed; would cost $0.00 so far"
    )


def test_the_log_to_follow_is_the_rules_log_file_the_local_hosts_or_cloudwatch():
    assert (
        follow_command("aws", JobType.TRAINING, "t-1", ("file:///w/logs/t.log",), None)
        == "tail -f /w/logs/t.log"
    )
    assert (
        follow_command("local", JobType.TRAINING, "t-1", (), "/w/.ssm_rules/jobs")
        == "tail -f /w/.ssm_rules/jobs/t-1/logs/algo-*.log"
    )
    assert follow_command("aws", JobType.PROCESSING, "p-1", ("s3://b/logs/p.log",), None) == (
        "aws logs tail /aws/sagemaker/ProcessingJobs --log-stream-name-prefix p-1/ --follow"
    )


def test_metrics_are_read_from_log_lines_as_sagemaker_reads_them():
    reader = MetricReader({"loss": "loss=(.*?);", "acc": r"acc: ([0-9.]+)"})
    assert reader.read(["epoch 1 loss=0.5; acc: 0.7", "loss=0.4;"]) == {"loss": 0.4, "acc": 0.7}
    assert reader.read(["loss=0.4;", "loss=nan-ish;", "no metric here"]) == {}  # unchanged
    assert reader.read(["loss=0.3; loss=0.2;"]) == {"loss": 0.2}  # the last match of a line
    assert reader.values == {"loss": 0.2, "acc": 0.7}


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)

    warning = info


def test_the_board_says_each_change_once_and_a_summary_at_its_interval(tmp_path):
    spec = build_spec(
        view(tmp_path, resources={"instance_type": "ml.m5.xlarge", "instance_count": 2}),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    now = [T0.timestamp()]
    prices = Prices(PriceTable("us-east-1", T0.date(), {"Training:ml.m5.xlarge": 0.36}))
    log = Lines()
    board = Board(log, "aws", "us-east-1", tmp_path, "s3://b/p/", None, prices, lambda: now[0], 60)
    board.submitted(spec, "train-1", JobType.TRAINING, "submitted")
    assert log.lines[-1].startswith("rule train: job train-1: follow its log with: aws logs tail")
    created = {"CreationTime": T0}  # boto3 gives datetimes

    def status(secondary: str, state: JobState = JobState.IN_PROGRESS, **extra) -> JobStatus:
        return JobStatus("train-1", state, secondary, extra={**created, **extra})

    now[0] += 5
    board.seen("train-1", status("Starting"))
    board.seen("train-1", status("Starting"))
    board.tick()  # 5 s since the start: no summary yet
    now[0] += 70
    board.seen("train-1", status("Training", TrainingStartTime=T0))
    board.tick()
    board.tick()
    assert log.lines[1:] == [
        "rule train: job train-1 Starting after 5s",
        "rule train: job train-1 Training after 1m15s",
        # spot by default; running 75 s x 2 instances x $0.0001 per instance-second
        "SageMaker: 1 running (1 on spot), 0 done, 0 failed; spent $0.0150 so far",
    ]
    board.log_lines("train-1", [LogEvent("s", "loss=0.5;")])  # no metric_definitions: nothing
    done = status(
        "Completed", JobState.COMPLETED, TrainingTimeInSeconds=80, BillableTimeInSeconds=80
    )
    board.seen("train-1", done)
    record = board.close()
    assert log.lines[-2] == "rule train: job train-1 Completed after 1m15s"
    assert log.lines[-1] == (
        "SageMaker: 0 running (0 on spot), 1 done, 0 failed; spent $0.0160 so far"
    )
    entry = record.job("train-1")
    assert entry["state"] == "Completed" and entry["description"]["BillableTimeInSeconds"] == 80
    assert entry["description"]["CreationTime"] == T0.isoformat()  # datetimes kept as ISO
    assert record.doc["ended"] and record.path.is_file()


# --- the PNG ------------------------------------------------------------------------------


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB, filter-0 PNG (what ssm_rules.png writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert (depth, ctype) == (8, 2)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    rows = [raw[i * stride : (i + 1) * stride] for i in range(height)]
    assert all(r[0] == 0 for r in rows)
    return width, height, [r[1:] for r in rows]


def test_the_timeline_png_draws_each_phase_in_its_colour():
    bill = bill_of({"jobs": [spot_training(), processing()]}, now=0)
    width, height, rows = read_png(timeline_png(bill, colour))
    scale, t0 = layout(bill)
    for i, job in enumerate(bill.jobs):
        y = 8 + i * 16 + 5  # the middle of the job's bar
        for phase in job.phases:
            if phase.end - phase.start < 30:
                continue  # too thin to sample between its neighbours
            x = (bar_x(phase.start, scale, t0) + bar_x(phase.end, scale, t0)) // 2
            assert tuple(rows[y][3 * x : 3 * x + 3]) == colour(phase.status), phase
    assert width == 1010 and height > 16 * 2
