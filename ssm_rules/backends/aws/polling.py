"""One status round for many SageMaker jobs: O(1) List calls per job type, Describe on change.

Describing every job each round costs N calls per round and runs into SageMaker's Describe*
throttling (a few TPS per account) at a few dozen jobs. Instead, per job type, one
ListTrainingJobs / ListProcessingJobs query covers every job in flight:

- ``NameContains`` = the longest common prefix of the names in flight (job names start with
  the rule name, so one rule's jobs share ``<rule>-<timestamp...>``); omitted when empty.
- ``CreationTimeAfter`` = the oldest in-flight job's creation time (our submit time until the
  service reports it) minus a clock-skew margin: older jobs of the account are never paged.
- no ``LastModifiedTimeAfter``: it would save little (the round stops as soon as every job in
  flight was listed) and would hide a change that did not advance LastModifiedTime.
- ``NextToken`` is followed until absent, even past empty pages: SageMaker filters after
  paginating and can answer an empty page with a NextToken. The round stops early once every
  job in flight was seen.

With at most 100 matching jobs (``MaxResults``), a round is one List call per job type.
Details beyond the summary are fetched only when needed: when a job reaches a final state
(FailureReason, ModelArtifacts, billing times), for a training job whose summary lacks
SecondaryStatus (moto's) when its status or LastModifiedTime changed, for a job the List has
not shown yet (List is eventually consistent after Create), and once for a job this backend
did not submit (re-attached after a killed run) to learn its CreationTime. For training jobs
these come batched: one ``Search`` (Resource TrainingJob, ``TrainingJobName In a,b,c``)
returns whole job records, as DescribeTrainingJob does, for every job of the round that
needs them (a Filter Value holds at most 1,024 characters, a SearchExpression at most 20
filters: about 300 names per call). A job the Search does not return, or returns with
another status than the List (its index may lag), is described on its own. Search knows no
ProcessingJob resource: processing jobs are described one by one.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ssm_rules.backends.aws.errors import error_code, is_not_found
from ssm_rules.backends.base import JobState, JobStatus, JobType, typed_fields

log = logging.getLogger(__name__)

MAX_RESULTS = 100  # the List and Search APIs' maximum page size
# SageMaker's Search: a Filter Value holds at most 1024 characters, a SearchExpression at most
# 20 elements (API reference: Filter, SearchExpression)
MAX_FILTER_VALUE = 1024
MAX_FILTERS = 20
CLOCK_SKEW = datetime.timedelta(minutes=5)  # our clock vs SageMaker's CreationTime
NOT_FOUND_GRACE = datetime.timedelta(minutes=5)  # Create → Describe visibility
MAX_PAGES = 1000  # a NextToken that never ends is a service bug, not a reason to spin forever


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class JobApi:
    """The SageMaker operations and field names of one job type."""

    job_type: JobType
    list_op: str
    summaries_key: str
    describe_op: str
    stop_op: str
    name_key: str
    status_key: str
    end_key: str


APIS = {
    JobType.TRAINING: JobApi(
        JobType.TRAINING,
        "list_training_jobs",
        "TrainingJobSummaries",
        "describe_training_job",
        "stop_training_job",
        "TrainingJobName",
        "TrainingJobStatus",
        "TrainingEndTime",
    ),
    JobType.PROCESSING: JobApi(
        JobType.PROCESSING,
        "list_processing_jobs",
        "ProcessingJobSummaries",
        "describe_processing_job",
        "stop_processing_job",
        "ProcessingJobName",
        "ProcessingJobStatus",
        "ProcessingEndTime",
    ),
}


def job_state(value: str) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        # ListTrainingJobs also knows "Deleting": the job is going away and will not finish
        return JobState.FAILED


def longest_common_prefix(names: Sequence[str]) -> str:
    if not names:
        return ""
    lo, hi = min(names), max(names)  # the common prefix of all is that of the extremes
    n = 0
    while n < min(len(lo), len(hi)) and lo[n] == hi[n]:
        n += 1
    return lo[:n]


def status_from_summary(api: JobApi, summary: dict[str, Any]) -> JobStatus:
    state = job_state(summary[api.status_key])
    return JobStatus(
        name=summary[api.name_key],
        state=state,
        secondary=summary.get("SecondaryStatus", ""),
        # ProcessingJobSummary carries FailureReason; TrainingJobSummary does not
        failure_reason=summary.get("FailureReason") or _unknown_status(summary, api),
        **typed_fields(api.job_type, summary),
        extra=_pick(summary, "LastModifiedTime", "ExitMessage"),
    )


def status_from_description(api: JobApi, desc: dict[str, Any]) -> JobStatus:
    artifacts = desc.get("ModelArtifacts") or {}
    return JobStatus(
        name=desc[api.name_key],
        state=job_state(desc[api.status_key]),
        secondary=desc.get("SecondaryStatus", ""),
        failure_reason=desc.get("FailureReason") or _unknown_status(desc, api),
        model_artifacts=artifacts.get("S3ModelArtifacts"),
        # times and seconds: how long a job ran before a time limit stopped it, what it is
        # billed; its instances: the plan's history matches earlier jobs on them
        **typed_fields(api.job_type, desc),
        extra=_pick(
            desc,
            "LastModifiedTime",
            "CreationTime",
            api.end_key,
            "TrainingStartTime",  # how long a job ran before a time limit stopped it
            "ProcessingStartTime",
            "ExitMessage",
            "TrainingTimeInSeconds",
            "BillableTimeInSeconds",
            "ProcessingStartTime",  # with ProcessingEndTime: what a processing job is billed
            "ResourceConfig",  # the plan's history matches earlier jobs on it
            "FinalMetricDataList",
            # the run's bill (ssm_rules.bill): phases, spot, warm pool, processing instances
            "SecondaryStatusTransitions",
            "EnableManagedSpotTraining",
            "WarmPoolStatus",  # a warm pool kept after the job (ssm_rules.warm_pools)
            "ProcessingResources",
            "StoppingCondition",
        ),
    )


def _unknown_status(reply: dict[str, Any], api: JobApi) -> str | None:
    value = reply.get(api.status_key, "")
    if value in {s.value for s in JobState}:
        return None
    return f"SageMaker reports the unexpected status {value!r}"


def _pick(reply: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: reply[k] for k in keys if reply.get(k) is not None}


@dataclass
class JobRecord:
    """What the previous rounds learnt about one job."""

    name: str
    api: JobApi
    since: datetime.datetime | None  # lower bound of CreationTime (None: not known yet)
    submitted_here: bool = False
    seen: bool = False  # the service has reported the job at least once
    state: JobState | None = None
    secondary: str | None = None
    last_modified: datetime.datetime | None = None
    status: JobStatus | None = None
    final_described: bool = False

    def changed(self, state: JobState, secondary: str | None, modified: Any) -> bool:
        return (
            not self.seen
            or state is not self.state
            or modified != self.last_modified
            or (secondary is not None and secondary != self.secondary)
        )


@dataclass
class Listed:
    """One List query, all pages: the summaries."""

    summaries: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RoundStats:
    """API calls of the last round (what the benchmark and tests check)."""

    list_calls: int = 0
    describe_calls: int = 0
    search_calls: int = 0


@dataclass
class StatusPoller:
    client: Any  # boto3 SageMaker client
    records: dict[str, JobRecord] = field(default_factory=dict)
    last_round: RoundStats = field(default_factory=RoundStats)
    # Search refused (a policy without sagemaker:Search, or a filter the service does not
    # take): the details come from Describe for the rest of the run, said once
    search_refused: bool = False

    def track(self, name: str, job_type: JobType, submitted_at: datetime.datetime) -> None:
        """A job this backend just created: its CreationTime is not before ``submitted_at``."""
        self.records[name] = JobRecord(
            name, APIS[job_type], since=submitted_at, submitted_here=True
        )

    def adopt(self, name: str, job_type: JobType, created: datetime.datetime | None) -> None:
        """A job found by ``find``: its CreationTime is known, so no Describe is needed."""
        if name not in self.records:
            self.records[name] = JobRecord(name, APIS[JobType(job_type)], since=created)

    def poll(self, jobs: Sequence[tuple[str, JobType]]) -> dict[str, JobStatus]:
        self.last_round = RoundStats()
        by_type: dict[JobType, list[str]] = {}
        for name, job_type in jobs:
            by_type.setdefault(JobType(job_type), []).append(name)
        statuses: dict[str, JobStatus] = {}
        for job_type, names in by_type.items():
            statuses.update(self._poll_type(APIS[job_type], names))
        self._forget_finished({name for name, _ in jobs})
        return statuses

    # --- one job type -------------------------------------------------------------------

    def _poll_type(self, api: JobApi, names: list[str]) -> dict[str, JobStatus]:
        records = {n: self.records.get(n) or self._adopt(n, api) for n in names}
        # re-attached: the details give its CreationTime (the List query's lower bound)
        self._details(api, [r for r in records.values() if r.since is None])
        # a job whose final details are known does not change again: not listed
        pending = {n for n, r in records.items() if r.since is not None and not r.final_described}
        query = self._query(api, [records[n] for n in pending])
        changed: dict[str, JobState] = {}  # jobs whose summary is not enough → listed state
        if pending:
            listed = self._list(api, query, pending)
            for summary in listed.summaries:
                record = records.get(summary[api.name_key])
                if record is not None and self._update(record, summary):
                    changed[record.name] = job_state(summary[api.status_key])
        unseen = [r for r in records.values() if not r.seen and r.name not in changed]
        # created but not listed yet (List lags Create), or changed: details, batched
        self._details(api, [records[n] for n in changed] + unseen, changed)
        return {n: r.status for n, r in records.items() if r.status is not None}

    def _adopt(self, name: str, api: JobApi) -> JobRecord:
        record = JobRecord(name, api, since=None)
        self.records[name] = record
        return record

    def _query(self, api: JobApi, records: list[JobRecord]) -> dict[str, Any]:
        query: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        prefix = longest_common_prefix([r.name for r in records])
        if prefix:
            query["NameContains"] = prefix
        starts = [r.since for r in records if r.since is not None]
        if starts:
            query["CreationTimeAfter"] = min(starts) - CLOCK_SKEW
        return query

    def _list(self, api: JobApi, query: dict[str, Any], wanted: set[str]) -> Listed:
        listed = Listed()
        missing = set(wanted)
        pages = self.client.get_paginator(api.list_op).paginate(
            **{k: v for k, v in query.items() if k != "MaxResults"},
            PaginationConfig={"PageSize": MAX_RESULTS},
        )
        for number, page in enumerate(pages, 1):
            self.last_round.list_calls += 1
            for summary in page.get(api.summaries_key, []):
                missing.discard(summary[api.name_key])
                listed.summaries.append(summary)
            if not missing:  # every job in flight was seen: no need for older pages
                return listed
            if number >= MAX_PAGES:
                log.warning(
                    "%s: stopped after %d pages (NextToken never ended)", api.list_op, number
                )
                break
        return listed

    def _update(self, record: JobRecord, summary: dict[str, Any]) -> bool:
        """Take the summary in; True when the job's details are needed (and not taken yet)."""
        api = record.api
        state = job_state(summary[api.status_key])
        secondary = summary.get("SecondaryStatus")
        modified = summary.get("LastModifiedTime")
        record.since = summary.get("CreationTime", record.since)
        if not record.changed(state, secondary, modified):
            return False
        if state.is_done or (api.job_type is JobType.TRAINING and secondary is None):
            # Final: FailureReason and ModelArtifacts are only in the details (once per job).
            # In progress without SecondaryStatus in the summary: the details have it.
            return not record.final_described
        record.seen = True
        record.state, record.secondary, record.last_modified = state, secondary, modified
        record.status = status_from_summary(api, summary)
        return False

    def _details(
        self,
        api: JobApi,
        records: list[JobRecord],
        listed: dict[str, JobState] | None = None,
    ) -> None:
        """Whole descriptions of ``records``: one Search for the training jobs, a Describe
        for what it did not return as the List showed it (``listed``: name → state)."""
        if not records:
            return
        found = None
        if api.job_type is JobType.TRAINING and not self.search_refused:
            found = self._search_or_none(api, [r.name for r in records])
        left = list(records) if found is None else []
        if found is not None:
            for record in records:
                desc = found.get(record.name)
                state = job_state(desc[api.status_key]) if desc else None
                if desc is None or (listed and listed.get(record.name, state) is not state):
                    left.append(record)  # not indexed yet, or its index lags the List
                else:
                    self._take(record, desc)
        for record in left:
            self._describe(record)

    def _search_or_none(self, api: JobApi, names: list[str]) -> dict[str, dict[str, Any]] | None:
        """:meth:`_search`, or None once SageMaker refused it (throttling and 5xx still
        raise: the round is tried again)."""
        try:
            return self._search(api, names)
        except Exception as e:
            if error_code(e) not in ("AccessDeniedException", "ValidationException"):
                raise
            self.search_refused = True
            log.warning(
                "SageMaker refused Search (%s): ended jobs are described one by one instead",
                error_code(e),
            )
            return None

    def _search(self, api: JobApi, names: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        wanted = set(names)
        for batch in _name_batches(names):
            filters = [{"Name": api.name_key, "Operator": "In", "Value": v} for v in batch]
            expression: dict[str, Any] = {"Filters": filters}
            if len(filters) > 1:
                expression["Operator"] = "Or"  # a name matches one of the In filters
            pages = self.client.get_paginator("search").paginate(
                Resource="TrainingJob",
                SearchExpression=expression,
                PaginationConfig={"PageSize": MAX_RESULTS},
            )
            for number, page in enumerate(pages, 1):
                self.last_round.search_calls += 1
                if number > MAX_PAGES:
                    break
                for result in page.get("Results", []):
                    job = result.get("TrainingJob") or {}
                    if job.get(api.name_key) in wanted:
                        found[job[api.name_key]] = job
        return found

    def _describe(self, record: JobRecord) -> None:
        api = record.api
        try:
            desc = getattr(self.client, api.describe_op)(**{api.name_key: record.name})
        except Exception as e:
            self.last_round.describe_calls += 1
            if not is_not_found(e):
                raise
            self._not_found(record)
            return
        self.last_round.describe_calls += 1
        self._take(record, desc)

    def _take(self, record: JobRecord, desc: dict[str, Any]) -> None:
        """A whole description (DescribeTrainingJob's or a Search record)."""
        status = status_from_description(record.api, desc)
        record.seen = True
        record.since = desc.get("CreationTime", record.since)
        record.state = status.state
        record.secondary = desc.get("SecondaryStatus")
        record.last_modified = desc.get("LastModifiedTime")
        record.status = status
        record.final_described = status.is_done

    def _not_found(self, record: JobRecord) -> None:
        young = record.submitted_here and record.since and utcnow() - record.since < NOT_FOUND_GRACE
        if young:
            return  # just created: Describe may not see it yet
        record.seen = True
        record.state = JobState.FAILED
        record.final_described = True
        record.status = JobStatus(
            name=record.name,
            state=JobState.FAILED,
            failure_reason=f"SageMaker has no {record.api.job_type} job named {record.name}",
        )

    def _forget_finished(self, requested: set[str]) -> None:
        """Drop records of final jobs no longer asked about (memory stays O(in flight))."""
        for name in [
            n for n, r in self.records.items() if n not in requested and r.final_described
        ]:
            del self.records[name]


def _name_batches(names: Sequence[str]) -> list[list[str]]:
    """The names as comma-joined Filter Values of at most MAX_FILTER_VALUE characters, at most
    MAX_FILTERS values per Search call."""
    values: list[str] = []
    for name in names:
        if values and len(values[-1]) + 1 + len(name) <= MAX_FILTER_VALUE:
            values[-1] += "," + name
        else:
            values.append(name)
    return [values[i : i + MAX_FILTERS] for i in range(0, len(values), MAX_FILTERS)]
