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


class UnsafeArchiveError(ValueError):
    pass


def safe_extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except tarfile.FilterError as e:
        raise UnsafeArchiveError(f"{archive}: refusing to extract {e}") from e


def files_under(root: Path) -> list[Path]:
    """Every file below ``root`` (symlinks to files included), sorted: deterministic order."""
    if not root.is_dir():
        return []
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if p.is_file():
                found.append(p)
    return sorted(found)


def make_tarball(roots: Iterable[Path], archive: Path) -> None:
    """One tar.gz holding the files of all ``roots``, relative to each root.

    Roots are merged in order; when two hold the same relative path the first wins (for
    model.tar.gz the roots are hosts algo-1..N, so the main host's file is kept).
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for root in roots:
            for path in files_under(root):
                rel = path.relative_to(root).as_posix()
                if rel in seen:
                    continue
                seen.add(rel)
                # dereference: a link to a file is archived as that file's contents
                tar.add(str(path.resolve()), arcname=rel, recursive=False)
    os.replace(tmp, archive)
