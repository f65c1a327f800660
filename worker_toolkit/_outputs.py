"""After a successful run: check the declared plain outputs and hand them to SageMaker's upload.

A training job uploads only model.tar.gz (SM_MODEL_DIR) and output.tar.gz (SM_OUTPUT_DATA_DIR),
so plain files travel inside output.tar.gz under ``.ssm_files/<relpath>``. A processing job
uploads directories (ProcessingOutput), so the launcher assembles one carrier directory with
model.tar.gz, output.tar.gz and ``files/<relpath>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import _common as u
from . import contract as c
from .task import GroupTaskDescription, TaskDescription


def missing_files(files: dict[str, str]) -> list[tuple[str, str]]:
    """(path, relpath) of every declared plain output that the program did not write."""
    return [(path, rel) for path, rel in sorted(files.items()) if not os.path.lexists(path)]


def _safe_rel(rel: str) -> str:
    """A relative path that cannot climb out of its destination directory."""
    parts = [p for p in Path(rel).parts if p not in ("", ".", "/")]
    if not parts or ".." in parts:
        raise ValueError(f"bad relative output path {rel!r}")
    return os.path.join(*parts)


def _move(src: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        if dest.is_dir() and not dest.is_symlink():
            import shutil  # shutil loads bz2 and lzma: only when it is needed

            shutil.rmtree(dest)
        else:
            dest.unlink()
    try:
        os.rename(src, dest)  # what shutil.move does first
    except OSError:
        import shutil

        shutil.move(src, str(dest))  # another file system: copy and delete


def move_training_files(files: dict[str, str], root: str) -> None:
    """Move each declared file into OUTPUT_DATA_DIR/.ssm_files/<relpath> (in output.tar.gz)."""
    base = Path(u.reroot(c.OUTPUT_DATA_DIR, root)) / c.SSM_FILES_MEMBER
    for path, rel in sorted(files.items()):
        _move(path, base / _safe_rel(rel))


def build_carrier(files: dict[str, str], model: bool, output_data: bool, root: str) -> Path:
    """Fill PROCESSING_CARRIER_DIR: model.tar.gz, output.tar.gz, files/<relpath>."""
    carrier = Path(u.reroot(c.PROCESSING_CARRIER_DIR, root))
    carrier.mkdir(parents=True, exist_ok=True)
    if model:
        write_tar_gz(Path(u.reroot(c.PROCESSING_MODEL_DIR, root)), carrier / c.MODEL_ARCHIVE)
    if output_data:
        write_tar_gz(Path(u.reroot(c.PROCESSING_OUTPUT_DATA_DIR, root)), carrier / c.OUTPUT_ARCHIVE)
    for path, rel in sorted(files.items()):
        _move(path, carrier / c.PROCESSING_CARRIER_FILES / _safe_rel(rel))
    return carrier


def write_tar_gz(src: Path, dest: Path) -> None:
    """Tar src's contents (relative, sorted names) as ProcessingOutput uploads them: an empty
    or absent directory gives an empty archive."""
    src.mkdir(parents=True, exist_ok=True)
    from ._tarballs import tree_entries, write_tar_gz_file  # tarfile, gzip: only here

    write_tar_gz_file(tree_entries(src), dest)


def empty_model_warning(
    task: TaskDescription | GroupTaskDescription, model_dir: str, host: str
) -> str | None:
    """The warning for a rule that declares ``model(...)`` when the program wrote nothing to
    SM_MODEL_DIR: SageMaker still uploads a model.tar.gz, an empty one, and the job succeeds;
    the model was most likely written somewhere else (the working directory, /tmp)."""
    if not task.model or any(Path(model_dir).iterdir() if Path(model_dir).is_dir() else []):
        return None
    return (
        f"warning: the rule declares a model(...) output, but nothing was written to "
        f"SM_MODEL_DIR ({model_dir}) on {host}: unless another instance wrote there, "
        "model.tar.gz will be empty. Write the model files into $SM_MODEL_DIR "
        "(WorkerConfig().model_dir)."
    )


def undeclared_state_warning(
    task: TaskDescription | GroupTaskDescription, state_dir: str, host: str
) -> str | None:
    """The warning for a program that wrote task state (SSM_STATE, WorkerConfig().state)
    when the rule declares no ``state(...)`` output: nothing syncs or keeps that directory,
    so the files are gone with the job. simple-sagemaker kept state for every task."""
    if task.state_dir is not None or not Path(state_dir).is_dir():
        return None
    written = sum(1 for p in Path(state_dir).rglob("*") if p.is_file())
    if not written:
        return None
    return (
        f"warning: the program wrote {written} file{'s' if written != 1 else ''} to its "
        f"state directory ({state_dir}, WorkerConfig().state) on {host}, but the rule "
        "declares no state(...) output: they are discarded when the job ends. Declare "
        'one, e.g. state("runs/<rule>/state.json"), to keep them and resume from them.'
    )
