"""Find the jobs an earlier run submitted for the same work (by name prefix and tags).

The executor asks before submitting, so that a job whose client died is re-attached instead of
paid for twice. Summaries of the List APIs carry no tags, so:

- training: SageMaker ``Search`` (Resource TrainingJob) filters on ``Tags.<key>`` server-side;
  one call returns whole job records, tags included.
- processing: Search has no ProcessingJob resource; ListProcessingJobs narrowed by NameContains
  and a creation window, then ListTags on each candidate whose name starts with the prefix.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import replace
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

Found = list[tuple[JobStatus, datetime.datetime | None]]


def find_training(client: Any, name_prefix: str, tags: dict[str, str]) -> Found:
    filters = [{"Name": f"Tags.{k}", "Operator": "Equals", "Value": v} for k, v in tags.items()]
    query: dict[str, Any] = {
        "Resource": "TrainingJob",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    if filters:
        query["SearchExpression"] = {"Filters": filters, "Operator": "And"}
    api = APIS[JobType.TRAINING]
    found: Found = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        reply = client.search(**query, **({"NextToken": token} if token else {}))
        for result in reply.get("Results", []):
            job = result.get("TrainingJob") or {}
            name = job.get("TrainingJobName", "")
            if name.startswith(name_prefix) and _has_tags(job.get("Tags", []), tags):
                status = _with_tags(status_from_description(api, job), job.get("Tags", []))
                found.append((status, job.get("CreationTime")))
        token = reply.get("NextToken")
        if not token:
            break
    return _newest_first(found)


def find_processing(client: Any, name_prefix: str, tags: dict[str, str]) -> Found:
    api = APIS[JobType.PROCESSING]
    query: dict[str, Any] = {
        "NameContains": name_prefix,
        "CreationTimeAfter": datetime.datetime.now(datetime.UTC) - FIND_WINDOW,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    candidates: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        reply = client.list_processing_jobs(**query, **({"NextToken": token} if token else {}))
        candidates += [
            s for s in reply.get(api.summaries_key, []) if s[api.name_key].startswith(name_prefix)
        ]
        token = reply.get("NextToken")
        if not token or len(candidates) >= FIND_MAX_CANDIDATES:
            break
    if len(candidates) > FIND_MAX_CANDIDATES:
        log.debug("find: looking at the newest %d of %d jobs", FIND_MAX_CANDIDATES, len(candidates))
    found: Found = []
    for summary in _newest_summaries(candidates)[:FIND_MAX_CANDIDATES]:
        job_tags = _tags_of(client, summary["ProcessingJobArn"])
        if _has_tags(job_tags, tags):
            status = _with_tags(status_from_summary(api, summary), job_tags)
            found.append((status, summary.get("CreationTime")))
    return found


def _with_tags(status: JobStatus, tags: list[dict[str, str]]) -> JobStatus:
    """The job's tags ride along (the executor compares identities)."""
    return replace(status, tags={t["Key"]: t["Value"] for t in tags})


def _tags_of(client: Any, arn: str) -> list[dict[str, str]]:
    tags: list[dict[str, str]] = []
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
    for _ in range(MAX_PAGES):
        reply = client.list_tags(**kwargs)
        tags += reply.get("Tags", [])
        if not reply.get("NextToken"):
            break
        kwargs["NextToken"] = reply["NextToken"]
    return tags


def _has_tags(actual: list[dict[str, str]], wanted: dict[str, str]) -> bool:
    have = {t.get("Key"): t.get("Value") for t in actual}
    return all(have.get(k) == v for k, v in wanted.items())


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime.datetime) else 0.0


def _newest_first(found: Found) -> Found:
    return sorted(found, key=lambda item: _epoch(item[1]), reverse=True)


def _newest_summaries(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(summaries, key=lambda s: _epoch(s.get("CreationTime")), reverse=True)
