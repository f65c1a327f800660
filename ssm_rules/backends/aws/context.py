"""Resolve where jobs go on AWS, once per run, before any job is submitted.

Order matters: everything that needs no network (region, credentials present, role given)
is checked first, so a run that cannot work fails before it sends anything; then STS
GetCallerIdentity gives the account, and the bucket is checked (or created) as that
account's.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssm_rules import aws_clients
from ssm_rules.aws_names import bucket_name_problem, region_problem
from ssm_rules.backends.aws import iam
from ssm_rules.backends.aws.errors import AwsSetupError, aws_error, error_code
from ssm_rules.backends.aws.validation import RequestValidator
from ssm_rules.backends.context import RunContext
from ssm_rules.objects import S3Objects
from ssm_rules.settings import ExecutorSettings

log = logging.getLogger(__name__)

ROLE_ARN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/\S+")
# IAM role names (and paths): letters, digits and +=,.@_- ; a path adds "/" separators
ROLE_NAME = re.compile(r"[\w+=,.@\-]+(/[\w+=,.@\-]+)*")
NO_REGION = "no AWS region: pass --sagemaker-region or set AWS_DEFAULT_REGION"


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    partition: str  # "aws", "aws-cn", "aws-us-gov": from the caller ARN


def resolve_region(settings: ExecutorSettings) -> str:
    if settings.region:
        region = settings.region
    else:
        region = aws_clients.session().region_name
        if not region:
            raise AwsSetupError(NO_REGION)
    problem = region_problem(region)
    if problem:
        # otherwise STS fails to connect ("check your credentials and network")
        where = (
            "--sagemaker-region"
            if settings.region
            else "the boto3 session (AWS_DEFAULT_REGION, AWS_REGION or ~/.aws/config)"
        )
        raise AwsSetupError(f"{where}: {problem}")
    return region


def require_bucket_name(settings: ExecutorSettings) -> None:
    """A malformed --sagemaker-bucket is a typing mistake: refused before STS and HeadBucket."""
    problem = bucket_name_problem(settings.bucket) if settings.bucket else None
    if problem:
        raise AwsSetupError(f"--sagemaker-bucket: {problem}")


def require_credentials(region: str) -> None:
    """Fail before any call when boto3 finds no credentials at all (env, profile, SSO, IMDS)."""
    if aws_clients.session(region).get_credentials() is None:
        raise AwsSetupError(
            "no AWS credentials found: configure them (aws configure / aws sso login, "
            "AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or use "
            "--sagemaker-backend local"
        )


def require_role(settings: ExecutorSettings) -> str | None:
    """The role the user named, checked for shape; None: ssm_rules manages one."""
    role = (settings.role or "").strip()
    if not role:
        name = settings.role_name
        if name is not None and not re.fullmatch(r"[\w+=,.@\-]{1,64}", name):
            raise AwsSetupError(
                f"--sagemaker-role-name {name!r} is not an IAM role name: write letters, "
                "digits and +=,.@_- (at most 64)"
            )
        return None
    if role.startswith("arn:"):
        if not ROLE_ARN.fullmatch(role):
            raise AwsSetupError(
                f"--sagemaker-role {role!r} is not an IAM role ARN: write "
                "arn:aws:iam::<account>:role/<name>, or just the role name"
            )
    elif not ROLE_NAME.fullmatch(role):
        raise AwsSetupError(
            f"--sagemaker-role {role!r} is not an IAM role name: write the name "
            "(letters, digits, +=,.@_-) or the role's ARN"
        )
    return role


def require_network(settings: ExecutorSettings) -> None:
    """SageMaker's VpcConfig needs both lists (each at least one id) or neither."""
    subnets, groups = settings.subnet_list, settings.security_group_list
    if bool(subnets) != bool(groups):
        given, missing = (
            ("--sagemaker-subnets", "--sagemaker-security-group-ids")
            if subnets
            else ("--sagemaker-security-group-ids", "--sagemaker-subnets")
        )
        raise AwsSetupError(
            f"{given} is set but {missing} is not: a SageMaker VPC config needs both "
            f"(pass {missing} <id,...>) or neither"
        )


def role_arn(role: str, identity: Identity) -> str:
    """An ARN as is; a bare name (or path/name) is a role of the caller's account."""
    if role.startswith("arn:"):
        return role
    return f"arn:{identity.partition}:iam::{identity.account}:role/{role}"


def caller_identity(region: str) -> Identity:
    sts = aws_clients.client("sts", region)
    try:
        reply = sts.get_caller_identity()
    except Exception as e:  # ClientError, NoCredentialsError, EndpointConnectionError, ...
        raise AwsSetupError(
            f"could not identify the AWS account (STS GetCallerIdentity): {aws_error(e)}: "
            "check your credentials (aws sts get-caller-identity)"
        ) from e
    arn = reply["Arn"]
    return Identity(account=reply["Account"], arn=arn, partition=arn.split(":")[1] or "aws")


def default_bucket(region: str, account: str) -> str:
    """The SageMaker SDK's default bucket name."""
    return f"sagemaker-{region}-{account}"


def ensure_bucket(s3: Any, bucket: str, region: str, account: str, create: bool = True) -> bool:
    """Check the bucket is this account's, creating it when missing. True when created
    (``create=False``, a dry run: True when the run would create it).

    HeadBucket with ExpectedBucketOwner answers 403 for a bucket of another account (S3
    refuses the request instead of revealing it), so a bucket name that is taken elsewhere
    is never used: objects written there would be readable by its owner.
    """
    foreign = AwsSetupError(
        f"bucket {bucket} belongs to another account or is not accessible: "
        "pass --sagemaker-bucket <yours>"
    )
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
        return False
    except Exception as e:
        code = error_code(e)
        if code in ("403", "AccessDenied", "Forbidden"):
            raise foreign from e
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise AwsSetupError(
                f"could not check bucket {bucket} (S3 HeadBucket): {aws_error(e)}: "
                "check your credentials and network, or pass --sagemaker-bucket <yours>"
            ) from e
    if not create:
        return True
    kwargs: dict[str, Any] = {"Bucket": bucket}
    # us-east-1 is the default location and S3 rejects it as an explicit LocationConstraint
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except Exception as e:
        code = error_code(e)
        if code == "BucketAlreadyOwnedByYou":  # created concurrently by another run of ours
            return False
        if code == "BucketAlreadyExists":  # bucket names are global: another account has it
            raise foreign from e
        raise AwsSetupError(
            f"could not create bucket {bucket} in {region} (S3 CreateBucket): {aws_error(e)}: "
            "create it yourself or pass --sagemaker-bucket <yours>"
        ) from e
    return True


def root_uri(bucket: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"


def aws_context(
    settings: ExecutorSettings, workdir: Path | None = None, logger: Any = None
) -> RunContext:
    """The run's context on AWS (the registry's ContextMaker). ``workdir`` is not used: the
    aws backend stages everything under its S3 root."""
    from ssm_rules.backends.aws.image_build import ImageBuilder
    from ssm_rules.backends.aws.service import AwsBackend

    say = logger or log
    region = resolve_region(settings)
    require_credentials(region)
    role = require_role(settings)
    require_network(settings)
    require_bucket_name(settings)
    identity = caller_identity(region)
    s3_client = aws_clients.client("s3", region)
    bucket = settings.bucket or default_bucket(region, identity.account)
    if ensure_bucket(s3_client, bucket, region, identity.account):
        say.info(f"created S3 bucket {bucket} in {region} for ssm_rules staging")
    root = root_uri(bucket, settings.prefix)
    managed = role is None
    name = (settings.role_name or f"ssm-rules-{region}") if managed else str(role)
    arn = role_arn(name, identity)
    say.info(
        f"SageMaker in {region}, account {identity.account}, role {arn}"
        f"{' (managed by ssm_rules)' if managed else ''}, staging at {root}"
    )
    # code and synced inputs are read, job outputs written: all under the staging root
    access = iam.Access(
        region, identity.account, identity.partition, frozenset(), frozenset({root})
    )
    authorize = functools.partial(
        authorize_role, name=name, arn=arn, managed=managed, base=access, say=say
    )
    return RunContext(
        backend_name="aws",
        backend=AwsBackend.for_region(
            region, logger=say, max_submit_rate=settings.max_submit_rate
        ),
        root=root,
        region=region,
        role_arn=arn,
        kms_key=settings.kms_key,
        subnets=tuple(settings.subnet_list),
        security_groups=tuple(settings.security_group_list),
        # the owner check on our staging bucket only: user storage may be another account's
        s3=S3Objects(
            client=s3_client, expected_owner=identity.account, owned_buckets=frozenset({bucket})
        ),
        validate=RequestValidator(warn=say.warning),
        authorize=authorize,
        account=identity.account,
        build_image=ImageBuilder(
            region, identity.account, identity.partition, root,
            client=lambda service: aws_clients.client(service, region),
        ).ensure,
    )  # fmt: skip


def authorize_role(
    plan: list[tuple[Any, Any]], *, name: str, arn: str, managed: bool, base: iam.Access, say: Any
) -> None:
    """Before any job: the managed role gets (exactly) what the plan's jobs need; a role the
    user named is only read, and what it lacks is said once."""
    if not plan:
        return
    # the files a ManifestFile channel names are read too (the request names the manifest)
    listed = [p.uri for spec, _ in plan for ch in spec.channels for p in ch.parts if p.uri]
    access = iam.access_of([r.body for _, r in plan], base, listed)
    client = aws_clients.client("iam", base.region)
    if managed:
        iam.ensure_role(client, name, iam.policy_document(access), say)
        return
    if not arn.split(":")[4] == base.account:
        return  # another account's role: its policies are not ours to read
    role_name = arn.split(":role/", 1)[1].rsplit("/", 1)[-1]
    try:
        missing = iam.lacking(iam.role_documents(client, role_name), iam.needed_grants(access))
    except Exception as e:  # noqa: BLE001 — reading IAM is a courtesy: no permission, no check
        say.debug(f"could not read the policies of role {role_name}: {aws_error(e)}")
        return
    if missing:
        listed = "; ".join(f"{a} on {r}" for a, r in missing[:8])
        more = f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""
        say.warning(
            f"role {role_name} may lack what the jobs need: {listed}{more}. Add it to the "
            "role, or drop --sagemaker-role to let ssm_rules make a role of least privilege"
        )


# profiles/sagemaker ships default-storage-prefix s3://your-bucket/...: a placeholder
PLACEHOLDER_BUCKETS = frozenset({"your-bucket", "my-bucket", "bucket"})


STORAGE_FIX = "pass --default-storage-prefix s3://<your bucket>/<prefix> (or set it in the profile)"


def storage_prefix_problem(prefix: str) -> str | None:
    """What is wrong with ``--default-storage-prefix`` that needs no call to see: the profile's
    placeholder bucket, a malformed bucket name (also checked by ``snakemake -n``)."""
    if not prefix.startswith("s3://"):
        return None
    bucket = prefix[len("s3://") :].split("/", 1)[0]
    if bucket in PLACEHOLDER_BUCKETS:
        return (
            f"--default-storage-prefix {prefix!r} still names the placeholder bucket "
            f"{bucket!r} of the sagemaker profile: {STORAGE_FIX}"
        )
    problem = bucket_name_problem(bucket)
    return f"--default-storage-prefix {prefix!r}: {problem}" if problem else None


def check_storage_bucket(s3: Any, prefix: str, staging_bucket: str | None = None) -> None:
    """The bucket of ``--default-storage-prefix`` exists and these credentials reach it,
    before any job runs (else each job's outputs fail at the end, after it was paid for:
    NoSuchBucket). No ExpectedBucketOwner: the user's storage may be another account's; the
    staging bucket itself was checked (with its owner) when the run started."""
    problem = storage_prefix_problem(prefix)
    if problem:
        raise AwsSetupError(problem)
    if not prefix.startswith("s3://"):
        return
    bucket = prefix[len("s3://") :].split("/", 1)[0]
    if bucket == staging_bucket:
        return
    fix = STORAGE_FIX
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as e:
        code = error_code(e)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise AwsSetupError(
                f"--default-storage-prefix {prefix!r}: bucket {bucket} does not exist: create "
                f"it (aws s3 mb s3://{bucket}) or {fix}"
            ) from e
        if code in ("403", "AccessDenied", "Forbidden"):
            raise AwsSetupError(
                f"--default-storage-prefix {prefix!r}: bucket {bucket} is not accessible with "
                f"these credentials (another account's, or no s3:ListBucket): {fix}"
            ) from e
        raise AwsSetupError(
            f"could not check the storage bucket {bucket} (S3 HeadBucket): {aws_error(e)}: "
            f"check your credentials and network, or {fix}"
        ) from e
