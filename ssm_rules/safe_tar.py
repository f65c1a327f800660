"""Tarballs in and out: deterministic creation, safe extraction."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from worker_toolkit._tarballs import extract_tarball

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
    contents: sorted members, zero mtimes/owners, normalised modes, gzip header without a
    timestamp. Equal code gives an equal hash, so an unchanged bundle is never uploaded again."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, path in sorted(files, key=lambda item: item[0]):
            info = tarfile.TarInfo(arcname)
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()
