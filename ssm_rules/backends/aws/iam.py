"""The jobs' IAM execution role: made for the workflow with least privilege, or checked.

Without ``--sagemaker-role``, ssm_rules creates (or reuses) a role that SageMaker can assume
(``ssm-rules-<region>``, or ``--sagemaker-role-name``) with one customer-managed policy that
names every resource the planned jobs touch: S3 objects under the staging prefix and under
the storage prefixes they read or write (ListBucket only with those prefixes), their
CloudWatch log group, ECR pulls of their images, metrics, and the KMS key and VPC network
interfaces when the run uses them. simple-sagemaker attached AmazonSageMakerFullAccess
instead. A run that needs more makes a new version of that policy holding the old
resources and the new (other workflows sharing the role keep theirs); IAM keeps at most five
versions, so the oldest non-default one goes first.

A role the user names is never changed: its policies are read and what the jobs need but
the role does not grant is named in a warning.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ssm_rules.backends.aws.errors import AwsSetupError, aws_error, error_code
from ssm_rules.objects import ObjectURI

log = logging.getLogger(__name__)

MANAGED_TAG = "ssm-rules:managed"
MAX_POLICY_VERSIONS = 5  # IAM's limit per managed policy
SAGEMAKER = "sagemaker.amazonaws.com"


def trust_policy(service: str = SAGEMAKER) -> dict[str, Any]:
    """Who may assume the role: the AWS service that runs the jobs (or builds)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


TRUST_POLICY = trust_policy()
S3_READ = ["s3:GetObject"]
S3_WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
LOGS = [
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:DescribeLogStreams",
]
ECR_PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
VPC = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]
KMS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey"]


@dataclass(frozen=True)
class Access:
    """What the planned jobs touch, as S3 URI prefixes, image URIs and options."""

    region: str
    account: str
    partition: str
    read: frozenset[str]
    write: frozenset[str]
    images: frozenset[str] = frozenset()
    kms_key: str | None = None
    vpc: bool = False


def access_of(
    requests: Iterable[Mapping[str, Any]], base: Access, also_read: Iterable[str] = ()
) -> Access:
    """Add what Create*Job requests read and write (channels, checkpoints, outputs, images)."""
    read, write, images = set(base.read) | set(also_read), set(base.write), set(base.images)
    kms, vpc = base.kms_key, base.vpc
    for body in requests:
        for ch in body.get("InputDataConfig") or []:
            read.add(ch["DataSource"]["S3DataSource"]["S3Uri"])
        for inp in body.get("ProcessingInputs") or []:
            read.add(inp["S3Input"]["S3Uri"])
        if body.get("CheckpointConfig"):
            write.add(body["CheckpointConfig"]["S3Uri"])
        if body.get("OutputDataConfig"):
            write.add(body["OutputDataConfig"]["S3OutputPath"])
        for out in (body.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            write.add(out["S3Output"]["S3Uri"])
        spec = body.get("AlgorithmSpecification") or {}
        app = body.get("AppSpecification") or {}
        image = spec.get("TrainingImage") or app.get("ImageUri")
        if image:
            images.add(image)
        kms = kms or (body.get("ResourceConfig") or {}).get("VolumeKmsKeyId")
        vpc = vpc or bool(
            body.get("VpcConfig") or (body.get("NetworkConfig") or {}).get("VpcConfig")
        )
    writes = _folders(write)
    # what the jobs read under a prefix they also write needs no statement of its own
    reads = {r for r in _folders(read) if not any(r.startswith(w) for w in writes)}
    return Access(
        base.region, base.account, base.partition, frozenset(reads), frozenset(writes),
        frozenset(images), kms, vpc,
    )  # fmt: skip


def _folders(uris: Iterable[str]) -> set[str]:
    """S3 prefixes, without those that another one already covers."""
    prefixes = sorted({u for u in uris if u.startswith("s3://")})
    kept: list[str] = []
    for p in prefixes:
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    return set(kept)


def _s3_arn(partition: str, uri: str) -> tuple[str, str, str]:
    """(bucket ARN, objects ARN, key prefix) of an S3 URI prefix."""
    u = ObjectURI.parse(uri)
    return f"arn:{partition}:s3:::{u.bucket}", f"arn:{partition}:s3:::{u.bucket}/{u.key}*", u.key


def _ecr_arn(partition: str, image: str) -> str | None:
    """``<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@digest]`` → the repository ARN."""
    host, _, path = image.partition("/")
    parts = host.split(".")
    if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"] or not path:
        return None
    repo = path.split("@", 1)[0]  # repo@sha256:...
    if ":" in repo.rsplit("/", 1)[-1]:  # repo:tag
        repo = repo.rsplit(":", 1)[0]
    return f"arn:{partition}:ecr:{parts[3]}:{parts[0]}:repository/{repo}"


def policy_document(access: Access) -> dict[str, Any]:
    """The least-privilege policy of ``access``, deterministic (sorted) so that an unchanged
    workflow never makes a new policy version."""
    p = access.partition
    statements: list[dict[str, Any]] = []
    buckets: dict[str, set[str]] = {}
    for sid, actions, uris in (
        ("Read", S3_READ, access.read),
        ("ReadWrite", S3_WRITE, access.write),
    ):
        resources = []
        for uri in uris:
            bucket_arn, objects_arn, key = _s3_arn(p, uri)
            resources.append(objects_arn)
            buckets.setdefault(bucket_arn, set()).add(f"{key}*")
        if resources:
            statements.append(allow(f"S3{sid}", actions, resources))
    for i, (bucket_arn, prefixes) in enumerate(sorted(buckets.items())):
        statements.append(
            allow(f"S3List{i}", ["s3:ListBucket"], [bucket_arn],
                   {"StringLike": {"s3:prefix": sorted(prefixes)}})
        )  # fmt: skip
    log_group = f"arn:{p}:logs:{access.region}:{access.account}:log-group:/aws/sagemaker/*"
    statements.append(allow("Logs", LOGS, [log_group, f"{log_group}:log-stream:*"]))
    repos = sorted({a for a in (_ecr_arn(p, i) for i in access.images) if a})
    if repos:
        statements.append(allow("EcrPull", ECR_PULL, repos))
        # GetAuthorizationToken has no resource-level permissions (IAM service reference)
        statements.append(allow("EcrToken", ["ecr:GetAuthorizationToken"], ["*"]))
    # PutMetricData has no resource-level permissions either; the namespace narrows it
    statements.append(
        allow("Metrics", ["cloudwatch:PutMetricData"], ["*"],
               {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}})
    )  # fmt: skip
    if access.kms_key:
        key = access.kms_key
        if not key.startswith("arn:"):
            key = f"arn:{p}:kms:{access.region}:{access.account}:key/{key}"
        statements.append(allow("Kms", KMS, [key]))
    if access.vpc:  # SageMaker attaches network interfaces in the job's subnets
        statements.append(allow("Vpc", VPC, ["*"]))
    return {"Version": "2012-10-17", "Statement": statements}


def allow(
    sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": sorted(resources),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A policy granting what either grants: statements by Sid, their resources and
    condition values united (both are our own documents)."""
    by_sid: dict[str, dict[str, Any]] = {}
    for st in [*old.get("Statement", []), *new.get("Statement", [])]:
        sid = st.get("Sid", "")
        have = by_sid.get(sid)
        if have is None:
            by_sid[sid] = json.loads(json.dumps(st))
            continue
        have["Resource"] = sorted(set(_list(have["Resource"])) | set(_list(st["Resource"])))
        have["Action"] = sorted(set(_list(have["Action"])) | set(_list(st["Action"])))
        for op, values in (st.get("Condition") or {}).items():
            for key, vals in values.items():
                cur = have.setdefault("Condition", {}).setdefault(op, {}).get(key, [])
                have["Condition"][op][key] = sorted(set(_list(cur)) | set(_list(vals)))
    return {"Version": "2012-10-17", "Statement": [by_sid[s] for s in sorted(by_sid)]}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def ensure_role(
    iam: Any, name: str, document: dict[str, Any], say: Any = log, service: str = SAGEMAKER
) -> str:
    """The ARN of role ``name`` (assumed by ``service``), created or brought up to
    ``document``; a role of that name that ssm_rules did not create is refused, never
    changed."""
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except Exception as e:
        if error_code(e) != "NoSuchEntity":
            raise AwsSetupError(f"could not read IAM role {name} (GetRole): {aws_error(e)}") from e
        role = _create_role(iam, name, document, service)
        say.info(f"created IAM role {name} for the SageMaker jobs (policy {name}-policy)")
        return role["Arn"]
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name).get("Tags", [])}
    if MANAGED_TAG not in tags:
        raise AwsSetupError(
            f"IAM role {name} exists and was not made by ssm_rules: pass it as "
            f"--sagemaker-role {name} to use it as it is, or choose another "
            "--sagemaker-role-name for ssm_rules to manage"
        )
    policy_arn = _policy_arn(role["Arn"], name)
    current = _default_document(iam, policy_arn)
    wanted = merge(current, document)
    if _canonical(wanted) != _canonical(current):
        _new_version(iam, policy_arn, wanted)
        say.info(f"IAM role {name}: new version of {name}-policy for this workflow's resources")
    return role["Arn"]


def _create_role(iam: Any, name: str, document: dict[str, Any], service: str) -> dict[str, Any]:
    try:
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust_policy(service)),
            Description=f"{service} for ssm_rules workflows (least privilege)",
            Tags=[{"Key": MANAGED_TAG, "Value": "1"}],
        )["Role"]
        policy = iam.create_policy(
            PolicyName=f"{name}-policy",
            PolicyDocument=json.dumps(document),
            Description=f"What the SageMaker jobs of role {name} may touch",
            Tags=[{"Key": MANAGED_TAG, "Value": "1"}],
        )["Policy"]
        iam.attach_role_policy(RoleName=name, PolicyArn=policy["Arn"])
    except Exception as e:
        raise AwsSetupError(
            f"could not create IAM role {name} for the jobs: {aws_error(e)}: allow "
            "iam:CreateRole, iam:CreatePolicy and iam:AttachRolePolicy, or pass "
            "--sagemaker-role <an existing role>"
        ) from e
    return role


def _policy_arn(role_arn: str, name: str) -> str:
    prefix = role_arn.split(":role/", 1)[0]  # arn:<partition>:iam::<account>
    return f"{prefix}:policy/{name}-policy"


def _default_document(iam: Any, policy_arn: str) -> dict[str, Any]:
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    doc = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]
    return _decoded(doc["Document"])


def _decoded(document: Any) -> dict[str, Any]:
    # boto3 decodes policy documents to dicts; the raw API returns URL-encoded JSON
    if isinstance(document, str):
        return json.loads(unquote(document))
    return dict(document)


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(merge({}, document), sort_keys=True)


def _new_version(iam: Any, policy_arn: str, document: dict[str, Any]) -> None:
    versions = iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min(
            (v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"]
        )
        iam.delete_policy_version(PolicyArn=policy_arn, VersionId=oldest["VersionId"])
    iam.create_policy_version(
        PolicyArn=policy_arn, PolicyDocument=json.dumps(document), SetAsDefault=True
    )


# --- a role the user named: what does it lack? ------------------------------------------


def needed_grants(access: Access) -> list[tuple[str, str]]:
    """(action, resource) pairs the jobs use, one concrete resource per prefix."""
    p = access.partition
    pairs: list[tuple[str, str]] = []
    for uri in sorted(access.read | access.write):
        bucket_arn, objects_arn, _ = _s3_arn(p, uri)
        sample = objects_arn[:-1] + "ssm-rules-sample"
        pairs += [("s3:GetObject", sample), ("s3:ListBucket", bucket_arn)]
        if uri in access.write:
            pairs.append(("s3:PutObject", sample))
    group = f"arn:{p}:logs:{access.region}:{access.account}:log-group:/aws/sagemaker/TrainingJobs"
    pairs.append(("logs:PutLogEvents", f"{group}:log-stream:sample"))
    for image in sorted(access.images):
        repo = _ecr_arn(p, image)
        if repo and f":{access.account}:" in repo:  # the account's own images
            pairs.append(("ecr:BatchGetImage", repo))
    return list(dict.fromkeys(pairs))


def role_documents(iam: Any, name: str) -> list[dict[str, Any]]:
    """The role's inline policies and the default versions of its attached ones."""
    docs = []
    for policy_name in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
        doc = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
        docs.append(_decoded(doc))
    for attached in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
        docs.append(_default_document(iam, attached["PolicyArn"]))
    return docs


def lacking(
    documents: list[dict[str, Any]], needed: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The needed (action, resource) pairs no Allow statement grants (or a Deny refuses).
    Conditions are not evaluated: a conditional Allow counts as granting, so what this
    names is surely missing, and what it passes may still be refused by a condition."""
    statements = [st for doc in documents for st in _list(doc.get("Statement", []))]

    def matches(st: Mapping[str, Any], action: str, resource: str) -> bool:
        actions = _list(st.get("Action", []))
        resources = _list(st.get("Resource", []))
        return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        )

    missing = []
    for action, resource in needed:
        denied = any(
            st.get("Effect") == "Deny" and not st.get("Condition") and matches(st, action, resource)
            for st in statements
        )
        allowed = any(
            st.get("Effect") == "Allow" and matches(st, action, resource) for st in statements
        )
        if denied or not allowed:
            missing.append((action, resource))
    return missing
