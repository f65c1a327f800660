"""AWS names checked before any call: SageMaker job names, regions, S3 bucket names (pure;
botocore's data, no network).

A region that does not exist otherwise surfaces as a failed connection ("check your
credentials and network") or as a missing framework image; a malformed bucket name as an S3
error after STS was called. Both are typing mistakes: say so, with a close match. Job names
are ours to build; the client and the local SageMaker hold them to the same rule.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from typing import Any

from ssm_rules.backends.base import JobType

# S3 general purpose bucket naming rules (Amazon S3 User Guide, "Bucket naming rules")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


@functools.cache
def sagemaker_service_model() -> Any:
    """botocore's SageMaker model, from the installed botocore data (no credentials, no I/O)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


# TrainingJobName / ProcessingJobName in botocore's model today; used only when a botocore
# lacks the pattern or limit, so that a name is never unchecked.
JOB_NAME_FALLBACK = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
MAX_JOB_NAME_FALLBACK = 63
_JOB_NAME_MEMBERS = {
    JobType.TRAINING: ("CreateTrainingJob", "TrainingJobName"),
    JobType.PROCESSING: ("CreateProcessingJob", "ProcessingJobName"),
}


@functools.cache
def job_name_rule(job_type: JobType) -> tuple[re.Pattern[str], int]:
    """(the pattern a whole job name must match, its longest length), from botocore's model."""
    operation, member = _JOB_NAME_MEMBERS[job_type]
    shape = sagemaker_service_model().operation_model(operation).input_shape.members[member]
    try:  # SageMaker applies the pattern to the whole name (Java's Pattern.matches)
        pattern = re.compile(shape.metadata.get("pattern") or JOB_NAME_FALLBACK)
    except re.error:
        pattern = re.compile(JOB_NAME_FALLBACK)
    return pattern, int(shape.metadata.get("max") or MAX_JOB_NAME_FALLBACK)


def job_name_problem(name: object, job_type: JobType = JobType.TRAINING) -> str | None:
    """Why ``name`` cannot name a SageMaker job, with the rule; None when it can."""
    pattern, longest = job_name_rule(job_type)
    if isinstance(name, str) and pattern.fullmatch(name) and len(name) <= longest:
        return None
    return (
        f"{name!r} is not a SageMaker job name: it must match {pattern.pattern} (letters, "
        f"digits and dashes, starting and ending with a letter or digit, at most {longest} "
        "characters)"
    )


@functools.cache
def sagemaker_regions() -> frozenset[str]:
    """Every region of every partition in which botocore knows a SageMaker endpoint.

    Kept in the user's cache directory per botocore version (the list is botocore's data,
    which changes only with it): reading botocore's endpoint tables takes a tenth of a
    second or more, at the start of every run."""
    import botocore

    from ssm_rules.pricing import cache_dir

    path = cache_dir() / f"sagemaker-regions-botocore-{botocore.__version__}.json"
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, list) and cached and all(isinstance(r, str) for r in cached):
            return frozenset(cached)
    except (OSError, ValueError):
        pass  # missing or unreadable: read from botocore, and written again
    regions = _botocore_sagemaker_regions()
    from ssm_rules.objects import write_text_atomic

    try:
        write_text_atomic(path, json.dumps(sorted(regions)))
    except OSError:
        pass  # a cache that cannot be written only costs time
    return regions


def _botocore_sagemaker_regions() -> frozenset[str]:
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("sagemaker", partition_name=partition)
    )


def region_problem(region: str) -> str | None:
    """Why ``region`` is not a SageMaker region, with the fix; None when it is one."""
    known = sagemaker_regions()
    if region in known:
        return None
    close = difflib.get_close_matches(region, sorted(known), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(map(repr, close))}?" if close else "write e.g. 'us-east-1'"
    return (
        f"region {region!r} is not a region with SageMaker: {hint} (a region newer than this "
        "botocore needs pip install -U botocore)"
    )


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an S3 bucket name, with the fix; None when it can."""
    why = None
    if not BUCKET_NAME.fullmatch(name):
        why = (
            "3-63 lower-case letters, digits, '.' and '-', starting and ending with a "
            "letter or digit"
        )
    elif ".." in name:
        why = "no two adjacent periods"
    elif IP_ADDRESS.fullmatch(name):
        why = "not an IP address"
    elif name.startswith(RESERVED_BUCKET_PREFIXES) or name.endswith(RESERVED_BUCKET_SUFFIXES):
        why = "its prefix or suffix is reserved by S3"
    if why is None:
        return None
    return (
        f"{name!r} is not an S3 bucket name ({why}): write your bucket's name, e.g. 'my-ml-bucket'"
    )
