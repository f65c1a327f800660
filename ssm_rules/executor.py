"""The Snakemake executor: run_job / check_active_jobs / cancel_jobs. No AWS code here.

A Snakemake job (or each member of a group job, one after the other) becomes a TaskSpec,
is staged, turned into a request and submitted to the backend. Outputs are promoted only
after the backend reports the job Completed.
"""

from __future__ import annotations

import json
import os
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

from ssm_rules import docker_images, manifest_file, scratch, staging
from ssm_rules._snakemake_internals import (
    forget_storage_folders,
    hide_empty_shell_commands,
    is_forced,
)
from ssm_rules.backends.base import JobState, JobStatus, JobType, LogEvent, LogReader
from ssm_rules.board import Board
from ssm_rules.budget import Budget
from ssm_rules.context import RunContext, make_context
from ssm_rules.dryrun import run_prices
from ssm_rules.identity import (
    IDENTITY_TAG,
    TASK_TAG,
    differences,
    identity,
    identity_of,
    identity_parts,
    identity_tags,
    input_version,
)
from ssm_rules.images import image_uri
from ssm_rules.jobview import JobView, view_of
from ssm_rules.logs import render, write_log
from ssm_rules.objects import ObjectURI
from ssm_rules.outcomes import Outcome, classify, why_it_ended
from ssm_rules.placing import placement
from ssm_rules.plan import PlannedJob, check_budget, plan_errors, refusal, spec_of
from ssm_rules.requests import (
    Placement,
    adopted_placement,
    build_request,
    job_name_prefix,
    task_description,
    task_file_uri,
)
from ssm_rules.settings import ExecutorSettings
from ssm_rules.spec import Channel, TaskSpec

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
        # scratch files in the run's directory, not TMPDIR; a killed client's are removed now
        left = scratch.use(Path.cwd() / self.settings.local_root)
        if left:
            self.logger.debug(f"removed the scratch files of {len(left)} killed client(s)")
        self.ctx: RunContext = make_context(self.settings, Path.cwd(), self.logger)
        hide_empty_shell_commands()  # our script: jobs would each print "Shell command: None"
        if self.settings.poll_interval is not None:
            self.next_seconds_between_status_checks = self.settings.poll_interval
        self._bundles: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._synced: dict[str, str] = {}  # local input path → its URI, synced this run
        self._docker_contexts: dict[tuple[Path, str], docker_images.DockerContext] = {}
        self._image_contexts: dict[str, docker_images.DockerContext] = {}  # by image URI
        self._built: dict[str, str] = {}  # image URI → its build log, built (or found) this run
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
        self._prices = run_prices(self.ctx)
        self._board = self._new_board()
        self._check_plan()

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

        def check(job: Any, view: JobView) -> None:
            spec = self._spec(view, plan=True)
            tags = identity_tags(spec, identity(spec, "", {}))  # as long as the real ones
            request = build_request(spec, self._placement(spec, tags=tags, plan=True))
            self.ctx.validate(request)
            requests.append((spec, request))

        errors = plan_errors(self.workflow.dag, check)
        if errors:
            raise refusal(errors)
        if self.settings.max_cost is not None:
            prices = self._prices
            planned = [PlannedJob(spec, "", {}, "") for spec, _ in requests]
            check_budget(planned, prices, self.settings.max_cost)
            self._budget = Budget(self.settings.max_cost, prices)
        self.ctx.authorize(requests)

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
        build_log = self._built.get(first.place.image_uri, "")  # the head of the rule's log
        tracked = Tracked(
            current=first,
            pending=views[1:],
            forced=forced,
            finished_logs={uri: build_log for uri in first_spec.logs if build_log},
        )
        self.report_job_submission(
            SubmittedJobInfo(job=job, external_jobid=first.name, aux={AUX_KEY: tracked})
        )

    def _spec(self, view: JobView, plan: bool = False) -> TaskSpec:
        return spec_of(view, self.settings, self.workflow, plan=plan)

    def _submit(self, spec: TaskSpec, forced: bool) -> Submission:
        """Stage and submit, or adopt an existing job of the same identity. The request is
        built and validated before anything is deleted (stale outputs, clean_state)."""
        ctx = self.ctx
        with self._in_flight_lock:
            if self._cancelling:
                raise WorkflowError(f"rule {spec.rule}: not submitted, the run is being cancelled")
        code_uri, code_sha = self._code(spec)
        channel_uris, versions = self._channels(spec)
        # an image built from job(dockerfile=...) is named by its context: part of the identity
        built = ":" + self._image(spec) if spec.dockerfile else ""
        parts = identity_parts(spec, code_sha + built, versions)
        ident = identity_of(parts)
        place = self._placement(spec, code_uri, channel_uris, identity_tags(spec, ident))
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
        try:
            self._ensure_image(spec, place.image_uri)
        except Exception:
            if self._budget is not None:  # no job was sent: nothing to reserve for it
                self._budget.release(place.job_name)
            raise
        if spec.state_prefix:
            self._note_state_writer(spec, place.job_name, parts)
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
        # the name holds the wildcard values only as far as 63 characters allow: say them here
        wildcards = ", ".join(f"{k}={v}" for k, v in spec.wildcards)
        self.logger.info(
            f"rule {spec.rule}: submitted {request.job_type} job {place.job_name} "
            f"{f'for {wildcards} ' if wildcards else ''}"
            f"({spec.instance.count} x {spec.instance.instance_type}"
            f"{', spot' if spec.instance.spot else ''})"
        )
        self._board.submitted(spec, place.job_name, request.job_type, "submitted")
        return Submission(spec, place, request.job_type)

    def _placement(
        self,
        spec: TaskSpec,
        code_uri: str = "",
        channel_uris: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        plan: bool = False,
    ) -> Placement:
        """Where the job's things are (ssm_rules.placing, shared with the plan), on the image
        the job runs on."""
        return placement(self.ctx, spec, code_uri, channel_uris, tags, plan, self._image(spec))

    def _image(self, spec: TaskSpec) -> str:
        """The image the job runs on: the framework's (or image_uri), or the one built from
        job(dockerfile=...) on top of it, named by the context's hash."""
        ctx = self.ctx
        base = image_uri(
            spec.options, spec.rule, ctx.region, spec.instance.instance_type, spec.job_type
        )
        if spec.dockerfile is None:
            return base
        key = (spec.dockerfile, base)
        if key not in self._docker_contexts:
            self._docker_contexts[key] = docker_images.context_of(spec.dockerfile, base)
        context = self._docker_contexts[key]
        uri = docker_images.image_uri(ctx.account, ctx.region, spec.rule, context)
        self._image_contexts[uri] = context
        return uri

    def _ensure_image(self, spec: TaskSpec, uri: str) -> None:
        """Build and push a job(dockerfile=...) image once per run, before its first job;
        the build's log goes to the rule's log and stays at its head."""
        if spec.dockerfile is None or uri in self._built:
            return
        context = self._image_contexts[uri]
        lines: list[str] = []

        def log(line: str) -> None:
            lines.append(line)
            self.logger.info(f"rule {spec.rule}: {line}")
            for log_uri in spec.logs:
                write_log(self.ctx.store(log_uri), log_uri, "\n".join(lines) + "\n")

        self.ctx.build_image(spec.rule, context, uri, log)
        self._built[uri] = "\n".join(lines) + "\n" if lines else ""

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
                self._board.submitted(spec, status.name, spec.job_type, "re-attached")
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
                self._board.submitted(spec, status.name, spec.job_type, "reused")
                return Submission(spec, place, spec.job_type)
        return None

    def _note_state_writer(self, spec: TaskSpec, job: str, parts: dict[str, Any]) -> None:
        """A job that resumes from task state written by a job with other code, params or
        inputs would mix the two silently: say what differs, and how not to resume. Then
        record this job as the state's writer."""
        assert spec.state_prefix is not None
        store = self.ctx.store(spec.state_prefix)
        if not spec.clean_state:
            before = staging.read_state_writer(store, spec.state_prefix)
            changed = differences(before["parts"], parts) if before.get("parts") else []
            if changed and store.list(spec.state_prefix):
                self.logger.warning(
                    f"rule {spec.rule}: job {job} resumes from the task state at "
                    f"{spec.state_prefix}, which job {before.get('job')} wrote with other "
                    f"{'; '.join(changed)}. If that state must not carry over, set "
                    "job(clean_state=True) for this run."
                )
        staging.record_state_writer(store, spec.state_prefix, job, parts)

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

    def _channels(self, spec: TaskSpec) -> tuple[dict[str, str], dict[str, str]]:
        """Channel name → URI, and → the version of its data (for the job's identity).
        Local inputs are synced first, once per run and local path: the jobs of one rule
        over many wildcards share one upload of a shared dataset. A list of files becomes
        a ManifestFile naming them."""
        uris: dict[str, str] = {}
        versions: dict[str, str] = {}
        for ch in spec.channels:
            if ch.parts:
                files = self._list_files(ch)
                uri = staging.manifest_uri(self.ctx.root, spec.task_id, ch.name)
                staging.upload_text(self.ctx.store(uri), manifest_file.build(files), uri)
                uris[ch.name] = uri
                versions[ch.name] = json.dumps([input_version(self.ctx.store(f), f) for f in files])
                continue
            if ch.uri is not None:
                uris[ch.name] = ch.uri
            else:
                assert ch.local_path is not None
                uris[ch.name] = self._sync(Path(ch.local_path))
            versions[ch.name] = input_version(self.ctx.store(uris[ch.name]), uris[ch.name])
        return uris, versions

    def _sync(self, path: Path) -> str:
        if str(path) not in self._synced:
            dest = staging.input_prefix(self.ctx.root, path)
            self._synced[str(path)] = staging.sync_local_input(self.ctx.store(dest), path, dest).uri
        return self._synced[str(path)]

    def _list_files(self, ch: Channel) -> list[str]:
        """The URIs of a list channel's files. Local files (all or none of them: the spec
        checks) are synced together, keyed by their path below the folder they share, so
        the job sees them by name."""
        if ch.parts[0].local_path is None:
            return [str(p.uri) for p in ch.parts]
        local = [Path(str(p.local_path)) for p in ch.parts]
        common = Path(os.path.commonpath([p.parent for p in local]))
        wanted = {p.relative_to(common).as_posix(): p for p in local}
        key = "\n".join(map(str, local))
        if key not in self._synced:
            dest = staging.files_prefix(self.ctx.root, local)
            staging.sync_local_files(self.ctx.store(dest), wanted, dest)
            self._synced[key] = dest
        base = ObjectURI.parse(self._synced[key])
        return [str(base.join(rel)) for rel in wanted]

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
            self._board.seen(t.current.name, status)  # a line per status change
            if status is None or not status.is_done:
                self._refresh_logs(t)
                yield info
                continue
            self._untrack(t.current.name)
            if self._budget is not None:
                self._budget.settle(t.current.spec, status)
            if self._finish(info, t, status):
                yield info
        self._board.tick()

    def _track(self, name: str, job_type: JobType) -> None:
        with self._in_flight_lock:
            self._in_flight[name] = job_type

    def _untrack(self, name: str) -> None:
        with self._in_flight_lock:
            self._in_flight.pop(name, None)

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
            why = why_it_ended(status, sub.job_type, sub.spec.instance)
            self.report_job_error(
                info,
                msg=f"rule {sub.spec.rule}: SageMaker {sub.job_type} job {sub.name} {why}\n"
                + _log_tail(why, tail, sub.spec.logs),
            )
            return False
        try:
            for warning in staging.promote_outputs(self.ctx.store, sub.spec, sub.place):
                self.logger.warning(f"rule {sub.spec.rule}: {warning}")
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
        forget_storage_folders(info.job)  # tensorboard() folders: seen only now
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
            self._board.log_lines(sub.name, new)  # metric values as they change
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

    # --- the end ---------------------------------------------------------------------

    def shutdown(self) -> None:
        """After every run (also a failed or cancelled one): the bill, next to the record."""
        super().shutdown()
        record = self._board.close()
        if record is not None:
            from ssm_rules.report import write_report

            try:
                html, png = write_report(record.path, record.doc, time.time())
                self.logger.info(f"SageMaker bill: {html} ({png}; record {record.path})")
            except Exception as e:  # noqa: BLE001 — the run's outcome stands without its report
                self.logger.warning(f"could not write the run's report: {e!r}")

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


def _log_tail(why: str, tail: str, logs: tuple[str, ...]) -> str:
    """The job's last log lines, once: a FailureReason that already quotes them (the
    launcher's failure file ends with the program's last lines, as SageMaker's AlgorithmError
    does) is not followed by the same lines again."""
    quoted = [line for line in why.splitlines()[1:] if line.strip()]
    if quoted and set(quoted) <= set(tail.splitlines()):
        return f"The whole log: {', '.join(logs)}\n" if logs else ""
    return f"Last log lines:\n{tail}\n" if tail else ""


def _members(job: JobExecutorInterface) -> list[Any]:
    """A group job's members in dependency order; a single job alone."""
    if job.is_group():
        return [j for level in job.toposorted for j in sorted(level, key=lambda j: j.jobid)]
    return [job]
