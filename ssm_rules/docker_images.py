"""Images from a Dockerfile: ``job(dockerfile="docker/")`` (pure part: context, hash, names).

As simple-sagemaker does, the Dockerfile may say ``__BASE_IMAGE__``: it is replaced by the
image the rule would otherwise run on (its framework image, or ``image_uri``). The image is
named by the content of the context, ``<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<hash>``,
so an unchanged context is never built twice, and a changed one always is.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

BASE_PLACEHOLDER = "__BASE_IMAGE__"
DOCKERFILE = "Dockerfile"
REPOSITORY_PREFIX = "ssm-rules"
TAG_LENGTH = 32  # hex digits of the context hash (ECR tags: up to 128 characters)
# CodeBuild runs this in the uploaded context (buildspec version 0.2): log in to the
# registries of the base image and of the target, build, push.
BUILDSPEC = """version: 0.2
phases:
  pre_build:
    commands:
      - aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "${IMAGE_URI%%/*}"
      - if [ -n "$BASE_REGISTRY" ]; then aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$BASE_REGISTRY"; fi
  build:
    commands:
      - docker build -t "$IMAGE_URI" .
  post_build:
    commands:
      - '[ "$CODEBUILD_BUILD_SUCCEEDING" = 1 ] && docker push "$IMAGE_URI"'
"""  # noqa: E501 — shell lines of the buildspec read better whole


@dataclass(frozen=True)
class DockerContext:
    directory: Path
    base_image: str
    files: tuple[tuple[str, bytes], ...]  # (name, content), the Dockerfile already substituted
    digest: str  # of every name and content: the image's tag

    @property
    def tag(self) -> str:
        return self.digest[:TAG_LENGTH]

    @property
    def dockerfile(self) -> str:
        return dict(self.files)[DOCKERFILE].decode()

    def zip_bytes(self) -> bytes:
        """The context as CodeBuild reads an S3 source: a zip, deterministic."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in self.files:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                z.writestr(info, data)
        return out.getvalue()


def context_of(directory: Path, base_image: str) -> DockerContext:
    """Every file under ``directory`` (sorted), with ``__BASE_IMAGE__`` replaced."""
    files: list[tuple[str, bytes]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        data = path.read_bytes()
        if name == DOCKERFILE:
            data = data.replace(BASE_PLACEHOLDER.encode(), base_image.encode())
        files.append((name, data))
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return DockerContext(directory, base_image, tuple(files), digest.hexdigest())


def repository(rule: str) -> str:
    """ECR repository of a rule's image: lower-case, ``[a-z0-9._-]`` segments."""
    name = re.sub(r"[^a-z0-9._-]+", "-", rule.lower()).strip("-._") or "rule"
    return f"{REPOSITORY_PREFIX}/{name}"


def image_uri(account: str, region: str, rule: str, context: DockerContext) -> str:
    suffix = ".cn" if region.startswith("cn-") else ""
    registry = f"{account}.dkr.ecr.{region}.amazonaws.com{suffix}"
    return f"{registry}/{repository(rule)}:{context.tag}"


def registry_of(image: str) -> str | None:
    """The ECR registry host of an image, if it is in ECR (the base image may be)."""
    host = image.split("/", 1)[0]
    return host if ".dkr.ecr." in host else None
