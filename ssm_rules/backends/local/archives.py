"""tar.gz in and out, safely.

Extraction uses tarfile's ``data`` filter (PEP 706): no absolute paths, no ``..``, no links
pointing outside, no device files — a code bundle or a model archive from S3 cannot write
outside its target directory.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from worker_toolkit import contract


class UnsafeArchiveError(ValueError):
    pass


def safe_extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except tarfile.FilterError as e:
        raise UnsafeArchiveError(f"{archive}: refusing to extract {e}") from e


def entries_under(root: Path) -> list[Path]:
    """Every file and symlink below ``root``, links not followed, sorted: deterministic order."""
    if not root.is_dir() or root.is_symlink():
        return []
    found = []
    for dirpath, dirs, names in os.walk(root):
        base = Path(dirpath)
        found += [base / d for d in dirs if (base / d).is_symlink()]  # not walked into
        found += [base / n for n in names if (base / n).is_symlink() or (base / n).is_file()]
    return sorted(found)


def files_under(root: Path, sandbox: Path) -> list[tuple[str, Path]]:
    """(path relative to ``root``, the file to read) of every file below ``root``, as the
    job's own upload would see them: a symlink is followed only while it stays inside the
    host's ``sandbox`` (its /opt/ml); one that leaves it (into this machine) is skipped."""
    found = []
    for path in entries_under(root):
        target = resolve_in_sandbox(path, sandbox) if path.is_symlink() else path
        if target is not None and target.is_file():
            found.append((path.relative_to(root).as_posix(), target))
    return found


def resolve_in_sandbox(path: Path, sandbox: Path) -> Path | None:
    """Where the link ``path`` leads inside ``sandbox``, reading an absolute /opt/ml/...
    target as the job does (the sandbox is its /opt/ml); None when it leads outside."""
    root = Path(os.path.realpath(sandbox))
    current = path
    for _ in range(40):  # the kernel's own limit on nested links
        if not current.is_symlink():
            real = Path(os.path.realpath(current))
            return real if real == root or root in real.parents else None
        target = os.readlink(current)
        if target == contract.OPT_ML or target.startswith(contract.OPT_ML + "/"):
            current = root / target[len(contract.OPT_ML) :].lstrip("/")
        else:
            current = Path(os.path.normpath(current.parent / target))
    return None


def make_tarball(roots: Iterable[Path], archive: Path) -> None:
    """One tar.gz holding the files of all ``roots``, relative to each root.

    Roots are merged in order; when two hold the same relative path the first wins (for
    model.tar.gz the roots are hosts algo-1..N, so the main host's file is kept). Symlinks
    are stored as symlinks, as ``tar`` in the job's container would: their targets are the
    container's, not this machine's.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for root in roots:
            for path in entries_under(root):
                rel = path.relative_to(root).as_posix()
                if rel in seen:
                    continue
                seen.add(rel)
                tar.add(str(path), arcname=rel, recursive=False)
    os.replace(tmp, archive)
