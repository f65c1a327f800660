"""Build and push a rule's image to ECR: with a local Docker engine when one answers, else
with AWS CodeBuild; skipped when ECR already has the image's tag (the context's hash).

CodeBuild: the context is uploaded to the staging bucket as a zip, one project
(``ssm-rules-image-builder``, privileged for Docker) is created once with a service role of
its own (S3 read of the contexts, ECR push to ``ssm-rules/*``, pulls of the base image, its
log group), each build is started with the context's location and the image URI, its log is
followed, and its result awaited.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.aws import iam
from ssm_rules.backends.aws.errors import aws_error, error_code
from ssm_rules.docker_images import BUILDSPEC, REPOSITORY_PREFIX, DockerContext, registry_of
from ssm_rules.objects import ObjectURI

PROJECT = "ssm-rules-image-builder"
LOG_GROUP = f"/aws/codebuild/{PROJECT}"
BUILD_IMAGE = "aws/codebuild/standard:7.0"
POLL_SECONDS = 5.0
LOG_TAIL = 20


class ImageBuildError(WorkflowError):
    pass


@dataclass
class ImageBuilder:
    """Makes sure an image exists in ECR before a job that runs on it is created."""

    region: str
    account: str
    partition: str
    root: str  # staging prefix (s3://bucket/prefix/)
    client: Callable[[str], Any]  # service name → boto3 client
    poll_seconds: float = POLL_SECONDS

    def ensure(
        self, rule: str, context: DockerContext, uri: str, log: Callable[[str], None]
    ) -> None:
        repo, tag = uri.split("/", 1)[1].rsplit(":", 1)
        ecr = self.client("ecr")
        if self._has_image(ecr, repo, tag):
            log(f"image {uri} is in ECR: not built again")
            return
        if docker_engine_answers():
            self._docker_build(ecr, context, uri, log)
        else:
            log("no Docker engine answers here: building the image with AWS CodeBuild")
            self._codebuild(rule, context, uri, log)
        if not self._has_image(ecr, repo, tag):
            raise ImageBuildError(
                f"rule {rule}: the build of {uri} ended but ECR has no such image; "
                "check the build log above"
            )

    def _has_image(self, ecr: Any, repo: str, tag: str) -> bool:
        try:
            ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])
            return True
        except Exception as e:
            code = error_code(e)
            if code == "ImageNotFoundException":
                return False
            if code == "RepositoryNotFoundException":
                ecr.create_repository(repositoryName=repo)
                return False
            raise ImageBuildError(f"could not look up {repo}:{tag} in ECR: {aws_error(e)}") from e

    # --- a local Docker engine ----------------------------------------------------------

    def _docker_build(
        self, ecr: Any, context: DockerContext, uri: str, log: Callable[[str], None]
    ) -> None:
        import base64
        import tempfile
        from pathlib import Path

        from ssm_rules import scratch

        with tempfile.TemporaryDirectory(prefix="ssm-docker-", dir=scratch.directory()) as tmp:
            for name, data in context.files:
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(data)
            for registry in {uri.split("/", 1)[0], registry_of(context.base_image)} - {None}:
                token = ecr.get_authorization_token()["authorizationData"][0]
                user, password = base64.b64decode(token["authorizationToken"]).decode().split(":")
                _run(
                    ["docker", "login", "-u", user, "--password-stdin", str(registry)],
                    log,
                    password,
                )
            _run(["docker", "build", "-t", uri, tmp], log)
            _run(["docker", "push", uri], log)

    # --- AWS CodeBuild ------------------------------------------------------------------

    def _codebuild(
        self, rule: str, context: DockerContext, uri: str, log: Callable[[str], None]
    ) -> None:
        root = ObjectURI.parse(self.root)
        key = root.join("docker", f"{context.tag}.zip").key
        s3, codebuild = self.client("s3"), self.client("codebuild")
        s3.put_object(Bucket=root.bucket, Key=key, Body=context.zip_bytes())
        try:
            self._ensure_project(codebuild, root)
            build = codebuild.start_build(
                projectName=PROJECT,
                sourceTypeOverride="S3",
                sourceLocationOverride=f"{root.bucket}/{key}",
                environmentVariablesOverride=[
                    {"name": "IMAGE_URI", "value": uri, "type": "PLAINTEXT"},
                    {
                        "name": "BASE_REGISTRY",
                        "value": registry_of(context.base_image) or "",
                        "type": "PLAINTEXT",
                    },
                ],
            )["build"]
        except ImageBuildError:
            raise
        except Exception as e:
            raise ImageBuildError(
                f"rule {rule}: no Docker engine answers here and CodeBuild could not build "
                f"the image ({aws_error(e)}): start Docker, allow codebuild:CreateProject / "
                "StartBuild / BatchGetBuilds and iam:CreateRole, or give job(image_uri=...)"
            ) from e
        log(f"CodeBuild build {build['id']} of {uri}")
        status, lines = self._follow(codebuild, build["id"], log)
        if status != "SUCCEEDED":
            tail = "\n".join(lines[-LOG_TAIL:])
            raise ImageBuildError(
                f"rule {rule}: building {uri} from {context.directory} failed (CodeBuild "
                f"build {build['id']}: {status})" + (f"; last lines:\n{tail}" if tail else "")
            )

    def _follow(
        self, codebuild: Any, build_id: str, log: Callable[[str], None]
    ) -> tuple[str, list[str]]:
        logs = self.client("logs")
        token: str | None = None
        lines: list[str] = []
        while True:
            build = codebuild.batch_get_builds(ids=[build_id])["builds"][0]
            where = build.get("logs") or {}
            group, stream = where.get("groupName"), where.get("streamName")
            if group and stream:
                token, new = _read_log(logs, group, stream, token)
                for line in new:
                    log(line)
                lines += new
            if build.get("buildComplete") or build.get("buildStatus") not in (None, "IN_PROGRESS"):
                return str(build.get("buildStatus")), lines
            time.sleep(self.poll_seconds)

    def _ensure_project(self, codebuild: Any, root: ObjectURI) -> None:
        found = codebuild.batch_get_projects(names=[PROJECT]).get("projects") or []
        if found:
            return
        role_arn = iam.ensure_role(
            self.client("iam"),
            f"ssm-rules-codebuild-{self.region}",
            self._builder_policy(root),
            service="codebuild.amazonaws.com",
        )
        codebuild.create_project(
            name=PROJECT,
            description="Builds the images of ssm_rules' job(dockerfile=...) rules",
            source={
                "type": "S3",
                "location": f"{root.bucket}/{root.join('docker').key}/",
                "buildspec": BUILDSPEC,
            },
            artifacts={"type": "NO_ARTIFACTS"},
            environment={
                "type": "LINUX_CONTAINER",
                "image": BUILD_IMAGE,
                "computeType": "BUILD_GENERAL1_MEDIUM",
                "privilegedMode": True,  # docker build inside the build container
            },
            serviceRole=role_arn,
            logsConfig={"cloudWatchLogs": {"status": "ENABLED", "groupName": LOG_GROUP}},
        )

    def _builder_policy(self, root: ObjectURI) -> dict[str, Any]:
        p, region, account = self.partition, self.region, self.account
        contexts = f"arn:{p}:s3:::{root.bucket}/{root.join('docker').key}/*"
        repos = f"arn:{p}:ecr:{region}:{account}:repository/{REPOSITORY_PREFIX}/*"
        group = f"arn:{p}:logs:{region}:{account}:log-group:{LOG_GROUP}"
        push = [
            "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
            "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage",
            "ecr:UploadLayerPart",
        ]  # fmt: skip
        pull = [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
        return {
            "Version": "2012-10-17",
            "Statement": [
                iam.allow("Contexts", ["s3:GetObject", "s3:GetObjectVersion"], [contexts]),
                iam.allow("Push", push, [repos]),
                # the base image: a framework image of AWS's accounts, or one of yours
                iam.allow("PullBase", pull, [f"arn:{p}:ecr:{region}:*:repository/*"]),
                iam.allow("EcrToken", ["ecr:GetAuthorizationToken"], ["*"]),
                iam.allow(
                    "Logs",
                    ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    [group, f"{group}:*"],
                ),
            ],
        }


def _read_log(
    logs: Any, group: str, stream: str, token: str | None
) -> tuple[str | None, list[str]]:
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    if token:
        kwargs["nextToken"] = token
    try:
        reply = logs.get_log_events(**kwargs)
    except Exception as e:  # noqa: BLE001 — a stream that does not exist yet
        if error_code(e) == "ResourceNotFoundException":
            return token, []
        raise
    lines = [e["message"].rstrip("\n") for e in reply.get("events", [])]
    return reply.get("nextForwardToken", token), lines


def docker_engine_answers() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _run(cmd: list[str], log: Callable[[str], None], stdin: str | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    for line in (proc.stdout + proc.stderr).splitlines():
        log(line)
    if proc.returncode != 0:
        shown = " ".join(c for c in cmd if c != stdin)
        raise ImageBuildError(f"{shown} failed (exit {proc.returncode}): {proc.stderr[-500:]}")
