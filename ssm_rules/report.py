"""The bill of a run as files: ``run.json`` (the record), ``report.html``, ``timeline.png``.

The HTML page is self-contained (inline CSS and SVG, no script, no network): it opens from
a mail attachment or an artifact store as well as from disk. The PNG is drawn by
ssm_rules.png (standard library only) so that writing it needs no browser and no plotting
library on the machine that runs the workflow.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssm_rules.bill import Bill, JobBill, bill_of
from ssm_rules.board import duration, money, wildcards_text
from ssm_rules.png import timeline_png

HTML_FILE = "report.html"
PNG_FILE = "timeline.png"

# one colour per SecondaryStatus (and processing phase): the HTML legend and the PNG agree
PHASE_COLOURS: dict[str, tuple[int, int, int]] = {
    "Starting": (158, 202, 225),
    "Pending": (158, 202, 225),
    "Downloading": (107, 174, 214),
    "Training": (49, 130, 189),
    "Processing": (49, 130, 189),
    "Uploading": (116, 196, 118),
    "Completed": (49, 163, 84),
    "Interrupted": (253, 174, 107),
    "Restarting": (253, 174, 107),
    "Stopping": (253, 141, 60),
    "Stopped": (230, 85, 13),
    "MaxRuntimeExceeded": (230, 85, 13),
    "MaxWaitTimeExceeded": (230, 85, 13),
    "Failed": (222, 45, 38),
}
OTHER_COLOUR = (150, 150, 150)


def colour(status: str) -> tuple[int, int, int]:
    return PHASE_COLOURS.get(status, OTHER_COLOUR)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cost_text(usd: float | None, instance_seconds: float) -> str:
    """Dollars, or instance-hours when the instance type has no price."""
    if usd is None:
        return f"{instance_seconds / 3600:.3f} instance-h"
    return money(usd)


def seconds_text(seconds: float) -> str:
    return f"{seconds:.0f}"


def _metrics(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items()) or "-"


def _timeline_svg(bill: Bill, width: int = 900, row: int = 22, label: int = 260) -> str:
    span = bill.span
    rows = len(bill.jobs)
    height = rows * row + 30
    parts = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width + label}" '
        f'height="{height}" role="img" aria-label="jobs on a timeline">'
    ]
    if span is None:
        parts.append("</svg>")
        return "".join(parts)
    t0, t1 = span
    scale = width / max(t1 - t0, 1.0)
    for i, job in enumerate(bill.jobs):
        y = i * row + 4
        name = job.rule + (f" ({wildcards_text(job.wildcards)})" if job.wildcards else "")
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{_e(name)}</text>')
        for p in job.phases:
            x = label + (p.start - t0) * scale
            w = max((p.end - p.start) * scale, 1.0)
            tip = f"{job.name}: {p.status} {duration(p.end - p.start)}"
            if p.message:
                tip += f" ({p.message})"
            parts.append(
                f'<rect class="phase" data-job="{_e(job.name)}" data-status="{_e(p.status)}" '
                f'x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{_hex(colour(p.status))}"><title>{_e(tip)}</title></rect>'
            )
    axis_y = rows * row + 18
    parts.append(
        f'<text x="{label}" y="{axis_y}" font-size="11">{_e(_when(t0))}</text>'
        f'<text x="{label + width}" y="{axis_y}" font-size="11" text-anchor="end">'
        f"+{_e(duration(t1 - t0))}</text></svg>"
    )
    return "".join(parts)


def _job_row(job: JobBill) -> str:
    cells = [
        ("rule", job.rule),
        ("wildcards", wildcards_text(job.wildcards) or "-"),
        ("job", job.name),
        ("type", job.job_type.value),
        ("instances", f"{job.count} x {job.instance_type}"),
        ("spot", "yes" if job.spot else "no"),
        (
            "status",
            job.state + (f" ({job.secondary})" if job.secondary not in ("", job.state) else ""),
        ),
        ("training-seconds", seconds_text(job.training_seconds)),
        ("billable-seconds", seconds_text(job.billable_seconds)),
        ("retained-seconds", seconds_text(job.retained_seconds)),
        ("cost", cost_text(job.cost, job.instance_seconds) + ("" if job.billed_here else " *")),
        (
            "spot-savings",
            cost_text(job.spot_savings, job.saved_instance_seconds) if job.spot else "-",
        ),
        ("metrics", _metrics(job.metrics)),
    ]
    tds = "".join(f'<td data-field="{k}">{_e(v)}</td>' for k, v in cells)
    links = (
        f'<td><a href="{_e(job.console_url)}">job</a> · <a href="{_e(job.logs_url)}">logs</a></td>'
    )
    return f'<tr data-job="{_e(job.name)}">{tds}{links}</tr>'


STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:left}
th{background:#f3f3f3} .num{text-align:right}
.legend span{display:inline-block;margin-right:1em;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
"""


def render_html(record: Mapping[str, Any], bill: Bill) -> str:
    spent = "Would cost" if record.get("backend") == "local" else "Cost"
    total = cost_text(bill.total if bill.priced else None, bill.instance_seconds)
    totals = [
        ("total-cost", f"{spent} (estimated)", total),
        (
            "total-savings",
            "Spot savings",
            cost_text(bill.savings if bill.priced else None, bill.saved_instance_seconds),
        ),
        (
            "total-training",
            "Training instance-seconds",
            seconds_text(bill.training_instance_seconds),
        ),
        (
            "total-billable",
            "Billable instance-seconds",
            seconds_text(bill.billable_instance_seconds),
        ),
        (
            "total-retained",
            "Warm-pool retained instance-seconds",
            seconds_text(bill.retained_instance_seconds),
        ),
        ("jobs", "Jobs", str(len(bill.jobs))),
    ]
    totals_rows = "".join(
        f'<tr><th>{_e(label)}</th><td data-field="{k}" class="num">{_e(v)}</td></tr>'
        for k, label, v in totals
    )
    rule_rows = "".join(
        f'<tr data-rule="{_e(rule)}"><td>{_e(rule)}</td><td class="num">{n}</td>'
        f'<td data-field="rule-cost" class="num">'
        f"{_e(cost_text(cost if bill.priced else None, seconds))}</td></tr>"
        for rule, (n, cost, seconds) in bill.by_rule().items()
    )
    head = (
        "rule wildcards job type instances spot status training&nbsp;s billable&nbsp;s "
        "warm-pool&nbsp;s cost spot&nbsp;savings final&nbsp;metrics links"
    ).split()
    job_rows = "".join(_job_row(j) for j in bill.jobs)
    seen = sorted({p.status for j in bill.jobs for p in j.phases})
    legend = "".join(
        f'<span><i style="background:{_hex(colour(s))}"></i>{_e(s)}</span>' for s in seen
    )
    reused = any(not j.billed_here for j in bill.jobs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ssm_rules run {_e(record.get("run_id", ""))}</title>
<style>{STYLE}</style></head>
<body>
<h1>SageMaker run {_e(record.get("run_id", ""))}</h1>
<p>{_e(record.get("backend", ""))} backend, region {_e(record.get("region", ""))};
started {_e(record.get("started", ""))}, ended {_e(record.get("ended") or "(still running)")};
{_e(record.get("prices", ""))}.</p>
<table id="totals">{totals_rows}</table>
<h2>Timeline</h2>
<div class="legend">{legend}</div>
{_timeline_svg(bill)}
<h2>Cost per rule</h2>
<table id="rules"><tr><th>rule</th><th>jobs</th><th>cost</th></tr>{rule_rows}</table>
<h2>Jobs</h2>
<table id="jobs"><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{job_rows}</table>
{"<p>* reused: completed in an earlier run, which paid for it.</p>" if reused else ""}
<p>Costs are estimates: billable seconds (training: BillableTimeInSeconds; processing: end -
start; warm pools: ResourceRetainedBillableTimeInSeconds) x instance count x the on-demand
list price. Spot savings: (TrainingTimeInSeconds - BillableTimeInSeconds) x count x price.
The AWS bill also counts storage, data transfer and taxes.</p>
</body></html>
"""


def write_report(record_path: Path, record: Mapping[str, Any], now: float) -> tuple[Path, Path]:
    """``report.html`` and ``timeline.png`` next to the record."""
    bill = bill_of(record, now)
    directory = Path(record_path).parent
    html_path = directory / HTML_FILE
    png_path = directory / PNG_FILE
    _write(html_path, render_html(record, bill).encode())
    _write(png_path, timeline_png(bill, colour))
    return html_path, png_path


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def bill_lines(record: Mapping[str, Any], bill: Bill) -> list[str]:
    """The bill as text (``python -m ssm_rules report``)."""
    spent = "would cost" if record.get("backend") == "local" else "cost"
    lines = [
        f"SageMaker run {record.get('run_id')} ({record.get('backend')} backend, "
        f"{record.get('prices')}):"
    ]
    for j in bill.jobs:
        cost = cost_text(j.cost, j.instance_seconds) + ("" if j.billed_here else " (reused)")
        w = wildcards_text(j.wildcards)
        lines.append(
            f"  {j.rule}{f' ({w})' if w else ''} {j.name}: {j.state}, {j.count} x "
            f"{j.instance_type}{', spot' if j.spot else ''}, training {j.training_seconds:.0f}s"
            f", billable {j.billable_seconds:.0f}s"
            + (f", warm pool {j.retained_seconds:.0f}s" if j.retained_seconds else "")
            + f", {spent} {cost}"
            + (f", metrics {_metrics(j.metrics)}" if j.metrics else "")
        )
    for rule, (n, cost, seconds) in bill.by_rule().items():
        lines.append(
            f"  rule {rule}: {n} job(s), {cost_text(cost if bill.priced else None, seconds)}"
        )
    total = cost_text(bill.total if bill.priced else None, bill.instance_seconds)
    savings = cost_text(bill.savings if bill.priced else None, bill.saved_instance_seconds)
    lines.append(f"  total: {spent} {total}, spot savings {savings}")
    return lines
