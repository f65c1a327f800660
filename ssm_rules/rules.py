"""Snakefile helpers: ``model``, ``output_data``, ``state``, ``tensorboard``, ``sharded``,
``unpacked``, ``local_input``, ``job``, ``extract``.

The path helpers return the path with a Snakemake flag attached (``snakemake.io.flag``);
flags travel with the file into the job object the executor receives, which is how the
executor learns what each input and output is without any extra syntax in the Snakefile.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import shlex
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Flag names (snakemake.io flags are a free-form dict on the annotated path string).
ARTIFACT_FLAG = "ssm_artifact"  # value: ArtifactKind
SHARDED_FLAG = "ssm_sharded"
LOCAL_INPUT_FLAG = "ssm_local_input"
UNPACKED_FLAG = "ssm_unpacked"

STATE_MANIFEST_SUFFIX = ".json"


class ArtifactKind(enum.StrEnum):
    MODEL = "model"  # SM_MODEL_DIR of every instance, merged, as model.tar.gz
    OUTPUT_DATA = "output_data"  # SM_OUTPUT_DATA_DIR of the main instance, as output.tar.gz
    STATE = "state"  # task state objects under <manifest without .json>/, manifest at the path
    TENSORBOARD = "tensorboard"  # the files a training job wrote to its TensorBoard dir


def _flag(path: Any, name: str, value: Any = True) -> Any:
    from ssm_rules._snakemake_internals import flagged

    return flagged(path, name, value)


def model(path: str | os.PathLike[str]) -> Any:
    """A model artifact: output ``model.tar.gz`` of a job, or that file as another job's input."""
    _require_suffix(path, ".tar.gz", "model")
    return _flag(os.fspath(path), ARTIFACT_FLAG, ArtifactKind.MODEL)


def output_data(path: str | os.PathLike[str]) -> Any:
    """The output data of a job's main instance (``SM_OUTPUT_DATA_DIR``) as a tar.gz."""
    _require_suffix(path, ".tar.gz", "output_data")
    return _flag(os.fspath(path), ARTIFACT_FLAG, ArtifactKind.OUTPUT_DATA)


def state(path: str | os.PathLike[str]) -> Any:
    """Task state: objects under ``<path without .json>/``; the file at ``path`` is its manifest,
    written only after the job succeeded. As an input, a channel holding the state objects."""
    _require_suffix(path, STATE_MANIFEST_SUFFIX, "state")
    return _flag(os.fspath(path), ARTIFACT_FLAG, ArtifactKind.STATE)


def state_prefix(manifest: str) -> str:
    """Where the objects of the state whose manifest is ``manifest`` live (ends with ``/``)."""
    return manifest[: -len(STATE_MANIFEST_SUFFIX)] + "/"


def tensorboard(path: str | os.PathLike[str]) -> Any:
    """A directory output: the TensorBoard files the job wrote (``SSM_TENSORBOARD_DIR``,
    ``WorkerConfig().tensorboard_dir``), synced by SageMaker while it trains
    (TensorBoardOutputConfig) and put in place when it succeeded."""
    from ssm_rules._snakemake_internals import directory_output

    return _flag(directory_output(os.fspath(path)), ARTIFACT_FLAG, ArtifactKind.TENSORBOARD)


def sharded(path: Any) -> Any:
    """Spread the input's objects over the instances (S3DataDistributionType ShardedByS3Key).

    A list of files is one channel holding them all (a SageMaker ManifestFile), dealt
    round-robin over the instances, not one channel per file."""
    return _flag(path, SHARDED_FLAG, True)


def unpacked(path: Any) -> Any:
    """A model/output tarball input that arrives extracted: the channel is its file tree (as
    simple-sagemaker handed a task's output to the next task), not ``model.tar.gz``."""
    return _flag(path, UNPACKED_FLAG, True)


def local_input(path: str | os.PathLike[str]) -> Any:
    """A file or directory on this machine that the executor uploads for the job.

    It stays a plain local path for Snakemake even under a default storage provider (the
    path-modifier flag below) and, unlike Snakemake's ``local()``, keeps the job remote.
    """
    from ssm_rules._snakemake_internals import keep_local_path

    return keep_local_path(_flag(os.fspath(path), LOCAL_INPUT_FLAG, True))


def _require_suffix(path: Any, suffix: str, helper: str) -> None:
    if not os.fspath(path).endswith(suffix):
        raise ValueError(
            f"{helper}({os.fspath(path)!r}): the path must end with {suffix!r}, "
            f"e.g. {helper}('runs/train/{'state.json' if suffix == '.json' else helper + suffix}')"
        )


# job() options added after the first release: left out of the repr while unused
LATER_OPTIONS = ("args", "setup", "dockerfile")


@dataclass(frozen=True)
class JobOptions:
    """What a rule says about its SageMaker job beyond resources: ``params: sagemaker=job(...)``."""

    source_dir: str | None = None
    dependencies: tuple[str, ...] = ()
    framework: str = "pytorch"
    framework_version: str | None = None
    py_version: str | None = None
    image_uri: str | None = None
    metric_definitions: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    clean_state: bool = False
    distribution: Mapping[str, Any] = field(default_factory=dict)
    # free command-line arguments of a script, before its hyperparameters (simple-sagemaker's
    # `ssm run ... -- arg1 -arg2 --arg3 "argument 4"`)
    args: tuple[str, ...] = ()
    # a shell command run before the program on every instance (aws-sagemaker-remote's
    # configuration command): what it exports, the program sees
    setup: str | None = None
    # a Docker build context (directory with a Dockerfile, which may say __BASE_IMAGE__):
    # the job runs on the image built from it, pushed to ECR
    dockerfile: str | None = None

    def __repr__(self) -> str:
        # Snakemake records params by repr to detect changes: keep it stable and sorted.
        items = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in LATER_OPTIONS:  # unused, they stay out: no spurious reruns
            if not items[name]:
                del items[name]
        return "job(" + json.dumps(items, sort_keys=True, default=_jsonable) + ")"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def job(
    *,
    source_dir: str | None = None,
    dependencies: Sequence[str] = (),
    framework: str = "pytorch",
    framework_version: str | None = None,
    py_version: str | None = None,
    image_uri: str | None = None,
    metric_definitions: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    clean_state: bool = False,
    distribution: Mapping[str, Any] | None = None,
    args: Sequence[str | int | float] | str = (),
    setup: str | None = None,
    dockerfile: str | None = None,
) -> JobOptions:
    """SageMaker job options of a rule (code, image, metrics, tags, environment, state;
    ``args``: free command-line arguments of the script, a list or a shell-quoted string;
    ``setup``: a shell command run before the program on every instance; ``dockerfile``: a
    build context whose image the job runs on)."""
    if isinstance(dependencies, str):
        dependencies = [dependencies]
    if isinstance(args, str):
        args = shlex.split(args)
    bad = [a for a in args if isinstance(a, bool) or not isinstance(a, str | int | float)]
    if bad:
        raise ValueError(
            f"job(args={list(args)!r}): {bad[0]!r} is not a command-line argument; give "
            "strings (or numbers), e.g. job(args=['--fast', 'input 1'])"
        )
    return JobOptions(
        source_dir=source_dir,
        dependencies=tuple(dependencies),
        framework=framework,
        framework_version=framework_version,
        py_version=py_version,
        image_uri=image_uri,
        metric_definitions=dict(metric_definitions or {}),
        tags=dict(tags or {}),
        environment=dict(environment or {}),
        clean_state=clean_state,
        distribution=dict(distribution or {}),
        args=tuple(str(a) for a in args),
        setup=_setup(setup),
        dockerfile=dockerfile,
    )


def _setup(setup: Any) -> str | None:
    if setup is None or (isinstance(setup, str) and setup.strip()):
        return setup
    raise ValueError(
        f"job(setup={setup!r}): give a shell command, e.g. job(setup='apt-get install -y jq') "
        "or job(setup='source setup.sh') for a script in the code"
    )


def extract(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Unpack a model/output tarball, or copy a state manifest's objects, into ``dest``.

    Tarballs are extracted with the ``data`` filter: no absolute paths, no ``..``, no links
    pointing outside ``dest``, no device files. The plain-file carrier directory that
    ssm_rules adds to output.tar.gz is left out.
    """
    from ssm_rules.safe_tar import extract_tarball

    src, dest = Path(src), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if src.name.endswith(STATE_MANIFEST_SUFFIX):
        from ssm_rules.manifest import copy_state_objects

        copy_state_objects(src, dest)
        return dest
    if not tarfile.is_tarfile(src):
        raise ValueError(f"extract({str(src)!r}): not a tar archive nor a state manifest (.json)")
    extract_tarball(src, dest)
    return dest
