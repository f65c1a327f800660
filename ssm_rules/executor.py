"""The Snakemake executor: run_job / check_active_jobs / cancel_jobs. No AWS code here.

A Snakemake job (or each member of a group job, one after the other) becomes a TaskSpec,
is staged, turned into a request and submitted to the backend. Outputs are promoted only
after the backend reports the job Completed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from ssm_rules import staging
from ssm_rules._snakemake_internals import is_forced
from ssm_rules.backends.base import JobState, JobStatus, JobType, LogEvent, LogReader
from ssm_rules.budget import Budget
from ssm_rules.context import RunContext, make_context
from ssm_rules.dryrun import run_prices
from ssm_rules.identity import IDENTITY_TAG, RULE_TAG, TASK_TAG, identity, input_version
from ssm_rules.jobview import JobView, view_of
from ssm_rules.logs import render, write_log
from ssm_rules.outcomes import Outcome, classify
from ssm_rules.placing import placement
from ssm_rules.plan import check_budget, check_jobs
from ssm_rules.requests import (
    Placement,
    adopted_placement,
    build_request,
    job_name_prefix,
    task_description,
    task_file_uri,
)
from ssm_rules.settings import ExecutorSettings
from ssm_rules.spec import TaskSpec, build_spec

AUX_KEY = "ssm_rules"
LOG_TAIL_LINES = 20
STOP_WAIT_SECONDS = 120
MAX_FAILED_POLLS = 10  # consecutive status rounds that fail (after botocore's own retries)


@dataclass
class Submission:
    """One SageMaker job of a Snakemake job (submitted by us, or adopted)."""

    spec: TaskSpec
    place: Placement
    job_type: JobType
    secondary: str = ""  # last SecondaryStatus seen, to log changes once
    log_reader: LogReader | None = None
    log_events: list[LogEvent] = field(default_factory=list)
    log_refreshed: float = 0.0  # time.monotonic() of the last read

    @property
    def name(self) -> str:
        return self.place.job_name


@dataclass
class Tracked:
    """A Snakemake job in flight: the SageMaker job running now and, for a group job, the
    members still to run (each starts when the one before it has been promoted)."""

    current: Submission
    pending: list[JobView] = field(default_factory=list)
    forced: bool = False
    capacity_failures: int = 0
    finished_logs: dict[str, str] = field(default_factory=dict)  # log URI → earlier jobs' text


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        self.settings: ExecutorSettings = self.workflow.executor_settings or ExecutorSettings()
        self.ctx: RunContext = make_context(self.settings, Path.cwd(), self.logger)
        if self.settings.poll_interval is not None:
            self.next_seconds_between_status_checks = self.settings.poll_interval
        self._bundles: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._synced: dict[str, str] = {}  # local input path → its URI, synced this run
        # Every SageMaker job we submitted (or adopted) that has not ended: ours to stop on
        # Ctrl-C. Registered before the Create call, so an interrupt right after it cannot
        # orphan a job; Snakemake's own active_jobs list is empty while its status thread
        # checks, and misses a job whose run_job was interrupted.
        self._in_flight: dict[str, JobType] = {}
        self._in_flight_lock = threading.Lock()
        self._cancelling = False  # set by cancel_jobs: nothing new is submitted after it
        self._failed_polls = 0
        # CloudWatch reads cost one call per stream: follow remote logs less often
        self.log_refresh_seconds = 2.0 if self.ctx.backend_name == "local" else 30.0
        self._budget: Budget | None = None  # with --sagemaker-max-cost
        self._check_plan()

    def _check_plan(self) -> None:
        """Validate every job this run will submit before submitting any: a typo in the last
        rule must not surface hours (and dollars) into the pipeline (ssm_rules.plan, shared
        with snakemake -n). With a budget, a plan whose worst case exceeds it is refused."""
        planned = check_jobs(self.workflow.dag.needrun_jobs(), self.ctx, self.settings)
        if self.settings.max_cost is not None:
            prices = run_prices(self.ctx)
            check_budget(planned, prices, self.settings.max_cost)
            self._budget = Budget(self.settings.max_cost, prices)

    # --- submission ---------------------------------------------------------------------

    def run_job(self, job: JobExecutorInterface) -> None:
        """Submit the job (a group job: its first member). A failure is this job's error, not
        the run's: Snakemake goes on with the others (and -k keeps going)."""
        try:
            members = _members(job)
            views = [view_of(m) for m in members]
            first_spec = self._spec(views[0])
            for view in views[1:]:  # validate every member before sending anything
                self._spec(view, plan=True)
            forced = any(is_forced(self.workflow, m) for m in members)
            first = self._submit(first_spec, forced)
        except Exception as e:  # noqa: BLE001 — reported as this job's error, cause named
            self.report_job_error(SubmittedJobInfo(job=job), msg=_describe_error(e))
            return
        tracked = Tracked(current=first, pending=views[1:], forced=forced)
        self.report_job_submission(
            SubmittedJobInfo(job=job, external_jobid=first.name, aux={AUX_KEY: tracked})
        )

    def _spec(self, view: JobView, plan: bool = False) -> TaskSpec:
        return build_spec(
            view,
            backend=self.ctx.backend_name,
            default_instance_type=self.settings.instance_type,
            plan=plan,
        )

    def _submit(self, spec: TaskSpec, forced: bool) -> Submission:
        """Stage and submit, or adopt an existing job of the same identity. The request is
        built and validated before anything is deleted (stale outputs, clean_state)."""
        ctx = self.ctx
        with self._in_flight_lock:
            if self._cancelling:
                raise WorkflowError(f"rule {spec.rule}: not submitted, the run is being cancelled")
        code_uri, code_sha = self._code(spec)
        channel_uris = self._channels(spec)
        ident = identity(
            spec,
            code_sha,
            {name: input_version(ctx.store(uri), uri) for name, uri in channel_uris.items()},
        )
        tags = {IDENTITY_TAG: ident, RULE_TAG: spec.rule, TASK_TAG: spec.task_id[:256]}
        place = self._placement(spec, code_uri, channel_uris, tags)
        request = build_request(spec, place)
        ctx.validate(request)
        if self._budget is not None:  # refused before anything is deleted or sent
            self._budget.admit(spec, place.job_name)
        staging.remove_stale_outputs(ctx.store, spec)
        adopted = self._adopt(spec, ident, forced)
        if adopted is not None:
            if self._budget is not None:  # nothing new is billed for a job already paid for
                self._budget.release(place.job_name)
            return adopted
        if spec.clean_state and spec.state_prefix:
            n = staging.clear_prefix(ctx.store(spec.state_prefix), spec.state_prefix)
            self.logger.info(f"rule {spec.rule}: clean_state wiped {n} state objects")
        if spec.job_type is JobType.PROCESSING:
            uri = task_file_uri(place)
            task = task_description(spec, place.restore_state)
            staging.upload_text(ctx.store(uri), json.dumps(task), uri)
        # Tracked before the call and kept if it fails: a Create whose reply was lost may
        # have created the job, and Ctrl-C must stop it (stopping an unknown job is a no-op).
        self._track(place.job_name, request.job_type)
        ctx.backend.submit(request)
        self.logger.info(
            f"rule {spec.rule}: submitted {request.job_type} job {place.job_name} "
            f"({spec.instance.count} x {spec.instance.instance_type}"
            f"{', spot' if spec.instance.spot else ''})"
        )
        return Submission(spec, place, request.job_type)

    def _placement(
        self,
        spec: TaskSpec,
        code_uri: str = "",
        channel_uris: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        plan: bool = False,
    ) -> Placement:
        return placement(self.ctx, spec, code_uri, channel_uris, tags, plan)

    def _adopt(self, spec: TaskSpec, ident: str, forced: bool) -> Submission | None:
        """A job of the same identity still running (its client died): wait for it instead
        of paying twice. One that completed while nobody watched: take its outputs, unless
        the user forced a rerun. A job of the same task with other code, inputs or params
        still running is an orphan of an earlier run: say so, with how to stop it."""
        prefix = job_name_prefix(spec.rule)
        found = self.ctx.backend.find(spec.job_type, prefix, {TASK_TAG: spec.task_id[:256]})
        same = [s for s in found if s.extra.get("Tags", {}).get(IDENTITY_TAG) == ident]
        for status in found:
            if status not in same and status.state is JobState.IN_PROGRESS:
                kind = "training" if spec.job_type is JobType.TRAINING else "processing"
                self.logger.warning(
                    f"rule {spec.rule}: job {status.name} of an earlier run (other code, inputs "
                    "or params) is still running and writing this task's state; stop it if it "
                    f"is not wanted: aws sagemaker stop-{kind}-job --{kind}-job-name {status.name}"
                )
        for status in same:
            place = adopted_placement(status.name, self.ctx.jobs_uri)
            if status.state is JobState.IN_PROGRESS and not forced:
                self._track(status.name, spec.job_type)
                self.logger.info(
                    f"rule {spec.rule}: re-attaching to job {status.name}, still running with "
                    "the same code, inputs and parameters"
                )
                return Submission(spec, place, spec.job_type)
            if (
                status.state is JobState.COMPLETED
                and not forced
                and staging.carriers_present(self.ctx.store, spec, place)
            ):
                self.logger.info(
                    f"rule {spec.rule}: reusing job {status.name}, which completed with the same "
                    "code, inputs and parameters"
                )
                return Submission(spec, place, spec.job_type)
        return None

    def _code(self, spec: TaskSpec) -> tuple[str, str]:
        key = (spec.source_dir, spec.dependencies, spec.script_path)
        if key not in self._bundles:
            bundle = staging.code_bundle(spec)
            uri, uploaded = staging.upload_code(
                self.ctx.store(self.ctx.root), self.ctx.root, bundle
            )
            self.logger.debug(
                f"code bundle {bundle.sha256[:12]}: {'uploaded' if uploaded else 'reused'}"
            )
            self._bundles[key] = (uri, bundle.sha256)
        return self._bundles[key]

    def _channels(self, spec: TaskSpec) -> dict[str, str]:
        """Channel name → URI; local inputs are synced first, once per run and local path:
        the jobs of one rule over many wildcards share one upload of a shared dataset."""
        uris: dict[str, str] = {}
        for ch in spec.channels:
            if ch.uri is not None:
                uris[ch.name] = ch.uri
                continue
            assert ch.local_path is not None
            if ch.local_path not in self._synced:
                dest = staging.input_prefix(self.ctx.root, Path(ch.local_path))
                self._synced[ch.local_path] = staging.sync_local_input(
                    self.ctx.store(dest), Path(ch.local_path), dest
                ).uri
            uris[ch.name] = self._synced[ch.local_path]
        return uris

    # --- status -------------------------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            return
        tracked = [info.aux[AUX_KEY] for info in active_jobs]
        async with self.status_rate_limiter:
            try:
                statuses = self.ctx.backend.poll(
                    [(t.current.name, t.current.job_type) for t in tracked]
                )
                self._failed_polls = 0
            except Exception as e:  # noqa: BLE001 — a status round failing past its retries
                self._failed_polls += 1
                if self._failed_polls >= MAX_FAILED_POLLS:
                    raise WorkflowError(
                        f"{MAX_FAILED_POLLS} status rounds in a row failed ({e}); the jobs keep "
                        "running: run the same command again to re-attach to them"
                    ) from e
                self.logger.warning(f"status round failed, trying again next round: {e!r}")
                statuses = {}
        for info, t in zip(active_jobs, tracked, strict=True):
            status = statuses.get(t.current.name)
            if status is None or not status.is_done:
                self._note_progress(t.current, status)
                self._refresh_logs(t)
                yield info
                continue
            self._untrack(t.current.name)
            if self._budget is not None:
                self._budget.settle(t.current.spec, status)
            if self._finish(info, t, status):
                yield info

    def _track(self, name: str, job_type: JobType) -> None:
        with self._in_flight_lock:
            self._in_flight[name] = job_type

    def _untrack(self, name: str) -> None:
        with self._in_flight_lock:
            self._in_flight.pop(name, None)

    def _note_progress(self, sub: Submission, status: JobStatus | None) -> None:
        if status is not None and status.secondary and status.secondary != sub.secondary:
            sub.secondary = status.secondary
            self.logger.info(f"rule {sub.spec.rule}: job {sub.name} {status.secondary}")

    def _finish(self, info: SubmittedJobInfo, t: Tracked, status: JobStatus) -> bool:
        """Handle a job that ended. True when the Snakemake job is still active (next member
        or retry). Nothing escapes: an exception here would stop the status thread and leave
        every other job running unwatched."""
        try:
            return self._handle_end(info, t, status)
        except Exception as e:  # noqa: BLE001 — see docstring
            self.report_job_error(info, msg=_describe_error(e))
            return False

    def _handle_end(self, info: SubmittedJobInfo, t: Tracked, status: JobStatus) -> bool:
        sub = t.current
        tail = self._refresh_logs(t, final=True)
        outcome = classify(status)
        if outcome is Outcome.CAPACITY and sub.spec.instance.spot:
            return self._retry_capacity(info, t, status)
        if status.state is not JobState.COMPLETED:
            reason = status.failure_reason or "(no FailureReason)"
            self.report_job_error(
                info,
                msg=f"SageMaker {sub.job_type} job {sub.name} {status.state}: {reason}\n"
                + (f"Last log lines:\n{tail}\n" if tail else ""),
            )
            return False
        try:
            staging.promote_outputs(self.ctx.store, sub.spec, sub.place)
        except staging.PromotionError as e:
            self.report_job_error(info, msg=f"rule {sub.spec.rule}: {e}\n")
            return False
        except Exception as e:  # noqa: BLE001 — storage failing past its retries: this job's error
            self.report_job_error(
                info,
                msg=f"rule {sub.spec.rule}: job {sub.name} completed, but putting its outputs in "
                f"place failed: {_describe_error(e)}. Rerun to retry: the finished job is "
                "reused, not run again.\n",
            )
            return False
        if t.pending:
            t.current = self._submit(self._spec(t.pending.pop(0)), t.forced)
            return True
        self.report_job_success(info)
        return False

    def _retry_capacity(self, info: SubmittedJobInfo, t: Tracked, status: JobStatus) -> bool:
        """No spot capacity (or spot waited past MaxWaitTimeInSeconds): try spot again up to
        ``spot_retries`` times, then on-demand. The task state carries over: it lives at the
        same prefix. Never reached for a failure of the user's code."""
        # the retry resumes from what the interrupted job saved: never wipe it again
        spec = replace(t.current.spec, clean_state=False)
        t.capacity_failures += 1
        if t.capacity_failures > spec.instance.spot_retries:
            spec = replace(spec, instance=spec.instance.on_demand())
            how = "on-demand"
        else:
            how = f"spot again ({t.capacity_failures}/{spec.instance.spot_retries})"
        self.logger.warning(
            f"rule {spec.rule}: job {status.name} got no spot capacity "
            f"({status.failure_reason or status.secondary}); retrying {how}"
        )
        t.current = self._submit(spec, forced=True)
        return True

    def _refresh_logs(self, t: Tracked, final: bool = False) -> str:
        """Bring the rule's log file up to date with the job's logs (every instance), while
        it runs (at most every ``log_refresh_seconds``) and once more when it ended. Returns
        the last lines. Logs are a courtesy: a failure to read them never hides the outcome."""
        sub = t.current
        now = time.monotonic()
        if not final and now - sub.log_refreshed < self.log_refresh_seconds:
            return ""
        sub.log_refreshed = now
        try:
            if sub.log_reader is None:
                sub.log_reader = self.ctx.backend.log_reader(sub.name, sub.job_type)
            new = sub.log_reader.read()
            sub.log_events.extend(new)
            text = render(sub.name, sub.log_events)
            if new or final:
                for uri in sub.spec.logs:
                    write_log(self.ctx.store(uri), uri, t.finished_logs.get(uri, "") + text)
        except Exception as e:  # noqa: BLE001 — see docstring
            self.logger.warning(f"could not bring the log of job {sub.name} up to date: {e!r}")
            text = render(sub.name, sub.log_events)
        if final:
            for uri in sub.spec.logs:
                t.finished_logs[uri] = t.finished_logs.get(uri, "") + text
        return "\n".join(e.message for e in sub.log_events[-LOG_TAIL_LINES:])

    # --- cancellation ------------------------------------------------------------------

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        with self._in_flight_lock:
            self._cancelling = True  # no group member or retry starts after this snapshot
            in_flight = dict(self._in_flight)
        for info in active_jobs:
            in_flight.setdefault(info.aux[AUX_KEY].current.name, info.aux[AUX_KEY].current.job_type)
        jobs = sorted(in_flight.items())
        if not jobs:
            return
        names = ", ".join(n for n, _ in jobs)
        if self.settings.detach:
            self.logger.warning(
                f"leaving {len(jobs)} SageMaker job(s) running (--sagemaker-detach): {names}. "
                "Run the same snakemake command again to pick up their results."
            )
            return
        self.logger.info(f"stopping {len(jobs)} SageMaker job(s): {names}")
        try:
            self.ctx.backend.stop(jobs)
        except Exception as e:  # noqa: BLE001 — say which jobs may still run, and how to stop them
            self.logger.error(
                f"could not ask every job to stop ({_describe_error(e)}); check and stop these "
                f"jobs yourself (SageMaker console, or aws sagemaker stop-training-job / "
                f"stop-processing-job --…-job-name <name>): {names}"
            )
            return
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                statuses = self.ctx.backend.poll(jobs)
            except Exception as e:  # noqa: BLE001 — e.g. a job whose Create was interrupted
                self.logger.warning(f"could not confirm that the jobs are stopping: {e!r}")
                return
            if all(s.state is JobState.STOPPING or s.is_done for s in statuses.values()):
                return
            time.sleep(1)
        self.logger.warning(f"jobs did not confirm stopping within {STOP_WAIT_SECONDS}s: {names}")


def _describe_error(e: BaseException) -> str:
    """A failure as the user reads it: our own errors say what and how to fix; anything else
    keeps its type so that it can be looked up."""
    text = str(e) if isinstance(e, WorkflowError) else f"{type(e).__name__}: {e}"
    return text.rstrip("\n") + "\n"  # Snakemake appends its own sentence right after


def _members(job: JobExecutorInterface) -> list[Any]:
    """A group job's members in dependency order; a single job alone."""
    if job.is_group():
        return [j for level in job.toposorted for j in sorted(level, key=lambda j: j.jobid)]
    return [job]
