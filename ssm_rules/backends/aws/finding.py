"""Find the jobs an earlier run submitted for the same work (by name prefix and tags).

The executor asks before submitting, so that a job whose client died is re-attached instead of
paid for twice. It asks once per job; the SageMaker calls are made once per job name prefix
(one per rule: every job of a rule starts with its prefix) and kept for ``CACHE_SECONDS``
(:class:`JobFinder`): Snakemake submits the jobs that are ready together, so a rule of 1,000
jobs costs one lookup per batch, not 1,000. The tags (the task) are matched here, on the
records of the whole prefix. A job this run creates needs no lookup: it is ours already.

Summaries of the List APIs carry no tags, so:

- training: SageMaker ``Search`` (Resource TrainingJob), ``TrainingJobName Contains
  <prefix>``: whole job records, tags included, 100 per page.
- processing: Search has no ProcessingJob resource; ListProcessingJobs narrowed by NameContains
  and a creation window, then ListTags on each candidate whose name starts with the prefix.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ssm_rules.backends.aws.polling import APIS, status_from_description, status_from_summary
from ssm_rules.backends.base import JobStatus, JobType

log = logging.getLogger(__name__)

# A processing job runs at most 9 days (CreateProcessingJob StoppingCondition.MaxRuntimeInSeconds
# max 777600 in botocore's model): older ones cannot still be running. Completed ones older
# than the window are not offered for reuse either.
FIND_WINDOW = datetime.timedelta(days=10)
FIND_MAX_CANDIDATES = 200
MAX_PAGES = 100
PAGE_SIZE = 100  # the maximum MaxResults of Search, ListProcessingJobs and ListTags
# How long the jobs found under a prefix are taken as current: long enough for one batch of
# submissions, short enough that a job of an earlier run that ended meanwhile is seen ended.
CACHE_SECONDS = 60.0

Found = list[tuple[JobStatus, datetime.datetime | None]]


@dataclass
class JobFinder:
    """The jobs under a name prefix, looked up once per ``ttl`` and filtered by tags here."""

    client: Any  # boto3 SageMaker client
    ttl: float = CACHE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _cache: dict[tuple[JobType, str], tuple[float, Found]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def find(self, job_type: JobType, name_prefix: str, tags: dict[str, str]) -> Found:
        key = (JobType(job_type), name_prefix)
        # one lookup at a time: the status thread (a group's next member) and Snakemake's
        # main thread may ask for the same prefix at once
        with self._lock:
            entry = self._cache.get(key)
            if entry is None or self.clock() - entry[0] > self.ttl:
                lookup = find_training if key[0] is JobType.TRAINING else find_processing
                entry = (self.clock(), lookup(self.client, name_prefix))
                self._cache[key] = entry
        return [(s, t) for s, t in entry[1] if _has_tags(s.tags, tags)]


def find_training(client: Any, name_prefix: str) -> Found:
    api = APIS[JobType.TRAINING]
    pages = client.get_paginator("search").paginate(
        Resource="TrainingJob",
        SearchExpression={
            "Filters": [{"Name": api.name_key, "Operator": "Contains", "Value": name_prefix}]
        },
        SortBy="CreationTime",
        SortOrder="Descending",
        PaginationConfig={"PageSize": PAGE_SIZE, "MaxItems": PAGE_SIZE * MAX_PAGES},
    )
    found: Found = []
    for page in pages:
        for result in page.get("Results", []):
            job = result.get("TrainingJob") or {}
            if job.get(api.name_key, "").startswith(name_prefix):  # Contains: anywhere
                status = _with_tags(status_from_description(api, job), job.get("Tags", []))
                found.append((status, job.get("CreationTime")))
    return _newest_first(found)


def find_processing(client: Any, name_prefix: str) -> Found:
    api = APIS[JobType.PROCESSING]
    pages = client.get_paginator("list_processing_jobs").paginate(
        NameContains=name_prefix,
        CreationTimeAfter=datetime.datetime.now(datetime.UTC) - FIND_WINDOW,
        SortBy="CreationTime",
        SortOrder="Descending",
        PaginationConfig={"PageSize": PAGE_SIZE},
    )
    candidates: list[dict[str, Any]] = []
    for number, page in enumerate(pages, 1):
        candidates += [
            s for s in page.get(api.summaries_key, []) if s[api.name_key].startswith(name_prefix)
        ]
        if len(candidates) >= FIND_MAX_CANDIDATES or number >= MAX_PAGES:
            break
    if len(candidates) > FIND_MAX_CANDIDATES:
        log.debug("find: looking at the newest %d of %d jobs", FIND_MAX_CANDIDATES, len(candidates))
    found: Found = []
    for summary in _newest_summaries(candidates)[:FIND_MAX_CANDIDATES]:
        job_tags = _tags_of(client, summary["ProcessingJobArn"])
        status = _with_tags(status_from_summary(api, summary), job_tags)
        found.append((status, summary.get("CreationTime")))
    return found


def _with_tags(status: JobStatus, tags: list[dict[str, str]]) -> JobStatus:
    """The job's tags ride along (the executor compares identities)."""
    return replace(status, tags={t["Key"]: t["Value"] for t in tags})


def _tags_of(client: Any, arn: str) -> list[dict[str, str]]:
    pages = client.get_paginator("list_tags").paginate(
        ResourceArn=arn, PaginationConfig={"PageSize": PAGE_SIZE, "MaxItems": PAGE_SIZE * MAX_PAGES}
    )
    return [tag for page in pages for tag in page.get("Tags", [])]


def _has_tags(actual: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(actual.get(k) == v for k, v in wanted.items())


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime.datetime) else 0.0


def _newest_first(found: Found) -> Found:
    return sorted(found, key=lambda item: _epoch(item[1]), reverse=True)


def _newest_summaries(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(summaries, key=lambda s: _epoch(s.get("CreationTime")), reverse=True)
