"""What leaves a job: model/output tarballs, checkpoints, processing outputs.

- Training (CreateTrainingJob OutputDataConfig): ``model.tar.gz`` holds /opt/ml/model of
  all hosts merged and ``output.tar.gz`` holds /opt/ml/output/data of algo-1; both land at
  ``<S3OutputPath>/<job>/output/``, which is also what ModelArtifacts.S3ModelArtifacts
  names.
- Checkpoints (CheckpointConfig): SageMaker copies every object under S3Uri into LocalPath
  on every host before training and keeps syncing LocalPath back to S3Uri while the job
  runs, so they survive a failure or an interruption. S3Uri is a folder: an object
  ``<S3Uri>/a/b`` is ``<LocalPath>/a/b`` and back.
- TensorBoard (TensorBoardOutputConfig): LocalPath of every host is copied to S3OutputPath
  while the job runs and at its end, like checkpoints but one way.
- Processing (ProcessingOutputConfig): each output's LocalPath, every file with its relative
  path, goes under its S3Uri — at the end of a successful job (EndOfJob), and for
  Continuous also when the job failed or stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssm_rules.backends.local.archives import entries_under, files_under, make_tarball
from ssm_rules.backends.local.channels import Source, folder_uri, place
from ssm_rules.backends.local.sandbox import Sandbox
from ssm_rules.objects import ObjectURI, S3Objects, store_for
from worker_toolkit import contract


def output_prefix(body: dict[str, Any]) -> ObjectURI:
    base = ObjectURI.parse(body["OutputDataConfig"]["S3OutputPath"])
    return base.join(body["TrainingJobName"], "output")


def upload_training_outputs(
    body: dict[str, Any], sandboxes: Sequence[Sandbox], work: Path, s3: S3Objects | None = None
) -> str:
    """Build and upload model.tar.gz and output.tar.gz; returns the model URI.

    model.tar.gz is always uploaded, empty or not (ModelArtifacts names it); output.tar.gz
    only when algo-1's SM_OUTPUT_DATA_DIR holds something. SageMaker may upload none for a
    job that wrote no output data (issue 7): the local backend takes the stricter of the two
    behaviours, so that clients are always run against it."""
    prefix = output_prefix(body)
    model = work / contract.MODEL_ARCHIVE
    make_tarball([sb.real(contract.MODEL_DIR) for sb in sandboxes], model)
    model_uri = str(prefix.join(contract.MODEL_ARCHIVE))
    store = store_for(model_uri, s3)
    output_data = sandboxes[0].real(contract.OUTPUT_DATA_DIR)
    if entries_under(output_data):
        output = work / contract.OUTPUT_ARCHIVE
        make_tarball([output_data], output)
        store.upload(output, str(prefix.join(contract.OUTPUT_ARCHIVE)))
    store.upload(model, model_uri)
    return model_uri


@dataclass
class CheckpointSync:
    """Two-way checkpoint copy for one job; remembers what it uploaded to skip it next time."""

    s3_uri: str
    local_dirs: list[Path]  # each host's LocalPath, host order
    s3: S3Objects | None = None
    sandbox_roots: list[Path] = field(default_factory=list)  # each host's /opt/ml, host order
    _uploaded: dict[tuple[Path, str], tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def for_job(
        cls, body: dict[str, Any], sandboxes: Sequence[Sandbox], s3: S3Objects | None = None
    ) -> CheckpointSync | None:
        return cls._of(
            body.get("CheckpointConfig"), "S3Uri", contract.CHECKPOINT_DIR, sandboxes, s3
        )

    @classmethod
    def for_tensorboard(
        cls, body: dict[str, Any], sandboxes: Sequence[Sandbox], s3: S3Objects | None = None
    ) -> CheckpointSync | None:
        """TensorBoardOutputConfig: LocalPath of every host goes to S3OutputPath while the
        job runs and at its end (one way: nothing is restored)."""
        config = body.get("TensorBoardOutputConfig")
        return cls._of(config, "S3OutputPath", contract.TENSORBOARD_DIR, sandboxes, s3)

    @classmethod
    def _of(
        cls,
        config: dict[str, Any] | None,
        uri_key: str,
        default_local: str,
        sandboxes: Sequence[Sandbox],
        s3: S3Objects | None,
    ) -> CheckpointSync | None:
        if not config:
            return None
        dirs = [sb.real(config.get("LocalPath") or default_local) for sb in sandboxes]
        return cls(folder_uri(config[uri_key]), dirs, s3, [sb.root for sb in sandboxes])

    def download(self) -> None:
        source = Source(self.s3_uri)
        listing = source.objects(self.s3)  # one listing for every host
        for i, d in enumerate(self.local_dirs):
            placed = place(source, d, i, len(self.local_dirs), self.s3, listing)
            for p in placed:  # just downloaded: the same bytes are already there
                st = p.stat()
                self._uploaded[(d, p.relative_to(d).as_posix())] = (st.st_size, st.st_mtime_ns)

    def upload(self) -> int:
        """Upload new or changed files of every host; returns how many were uploaded."""
        base = ObjectURI.parse(self.s3_uri)
        store = store_for(self.s3_uri, self.s3)
        count = 0
        for i, d in enumerate(self.local_dirs):
            sandbox = self.sandbox_roots[i] if i < len(self.sandbox_roots) else d
            for rel, path in files_under(d, sandbox):
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed while we walked: the job still runs
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                if self._uploaded.get((d, rel)) == sig:
                    continue
                store.upload(path, str(base.join(rel)))
                self._uploaded[(d, rel)] = sig
                count += 1
        return count


def upload_processing_outputs(
    body: dict[str, Any],
    sandboxes: Sequence[Sandbox],
    succeeded: bool,
    s3: S3Objects | None = None,
) -> None:
    for out in (body.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        dst = out["S3Output"]
        continuous = dst.get("S3UploadMode", "EndOfJob") == "Continuous"
        if not (succeeded or continuous):
            continue
        base = ObjectURI.parse(folder_uri(dst["S3Uri"]))
        store = store_for(dst["S3Uri"], s3)
        for sb in sandboxes:
            root = sb.real(dst["LocalPath"])
            for rel, path in files_under(root, sb.root):
                store.upload(path, str(base.join(rel)))
