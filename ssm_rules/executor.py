"""The Snakemake executor: run_job / check_active_jobs / cancel_jobs. No AWS code here.

A Snakemake job (a group job: one SageMaker job running its members, ssm_rules.group)
becomes a TaskSpec, is staged and submitted (ssm_rules.submission). When its SageMaker job
ends, what to do is decided by ssm_rules.decisions; this module carries the decision out
(promotion, a retry) in a worker thread and maps it to Snakemake's report_job_* calls.
Outputs are promoted only after the backend reports the job Completed.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncGenerator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from ssm_rules import aws_clients, scratch, staging
from ssm_rules._snakemake_internals import (
    forget_storage_folders,
    hide_empty_shell_commands,
    is_forced,
)
from ssm_rules.backends.base import JobState, JobStatus, JobType, LogBudgetSpent
from ssm_rules.backends.context import RunContext
from ssm_rules.backends.registry import run_context
from ssm_rules.board import Board
from ssm_rules.budget import Budget
from ssm_rules.decisions import (
    Fail,
    JobFacts,
    OnDemand,
    RetrySpot,
    decide,
    failure_message,
    retry_message,
    retry_spec,
)
from ssm_rules.dryrun import run_prices
from ssm_rules.group import group_spec, members_in_order
from ssm_rules.identity import identity, identity_tags
from ssm_rules.jobview import JobView, view_of
from ssm_rules.logs import log_texts, write_log
from ssm_rules.objects import ObjectURI
from ssm_rules.plan import PlannedJob, check_budget, plan_errors, refusal
from ssm_rules.requests import build_request
from ssm_rules.settings import ExecutorSettings
from ssm_rules.spec import TaskSpec
from ssm_rules.submission import InFlight, Submission, Submitter
from ssm_rules.warm_pools import WarmPools, plan_of_jobs, with_keep_alive

AUX_KEY = "ssm_rules"
LOG_TAIL_LINES = 20
STOP_WAIT_SECONDS = 120
STARTUP_SLEEP_SECONDS = 0.05
MAX_FAILED_POLLS = 10  # consecutive status rounds that fail (after botocore's own retries)
# How long a status round waits for the handling of the jobs that ended in it (promotion,
# the next submission) before it moves on; one still being handled is reported in a later
# round. Enough for a usual promotion, short against the status interval.
END_WAIT_SECONDS = 2.0
END_WORKERS = 4  # jobs whose ends are handled at once
# Jobs submitted at once: one job's staging (uploads, deletes) overlaps another's Create,
# which the backend spaces to --sagemaker-max-submit-rate anyway.
SUBMIT_WORKERS = 4


@dataclass(frozen=True)
class Ended:
    """What handling an ended job came to: still active (a retry was submitted), a success,
    or an error to report."""

    still_active: bool = False
    error: str | None = None


STILL_ACTIVE = Ended(still_active=True)
SUCCEEDED = Ended()


@dataclass
class Tracked:
    """A Snakemake job in flight: the SageMaker job running now (a retry replaces it)."""

    current: Submission
    forced: bool = False
    capacity_failures: int = 0
    finished_logs: dict[str, str] = field(default_factory=dict)  # log URI → earlier jobs' text
    ending: Future[Ended] | None = None  # the handling of ``current``'s end, once it ended

    def facts(self) -> JobFacts:
        return JobFacts(
            job_type=self.current.job_type,
            instance=self.current.spec.instance,
            capacity_failures=self.capacity_failures,
        )


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        self.settings: ExecutorSettings = self.workflow.executor_settings or ExecutorSettings()
        # scratch files in the run's directory, not TMPDIR; a killed client's are removed now
        left = scratch.use(Path.cwd() / self.settings.local_root)
        if left:
            self.logger.debug(f"removed the scratch files of {len(left)} killed client(s)")
        self.ctx: RunContext = run_context(self.settings, Path.cwd(), self.logger)
        prepare = getattr(self.ctx.backend, "prepare", None)
        if prepare is not None:  # e.g. the local backend's runner server, started meanwhile
            prepare()
        hide_empty_shell_commands()  # our script: jobs would each print "Shell command: None"
        if self.settings.poll_interval is not None:
            self.next_seconds_between_status_checks = self.settings.poll_interval
        self.in_flight = InFlight()
        self.submitter = Submitter(
            self.ctx, self.settings, self.workflow, self.logger, self.in_flight
        )
        self._prices = run_prices(self.ctx)
        self.board = self._new_board()
        self.submitter.board = self.board  # says each job submitted, re-attached or reused
        self._workers = ThreadPoolExecutor(END_WORKERS, thread_name_prefix="ssm-rules-end")
        self._submitters = ThreadPoolExecutor(SUBMIT_WORKERS, thread_name_prefix="ssm-rules-submit")
        self._failed_polls = 0
        # CloudWatch reads cost one call per stream: follow remote logs less often
        self.log_refresh_seconds = 2.0 if self.ctx.backend_name == "local" else 30.0
        self.warm_pools = WarmPools({}, self.ctx.backend, self.logger)  # the plan's: below
        self._check_plan()
        # What Snakemake and the plugins built so far (the DAG, the imported modules) lives
        # as long as the run: out of the garbage collector's sight, so that a full collection
        # while jobs run (about 0.1 s each here, in the way of the next submission) looks only
        # at what the run allocates from now on.
        gc.freeze()
        # Last: the status thread (started before this method, see sleep()) reads the
        # attributes above. An exception there before Snakemake's scheduler exists is only
        # printed (RemoteExecutor._wait_thread), and the run would wait forever.
        self._ready = True

    def _new_board(self) -> Board:
        """The live board and the run record (ssm_rules.board, ssm_rules.runrecord)."""
        local = self.ctx.backend_name == "local"
        return Board(
            self.logger,
            self.ctx.backend_name,
            self.ctx.region,
            Path.cwd() / self.settings.local_root,
            self.ctx.root,
            str(getattr(self.ctx.backend, "root", "")) if local else None,
            self._prices,
        )

    def _check_plan(self) -> None:
        """Validate every job this run will submit before submitting any: a typo in the last
        rule must not surface hours (and dollars) into the pipeline. Each job's request is
        built (its image resolved) and checked as it will be sent: the identity tags of the
        submit, of the same lengths; stand-in URIs where nothing is staged yet. Nothing is
        uploaded; on aws the storage bucket is checked (HeadBucket) first."""
        if self.ctx.backend_name == "aws" and self.ctx.s3 is not None:
            storage = self.workflow.storage_settings
            if storage.default_storage_provider == "s3" and storage.default_storage_prefix:
                from ssm_rules.backends.aws.context import check_storage_bucket

                check_storage_bucket(
                    self.ctx.s3.client,
                    storage.default_storage_prefix,
                    staging_bucket=ObjectURI.parse(self.ctx.root).bucket,
                )

        requests: list[tuple[TaskSpec, Any]] = []
        jobs: list[list[Any]] = []  # each request's Snakemake jobs (a group's: its members)

        def checked(planned_jobs: list[Any], spec: TaskSpec) -> None:
            tags = identity_tags(spec, identity(spec, "", {}))  # as long as the real ones
            request = build_request(spec, self.submitter.placement(spec, tags=tags, plan=True))
            self.ctx.validate(request)
            requests.append((spec, request))
            jobs.append(planned_jobs)

        def check(job: Any, view: JobView) -> None:
            spec = self.submitter.spec(view, plan=True)
            if self.workflow.dag.get_job_group(job) is None:  # else: its group's job's request
                checked([job], spec)

        errors = plan_errors(
            self.workflow.dag,
            check,
            check_group=lambda group, spec: checked(members_in_order(group), spec),
            spec=lambda view: self.submitter.spec(view, plan=True),
        )
        if errors:
            raise refusal(errors)
        # the warm pools of the plan's chains of on-demand training jobs (ssm_rules.warm_pools);
        # a group is one job there too, followed by what follows any of its members
        planned_pools = [(js, spec, r) for js, (spec, r) in zip(jobs, requests, strict=True)]
        pools = plan_of_jobs(planned_pools)
        if self.settings.max_cost is not None:
            prices = self._prices
            kept = [with_keep_alive(s, pools[s.task_id].keep_alive_seconds) for s, _ in requests]
            planned = [PlannedJob(spec, "", {}, "") for spec in kept]
            check_budget(planned, prices, self.settings.max_cost)
            self.submitter.budget = Budget(self.settings.max_cost, prices)
        self.ctx.authorize(requests)
        self.warm_pools = WarmPools(
            pools,
            self.ctx.backend,
            self.logger,
            bill=self._bill_warm_pool,
            closed=self._warm_pool_closed,
        )
        self.submitter.warm_pools = self.warm_pools

    def _bill_warm_pool(self, spec: TaskSpec, seconds: float) -> None:
        if self.submitter.budget is not None:
            self.submitter.budget.add_retained(spec, seconds)

    def _warm_pool_closed(self, name: str) -> None:
        if self.submitter.budget is not None:
            self.submitter.budget.pool_closed(name)

    # --- submission (ssm_rules.submission) ------------------------------------------------

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        """The jobs Snakemake found ready together, submitted a few at once (the interface
        allows it: each job is still reported on its own), returning once each is submitted
        or reported failed, as the one-by-one default does.

        Ctrl-C (KeyboardInterrupt in Snakemake's main thread, which waits here) keeps the
        guarantees of one-by-one submission: from that moment no submission may register a
        job (InFlight refuses it, so nothing is created after the interrupt) and the
        submissions not started are dropped; the ones past registration finish their
        Create before Snakemake's cancel_jobs, which stops every job registered."""
        for job in jobs:
            self.run_job_pre(job)  # Snakemake's "rule ...:" block, in order, from this thread
        if len(jobs) < 2:
            for job in jobs:
                self.run_job(job)
            return
        futures = [self._submitters.submit(self.run_job, job) for job in jobs]
        try:
            wait(futures)
        except BaseException:
            self.in_flight.cancel()
            for future in futures:
                future.cancel()
            wait(futures)
            raise

    def run_job(self, job: JobExecutorInterface) -> None:
        """Submit the job (a group job: one SageMaker job running its members, ssm_rules.group).
        A failure is this job's error, not the run's: Snakemake goes on with the others (and
        -k keeps going)."""
        try:
            members = _members(job)
            specs = [self.submitter.spec(view_of(m)) for m in members]
            first_spec = group_spec(job.groupid, specs) if job.is_group() else specs[0]
            forced = any(is_forced(self.workflow, m) for m in members)
            first = self.submitter.submit(first_spec, forced)
        except Exception as e:  # noqa: BLE001 — reported as this job's error, cause named
            self.report_job_error(SubmittedJobInfo(job=job), msg=_describe_error(e))
            return
        build_log = self.submitter.build_log(first.place.image_uri)  # the head of the rule's log
        tracked = Tracked(
            current=first,
            forced=forced,
            finished_logs={uri: build_log for uri in first_spec.logs if build_log},
        )
        self.report_job_submission(
            SubmittedJobInfo(job=job, external_jobid=first.name, aux={AUX_KEY: tracked})
        )

    def print_job_error(self, job_info: SubmittedJobInfo, msg: Any = None, **kwargs: Any) -> None:
        if msg and job_info.job.is_group():
            # Snakemake's GroupJob.log_error drops the message (it prints each member's
            # "Error in rule" with none): the reason, naming the member, is said here
            self.logger.error(str(msg).rstrip("\n"))
        super().print_job_error(job_info, msg, **kwargs)

    # --- status: query, decide (ssm_rules.decisions), act ----------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        """One status round. A job that ended is handed to a worker thread (final log read,
        promotion copies, the next submission): a slow copy must not hold up the status of
        every other job. Its Snakemake job is reported (report_job_success / _error, from this
        coroutine, as the interface expects) in the round its handling finishes; until then
        it stays active."""
        if not active_jobs:
            return
        tracked: list[Tracked] = [info.aux[AUX_KEY] for info in active_jobs]
        statuses = await self._poll([t for t in tracked if t.ending is None])
        running: list[Tracked] = []
        for info, t in zip(active_jobs, tracked, strict=True):
            if t.ending is not None:
                continue  # its end is being handled: below
            status = statuses.get(t.current.name)
            self.board.seen(t.current.name, status)  # a line per status change
            if status is None or not status.is_done:
                running.append(t)
                yield info
                continue
            self.in_flight.untrack(t.current.name)
            if self.submitter.budget is not None and not t.current.reused:
                self.submitter.budget.settle(t.current.spec, status)
            t.ending = self._workers.submit(self._end, t, status)
            # an end handled past this round's wait is reported in the round it wakes
            t.ending.add_done_callback(lambda _: self._wake_status_check())
        # least recently read first: when the backend's log calls of the round run out, the
        # jobs left out are the first served next round (round robin)
        for t in sorted(running, key=lambda t: t.current.log_refreshed):
            self._refresh_logs(t)
        self.board.tick()  # the summary, at its interval
        ending = [asyncio.wrap_future(t.ending) for t in tracked if t.ending is not None]
        if ending:  # most ends take well under this: reported in the round they ended
            await asyncio.wait(ending, timeout=END_WAIT_SECONDS)
        for info, t in zip(active_jobs, tracked, strict=True):
            if t.ending is None:
                continue  # yielded above
            if not t.ending.done():
                yield info
                continue
            ended, t.ending = t.ending.result(), None  # _end lets nothing escape
            if ended.still_active:
                yield info
            elif ended.error is not None:
                self.report_job_error(info, msg=ended.error)
            else:
                forget_storage_folders(info.job)  # tensorboard() folders: seen only now
                self.report_job_success(info)

    async def _poll(self, tracked: list[Tracked]) -> dict[str, JobStatus]:
        """The status of every job, one round; a round that fails past botocore's own retries
        is tried again next round, up to MAX_FAILED_POLLS in a row."""
        if not tracked:
            return {}
        async with self.status_rate_limiter:
            try:
                statuses = self.ctx.backend.poll(
                    [(t.current.name, t.current.job_type) for t in tracked]
                )
            except Exception as e:  # noqa: BLE001 — a status round failing past its retries
                self._failed_polls += 1
                if self._failed_polls >= MAX_FAILED_POLLS:
                    raise WorkflowError(
                        f"{MAX_FAILED_POLLS} status rounds in a row failed ({e}); the jobs keep "
                        "running: run the same command again to re-attach to them"
                    ) from e
                self.logger.warning(f"status round failed, trying again next round: {e!r}")
                return {}
        self._failed_polls = 0
        return statuses

    async def sleep(self) -> None:
        """The wait between status rounds.

        A backend that can tell when a job ends (local: its runner exits) ends the wait then,
        so a successor is submitted at once, not a poll interval later; a submission wakes it
        too (the next wait must include the new job). After a failed round, the whole
        interval: a backend that cannot answer is not asked again right away.

        Otherwise the interval is read again every half second: RemoteExecutor.__init__
        (snakemake-interface-executor-plugins 9) starts the status thread before it calls
        ``__post_init__``, so the first sleep began before ``--sagemaker-poll-interval`` was
        set, with Snakemake's ``--seconds-between-status-checks`` (the sagemaker profile's
        30 s), and the first status round came about 30 s after start.
        """
        if not getattr(self, "_ready", False):  # __post_init__ is still running: no job yet
            await asyncio.sleep(STARTUP_SLEEP_SECONDS)
            return
        ctx = self.ctx
        wait_for_end = getattr(ctx.backend, "wait_for_end", None)
        if wait_for_end is not None and not self._failed_polls:
            with self.lock:  # Snakemake's list of the jobs still running after the last round
                tracked: list[Tracked] = [info.aux[AUX_KEY] for info in self.active_jobs]
            # a job whose end is being handled is over (its runner gone): its handling wakes us
            names = [t.current.name for t in tracked if t.ending is None]
            await asyncio.to_thread(wait_for_end, names, self.next_seconds_between_status_checks)
            return
        started = time.monotonic()
        while (left := started + self.next_seconds_between_status_checks - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.5))

    def report_job_submission(self, job_info: SubmittedJobInfo, register_job: bool = True) -> None:
        super().report_job_submission(job_info, register_job)
        self._wake_status_check()  # a job to watch: the next wait must include it

    def shutdown(self) -> None:
        """Snakemake joins the status thread: wake it from its wait rather than let the
        run's end wait out the interval."""
        with self.lock:
            self.wait = False
        self._wake_status_check()
        super().shutdown()  # the status thread has stopped: no end is handed over any more
        self._workers.shutdown(wait=True)  # as the status thread did, finish what was begun
        self._submitters.shutdown(wait=True)
        # the run is over (or cancelled): a warm pool no job of it will take would idle,
        # billed, until its keep-alive ran out
        self.warm_pools.end_all()
        if self.ctx.backend_name == "aws":  # ours only: the S3 storage plugin has its own clients
            self.logger.info(f"ssm_rules made {aws_clients.CALLS.summary()} to AWS")
        self._write_bill()

    def _wake_status_check(self) -> None:
        ctx = getattr(self, "ctx", None)  # None: __post_init__ has not run (or failed)
        wake = getattr(ctx.backend, "wake", None) if ctx is not None else None
        if wake is not None:
            wake()

    def _end(self, t: Tracked, status: JobStatus) -> Ended:
        """Carry out the decision about a job that ended (in a worker thread). Nothing
        escapes: the job's error is returned, for the status coroutine to report."""
        try:
            return self._act(t, status)
        except Exception as e:  # noqa: BLE001 — see docstring
            return Ended(error=_describe_error(e))

    def _act(self, t: Tracked, status: JobStatus) -> Ended:
        sub = t.current
        who = sub.spec.label  # "rule train", or "group g"
        if sub.job_type is JobType.TRAINING:  # which pool it ran on; end pools nothing takes
            self.warm_pools.ended(sub.spec, status)
        tail = self._refresh_logs(t, final=True)
        decision = decide(status, t.facts())
        if isinstance(decision, Fail):
            why = decision.why
            return Ended(
                error=failure_message(who, sub.job_type, sub.name, why, tail, sub.spec.logs)
            )
        if isinstance(decision, RetrySpot | OnDemand):
            self.logger.warning(retry_message(who, status.name, decision))
            t.capacity_failures = decision.attempt
            t.current = self.submitter.submit(retry_spec(sub.spec, decision), forced=True)
            return STILL_ACTIVE
        try:
            for warning in staging.promote_outputs(self.ctx.store, sub.spec, sub.place):
                self.logger.warning(f"{who}: {warning}")
        except staging.PromotionError as e:
            return Ended(error=f"{who}: {e}\n")
        except Exception as e:  # noqa: BLE001 — storage failing past its retries: this job's error
            return Ended(
                error=f"{who}: job {sub.name} completed, but putting its outputs in "
                f"place failed: {_describe_error(e)}. Rerun to retry: the finished job is "
                "reused, not run again.\n"
            )
        return SUCCEEDED

    def _refresh_logs(self, t: Tracked, final: bool = False) -> str:
        """Bring the rule's log file up to date with the job's logs (every instance), while
        it runs (at most every ``log_refresh_seconds``) and once more when it ended. Returns
        the last lines. Logs are a courtesy: a failure to read them never hides the outcome."""
        sub = t.current
        now = time.monotonic()
        if not final and now - sub.log_refreshed < self.log_refresh_seconds:
            return ""
        try:
            if sub.log_reader is None:
                sub.log_reader = self.ctx.backend.log_reader(sub.name, sub.job_type)
            new = sub.log_reader.read()
            sub.log_refreshed = now
            sub.log_events.extend(new)
            self.board.log_lines(sub.name, new)  # metric values as they change
            texts = log_texts(sub.spec, sub.name, sub.log_events)
            if new or final:
                for uri, text in texts.items():
                    write_log(self.ctx.store(uri), uri, t.finished_logs.get(uri, "") + text)
        except LogBudgetSpent:
            return ""  # not read this round: still due, and first in line next round
        except Exception as e:  # noqa: BLE001 — see docstring
            sub.log_refreshed = now
            self.logger.warning(f"could not bring the log of job {sub.name} up to date: {e!r}")
            texts = log_texts(sub.spec, sub.name, sub.log_events)
        if final:
            for uri, text in texts.items():
                t.finished_logs[uri] = t.finished_logs.get(uri, "") + text
        return "\n".join(e.message for e in sub.log_events[-LOG_TAIL_LINES:])

    def _write_bill(self) -> None:
        """After every run (also a failed or cancelled one): the bill, next to the record."""
        record = self.board.close()
        if record is None:
            return  # no job was submitted
        from ssm_rules.report import write_report

        try:
            html, png = write_report(record.path, record.doc, time.time())
        except Exception as e:  # noqa: BLE001 — the run's outcome stands without its report
            self.logger.warning(f"could not write the run's report: {e!r}")
            return
        self.logger.info(f"SageMaker bill: {html} ({png}; record {record.path})")

    # --- cancellation ------------------------------------------------------------------

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        in_flight = self.in_flight.cancel()  # no retry starts after this
        for info in active_jobs:
            t: Tracked = info.aux[AUX_KEY]
            if t.ending is None:  # else its job ended; a retry is in in_flight
                in_flight.setdefault(t.current.name, t.current.job_type)
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
    return members_in_order(job) if job.is_group() else [job]
