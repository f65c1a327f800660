"""A faithful small CodeBuild for the moto server: builds that look at their source.

moto's CodeBuild records StartBuild and reports every build SUCCEEDED without running
anything. Installed on the in-process moto server (``install(monkeypatch)``), StartBuild
here reads the zip named by ``sourceLocationOverride`` from S3, "builds" its Dockerfile (it
must start with ``FROM``; a ``RUN exit 1`` line fails the build, as docker build would), writes
the build's log to CloudWatch Logs (``/aws/codebuild/<project>``, stream = the build's id
after the colon) and, on success, puts an image manifest into ECR under ``IMAGE_URI``
(repository:tag). BatchGetBuilds then reports buildComplete and the outcome.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import boto3
from moto.codebuild import models as cb_models
from moto.codebuild.responses import CodeBuildResponse

OUTCOMES: dict[str, str] = {}  # build id → SUCCEEDED | FAILED
STARTED: list[dict[str, Any]] = []  # every StartBuild's parameters


def _run_build(build_id: str, project: str, params: dict[str, Any]) -> str:
    env = {v["name"]: v["value"] for v in params.get("environmentVariablesOverride") or []}
    bucket, key = str(params["sourceLocationOverride"]).split("/", 1)
    s3, logs, ecr = (boto3.client(s) for s in ("s3", "logs", "ecr"))
    source = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    lines = [f"[Container] Entering phase BUILD: docker build -t {env['IMAGE_URI']} ."]
    with zipfile.ZipFile(io.BytesIO(source)) as z:
        dockerfile = z.read("Dockerfile").decode()
    status = "SUCCEEDED"
    for line in dockerfile.splitlines():
        lines.append(f"Step: {line}")
        if line.strip().upper().startswith("RUN") and "exit 1" in line:
            lines.append("The command '/bin/sh -c exit 1' returned a non-zero code: 1")
            status = "FAILED"
            break
    if not dockerfile.lstrip().upper().startswith("FROM"):
        lines.append("Dockerfile: the first instruction must be FROM")
        status = "FAILED"
    if status == "SUCCEEDED":
        repo_tag = env["IMAGE_URI"].split("/", 1)[1]
        repo, tag = repo_tag.rsplit(":", 1)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(dockerfile), "digest": "sha256:" + "0" * 64},
            "layers": [],
        }  # fmt: skip
        ecr.put_image(repositoryName=repo, imageManifest=json.dumps(manifest), imageTag=tag)
        lines.append(f"pushed {env['IMAGE_URI']}")
    group, stream = f"/aws/codebuild/{project}", build_id.split(":", 1)[1]
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now, "message": line} for line in lines],
    )
    return status


def install(monkeypatch: Any) -> None:
    real_start = CodeBuildResponse.start_build
    real_get = cb_models.CodeBuildBackend.batch_get_builds

    def start_build(self: CodeBuildResponse) -> Any:
        result = real_start(self)
        params = {
            "sourceLocationOverride": self._get_param("sourceLocationOverride"),
            "environmentVariablesOverride": self._get_param("environmentVariablesOverride"),
        }
        STARTED.append(params)
        backend = self.codebuild_backend
        name = self._get_param("projectName")
        build_id = backend.build_history[name][-1]
        OUTCOMES[build_id] = _run_build(build_id, name, params)
        meta = backend.build_metadata_history[name][-1]
        meta["logs"] = {
            "groupName": f"/aws/codebuild/{name}",
            "streamName": build_id.split(":", 1)[1],
        }
        return result

    def batch_get_builds(self: Any, ids: list[str]) -> list[dict[str, Any]]:
        builds = real_get(self, ids)
        for b in builds:
            b["buildStatus"] = OUTCOMES.get(b["id"], b["buildStatus"])
            b["buildComplete"] = True
        return builds

    OUTCOMES.clear()
    STARTED.clear()
    monkeypatch.setattr(CodeBuildResponse, "start_build", start_build)
    monkeypatch.setattr(cb_models.CodeBuildBackend, "batch_get_builds", batch_get_builds)
