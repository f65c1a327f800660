"""Tarballs on the client: the code bundle's bytes, one member, safe extraction (the one
writer and extractor are worker_toolkit._tarballs', shared with the job)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from worker_toolkit._tarballs import extract_tarball, write_tar_gz

__all__ = ["deterministic_tar_gz", "extract_tarball", "read_member"]


def read_member(src: Path, name: str) -> bytes | None:
    """One member's bytes (None when absent). Names are compared without a leading ``./``."""
    want = name.removeprefix("./")
    with tarfile.open(src, "r:*") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.removeprefix("./") == want:
                f = tar.extractfile(m)
                return f.read() if f else None
    return None


def deterministic_tar_gz(files: Iterable[tuple[str, Path]]) -> bytes:
    """A tar.gz of ``(archive name, path)`` pairs whose bytes depend only on names and
    contents (sorted names, zero mtimes and owners, normalised modes, links stored as what
    they point to). Equal code gives an equal hash, so an unchanged bundle is never uploaded
    again."""
    out = io.BytesIO()
    write_tar_gz(sorted(files, key=lambda item: item[0]), out, reproducible=True)
    return out.getvalue()
