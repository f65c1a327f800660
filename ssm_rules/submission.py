"""Submitting a task: stage its code and inputs, identify it, admit it to the budget, adopt
a job of the same identity or create one (building its image first).

:class:`Submitter` holds what one run caches (code bundles, synced inputs, built images)
and :class:`InFlight` the SageMaker jobs a Ctrl-C must stop. Both are used from Snakemake's
main thread (``run_job``, its submitter threads) and from the executor's worker threads (a
spot retry): each guards its state with a lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules import docker_images, manifest_file, staging
from ssm_rules.backends.base import JobState, JobType, LogEvent, LogReader
from ssm_rules.backends.context import RunContext
from ssm_rules.board import Board
from ssm_rules.budget import Budget
from ssm_rules.digests import CACHE_FILE, DigestCache
from ssm_rules.identity import (
    IDENTITY_TAG,
    TASK_TAG,
    differences,
    identity_of,
    identity_parts,
    identity_tags,
    input_version,
)
from ssm_rules.images import image_uri
from ssm_rules.jobview import JobView
from ssm_rules.logs import write_log
from ssm_rules.objects import ObjectURI
from ssm_rules.placing import placement
from ssm_rules.plan import spec_of
from ssm_rules.requests import (
    Placement,
    adopted_placement,
    build_request,
    has_task_file,
    job_name_prefix,
    task_description,
    task_file_uri,
)
from ssm_rules.settings import ExecutorSettings
from ssm_rules.spec import Channel, TaskSpec
from ssm_rules.warm_pools import WarmPools, keep_alive_of

CREATE_WAIT_SECONDS = 60  # cancel() waits this long at most for Create calls under way


@dataclass
class Submission:
    """One SageMaker job of a Snakemake job (submitted by us, or adopted)."""

    spec: TaskSpec
    place: Placement
    job_type: JobType
    log_reader: LogReader | None = None
    log_events: list[LogEvent] = field(default_factory=list)
    log_refreshed: float = 0.0  # time.monotonic() of the last read
    reused: bool = False  # completed in an earlier run: nothing of it is billed to this one

    @property
    def name(self) -> str:
        return self.place.job_name


class InFlight:
    """Every SageMaker job we submitted (or adopted) that has not ended: ours to stop on
    Ctrl-C. A job is registered before its Create call, so an interrupt right after it cannot
    orphan it; Snakemake's own active_jobs list is empty while its status thread checks, and
    misses a job whose run_job was interrupted."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobType] = {}
        self._lock = threading.Lock()
        self._cancelling = False  # nothing new is submitted after cancel()
        # Create calls under way (a worker thread's spot retry, the submit pool): cancel()
        # waits for them, or a job created just after its snapshot's stop would run unwatched
        self._creating = 0
        self._created = threading.Condition(self._lock)

    def track(self, name: str, job_type: JobType, rule: str) -> None:
        """Register a job about to be created (or adopted). Refused once cancel() took its
        snapshot: a job registered after it would be created and never stopped."""
        with self._lock:
            if self._cancelling:
                raise WorkflowError(f"rule {rule}: not submitted, the run is being cancelled")
            self._jobs[name] = job_type

    @contextlib.contextmanager
    def creating(self, name: str, job_type: JobType, rule: str) -> Iterator[None]:
        """Register a job (see track) for the span of its Create call."""
        with self._lock:
            if self._cancelling:
                raise WorkflowError(f"rule {rule}: not submitted, the run is being cancelled")
            self._jobs[name] = job_type
            self._creating += 1
        try:
            yield
        finally:
            with self._lock:
                self._creating -= 1
                self._created.notify_all()

    def untrack(self, name: str) -> None:
        with self._lock:
            self._jobs.pop(name, None)

    def refuse_if_cancelling(self, rule: str) -> None:
        with self._lock:
            if self._cancelling:
                raise WorkflowError(f"rule {rule}: not submitted, the run is being cancelled")

    def cancel(self) -> dict[str, JobType]:
        """Refuse every later submission (no group member or retry starts after this), and
        return the jobs in flight now."""
        with self._lock:
            self._cancelling = True
            # a Create under way ends soon (botocore's retries are bounded): then its job,
            # if it was made, is in the snapshot and is stopped with the others
            self._created.wait_for(lambda: self._creating == 0, timeout=CREATE_WAIT_SECONDS)
            return dict(self._jobs)


class Submitter:
    def __init__(
        self,
        ctx: RunContext,
        settings: ExecutorSettings,
        workflow: Any,
        logger: Any,
        in_flight: InFlight,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.workflow = workflow
        self.logger = logger
        self.in_flight = in_flight
        self.budget: Budget | None = None  # with --sagemaker-max-cost, set once the plan is checked
        self.board: Board | None = None  # the run's live board, set by the executor
        self.warm_pools: WarmPools | None = None  # set once the plan is checked
        # Two threads may stage the same thing at once (run_job, and a worker thread's next
        # member): one lock over the caches, so a shared dataset is synced and an image built
        # once per run.
        self._lock = threading.RLock()
        self._bundles: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._synced: dict[str, str] = {}  # local input path → its URI, synced this run
        # the SHA-256 of local input files by their stat, kept across runs: unchanged files
        # are not read again (digests.py says why the stat it compares is enough)
        self._digests = DigestCache(Path.cwd() / settings.local_root / CACHE_FILE)
        self._docker_contexts: dict[tuple[Path, str], docker_images.DockerContext] = {}
        self._image_contexts: dict[str, docker_images.DockerContext] = {}  # by image URI
        self._built: dict[str, str] = {}  # image URI → its build log, built (or found) this run

    def spec(self, view: JobView, plan: bool = False) -> TaskSpec:
        return spec_of(view, self.settings, self.workflow, plan=plan)

    def build_log(self, image: str) -> str:
        """The log of the build of ``image`` this run ("" if none): the head of the rule's log."""
        with self._lock:
            return self._built.get(image, "")

    def submit(self, spec: TaskSpec, forced: bool) -> Submission:
        """Stage and submit, or adopt an existing job of the same identity. The request is
        built and validated before anything is deleted (stale outputs, clean_state)."""
        ctx = self.ctx
        self.in_flight.refuse_if_cancelling(spec.rule)
        if self.warm_pools is not None:  # the keep-alive of a warm pool for its chain
            spec = self.warm_pools.decide(spec)
        code_uri, code_sha = self._code(spec)
        channel_uris, versions = self._channels(spec)
        # an image built from job(dockerfile=...) is named by its context: part of the identity
        built = ":" + self.image(spec) if spec.dockerfile else ""
        parts = identity_parts(spec, code_sha + built, versions)
        ident = identity_of(parts)
        place = self.placement(spec, code_uri, channel_uris, identity_tags(spec, ident))
        request = build_request(spec, place)
        ctx.validate(request)
        if self.budget is not None:  # refused before anything is deleted or sent
            self.budget.admit(spec, place.job_name)
        try:
            staging.remove_stale_outputs(ctx.store, spec)
            adopted = self._adopt(spec, ident, forced)
            if adopted is not None:
                if self.budget is not None:  # nothing new is billed for a job already paid for
                    self.budget.release(place.job_name)
                return adopted
            self._ensure_image(spec, place.image_uri)
            if spec.state_prefix:
                self._note_state_writer(spec, place.job_name, parts)
            if spec.clean_state and spec.state_prefix:
                n = staging.clear_prefix(ctx.store(spec.state_prefix), spec.state_prefix)
                self.logger.info(f"{spec.label}: clean_state wiped {n} state objects")
            if has_task_file(spec):
                uri = task_file_uri(place)
                task = task_description(spec, place.restore_state)
                staging.upload_text(ctx.store(uri), task.to_json(), uri)
            # Tracked before the call and kept if it fails: a Create whose reply was lost may
            # have created the job, and Ctrl-C must stop it (stopping an unknown job is a no-op).
            with self.in_flight.creating(place.job_name, request.job_type, spec.rule):
                if self.warm_pools is not None:  # no keep-alive if the quota refuses it
                    request = self.warm_pools.submit(ctx.backend.submit, request)
                else:
                    ctx.backend.submit(request)
        except Exception:
            # no job was started (a Create refused, or failed past its retries): its
            # reservation would otherwise refuse later jobs as if it ran
            if self.budget is not None:
                self.budget.release(place.job_name)
            raise
        # the name holds the wildcard values only as far as 63 characters allow: say them here
        wildcards = ", ".join(f"{k}={v}" for k, v in spec.wildcards)
        keep = keep_alive_of(request)
        self.logger.info(
            f"{spec.label}: submitted {request.job_type} job {place.job_name} "
            f"{f'for {wildcards} ' if wildcards else ''}"
            f"({spec.instance.count} x {spec.instance.instance_type}"
            f"{', spot' if spec.instance.spot else ''}"
            f"{f', warm pool kept {keep // 60} min after it' if keep else ''})"
        )
        self._said(spec, place.job_name, "submitted")
        return Submission(spec, place, request.job_type)

    def placement(
        self,
        spec: TaskSpec,
        code_uri: str = "",
        channel_uris: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        plan: bool = False,
    ) -> Placement:
        """Where the job's things are (ssm_rules.placing, shared with the plan), on the image
        the job runs on."""
        return placement(self.ctx, spec, code_uri, channel_uris, tags, plan, self.image(spec))

    def image(self, spec: TaskSpec) -> str:
        """The image the job runs on: the framework's (or image_uri), or the one built from
        job(dockerfile=...) on top of it, named by the context's hash."""
        ctx = self.ctx
        base = image_uri(
            spec.options, spec.rule, ctx.region, spec.instance.instance_type, spec.job_type
        )
        if spec.dockerfile is None:
            return base
        key = (spec.dockerfile, base)
        with self._lock:
            if key not in self._docker_contexts:
                self._docker_contexts[key] = docker_images.context_of(spec.dockerfile, base)
            context = self._docker_contexts[key]
            uri = docker_images.image_uri(ctx.account, ctx.region, spec.rule, context)
            self._image_contexts[uri] = context
        return uri

    def _ensure_image(self, spec: TaskSpec, uri: str) -> None:
        """Build and push a job(dockerfile=...) image once per run, before its first job;
        the build's log goes to the rule's log and stays at its head."""
        if spec.dockerfile is None:
            return
        with self._lock:
            if uri in self._built:
                return
            context = self._image_contexts[uri]
            lines: list[str] = []

            def log(line: str) -> None:
                lines.append(line)
                self.logger.info(f"{spec.label}: {line}")
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
        same = [s for s in found if s.tags.get(IDENTITY_TAG) == ident]
        for status in found:
            if status not in same and status.state is JobState.IN_PROGRESS:
                kind = "training" if spec.job_type is JobType.TRAINING else "processing"
                self.logger.warning(
                    f"{spec.label}: job {status.name} of an earlier run (other code, inputs "
                    "or params) is still running and writing this task's state; stop it if it "
                    f"is not wanted: aws sagemaker stop-{kind}-job --{kind}-job-name {status.name}"
                )
        for status in same:
            place = adopted_placement(status.name, self.ctx.jobs_uri)
            if status.state is JobState.IN_PROGRESS and not forced:
                self.in_flight.track(status.name, spec.job_type, spec.rule)
                self.logger.info(
                    f"{spec.label}: re-attaching to job {status.name}, still running with "
                    "the same code, inputs and parameters"
                )
                self._said(spec, status.name, "re-attached")
                return Submission(spec, place, spec.job_type)
            if (
                status.state is JobState.COMPLETED
                and not forced
                and staging.carriers_present(self.ctx.store, spec, place)
            ):
                self.logger.info(
                    f"{spec.label}: reusing job {status.name}, which completed with the same "
                    "code, inputs and parameters"
                )
                self._said(spec, status.name, "reused")
                return Submission(spec, place, spec.job_type, reused=True)
        return None

    def _said(self, spec: TaskSpec, name: str, how: str) -> None:
        if self.board is not None:
            self.board.submitted(spec, name, spec.job_type, how)

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
                    f"{spec.label}: job {job} resumes from the task state at "
                    f"{spec.state_prefix}, which job {before.get('job')} wrote with other "
                    f"{'; '.join(changed)}. If that state must not carry over, set "
                    "job(clean_state=True) for this run."
                )
        staging.record_state_writer(store, spec.state_prefix, job, parts)

    def _code(self, spec: TaskSpec) -> tuple[str, str]:
        key = (spec.source_dir, spec.dependencies, spec.script_path)
        if spec.members:  # a group's bundle holds every member's code
            key += tuple((m.code_dir, m.spec.source_dir, m.spec.script_path) for m in spec.members)
        with self._lock:
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
        with self._lock:
            if str(path) not in self._synced:
                dest = staging.input_prefix(self.ctx.root, path)
                synced = staging.sync_local_input(self.ctx.store(dest), path, dest, self._digests)
                self._synced[str(path)] = synced.uri
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
        with self._lock:
            if key not in self._synced:
                dest = staging.files_prefix(self.ctx.root, local)
                staging.sync_local_files(self.ctx.store(dest), wanted, dest, digests=self._digests)
                self._synced[key] = dest
            base = ObjectURI.parse(self._synced[key])
        return [str(base.join(rel)) for rel in wanted]
