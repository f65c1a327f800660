"""SageMaker instance types: the one check of ``instance_type`` resources, the
``--sagemaker-instance-type`` setting and ``InstanceType`` in a request, on both backends.

The known types are the enums of botocore's SageMaker model (``InstanceType`` of
CreateTrainingJob and CreateProcessingJob), shipped with botocore: no credentials, no
network. AWS launches types before the installed botocore lists them, so a type of the right
*form* that botocore does not know is let through (the service decides); a malformed one is
an error with its close matches, so that ``ml.m5.xlage`` never runs on one backend and fails
on the other.
"""

from __future__ import annotations

import difflib
import functools
import re

from ssm_rules.backends.base import JobType

# ml.<family>.<size>: a family is letters + generation (+ attributes, maybe a dash part:
# ml.p6-b200.48xlarge, ml.m7i-flex.large); a size is an EC2 size word. A typo in the size
# ("ml.m5.larg", "ml.m5.xlage") is not well-formed, so it stays an error with its close match.
INSTANCE_TYPE_FORM = re.compile(
    r"ml\.[a-z]+\d+[a-z0-9]*(-[a-z0-9]+)*\.(nano|micro|small|medium|large|\d*xlarge|metal)"
)
# where each operation takes the instance type (its enum is the list botocore knows)
_INSTANCE_TYPE_MEMBERS = {
    JobType.TRAINING: ("CreateTrainingJob", ("ResourceConfig", "InstanceType")),
    JobType.PROCESSING: (
        "CreateProcessingJob",
        ("ProcessingResources", "ClusterConfig", "InstanceType"),
    ),
}


@functools.cache
def known_instance_types(job_type: JobType | None = None) -> frozenset[str]:
    """botocore's instance types for a job type (``None``: either): the enum of InstanceType
    in CreateTrainingJob / CreateProcessingJob. Empty when a botocore has no enum there: then
    the form alone decides."""
    from ssm_rules.aws_names import sagemaker_service_model

    model = sagemaker_service_model()
    found: set[str] = set()
    for jt in [job_type] if job_type is not None else list(_INSTANCE_TYPE_MEMBERS):
        operation, path = _INSTANCE_TYPE_MEMBERS[jt]
        shape = model.operation_model(operation).input_shape
        for member in path:
            shape = shape.members[member]
        found.update(shape.enum or ())
    return frozenset(found)


@functools.cache
def other_sagemaker_instance_types() -> frozenset[str]:
    """The ml.* types botocore lists only for SageMaker's other uses (notebooks, endpoints,
    apps, clusters): ``ml.t2.medium`` is well-formed and real, but not a job's."""
    from ssm_rules.aws_names import sagemaker_service_model

    model = sagemaker_service_model()
    found: set[str] = set()
    for name in model.shape_names:
        if name.endswith("InstanceType"):
            found.update(t for t in model.shape_for(name).enum or () if t.startswith("ml."))
    return frozenset(found - known_instance_types(None))


def is_well_formed(value: str) -> bool:
    return bool(INSTANCE_TYPE_FORM.fullmatch(value))


def instance_type_problem(value: object, job_type: JobType | None = None) -> str | None:
    """Why ``value`` cannot be an instance type, with the fix; None if it can: known to
    botocore, or well-formed (a type newer than botocore, or one botocore lists for the other
    job type only: the request validator warns about those, the service decides)."""
    if isinstance(value, str) and (value in known_instance_types(None) or is_well_formed(value)):
        return None
    known = known_instance_types(job_type)
    return f"{value!r} is not a SageMaker instance type: {_suggest(str(value), known)}"


def _suggest(value: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(map(repr, close)) + "?"
    return "write one like 'ml.m5.large' or 'ml.g5.xlarge' (ml.<family>.<size>)"


# Families with NVMe instance storage: SageMaker mounts it instead of an EBS volume, whose
# size is then not VolumeSizeInGB (AWS: "Managing storage paths for different types of instance
# local storage" names ml.p4d, ml.g4dn, ml.g5; the others have NVMe instance store on EC2).
INSTANCE_STORAGE_FAMILIES = frozenset(
    {"g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "r5d"}
    | {"trn1", "trn1n", "trn2", "m5d", "c5d", "g4ad", "p6-b200", "p6-b300"}
)


def has_instance_storage(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and parts[1] in INSTANCE_STORAGE_FAMILIES
