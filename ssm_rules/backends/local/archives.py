"""The job's files as SageMaker's upload sees them: entries, links kept inside the sandbox,
merged archives (written and extracted by worker_toolkit._tarballs, the job's own tar code)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from worker_toolkit import contract
from worker_toolkit._tarballs import tree_entries, write_tar_gz_file


def entries_under(root: Path) -> list[Path]:
    """Every file and symlink below ``root``, links not followed, sorted: deterministic order."""
    return [p for _, p in tree_entries(root) if p.is_symlink() or not p.is_dir()]


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
    """One tar.gz holding the entries of all ``roots``, relative to each root.

    Roots are merged in order; when two hold the same relative path the first wins (for
    model.tar.gz the roots are hosts algo-1..N, so the main host's file is kept). Symlinks
    are stored as symlinks and empty directories kept, as ``tar`` in the job's container
    would: link targets are the container's, not this machine's.
    """
    merged: dict[str, Path] = {}
    for root in roots:
        for name, path in tree_entries(root):
            merged.setdefault(name, path)
    write_tar_gz_file(sorted(merged.items(), key=lambda item: Path(item[0]).parts), archive)
