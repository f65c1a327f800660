"""Tarballs in and out: deterministic creation, safe extraction."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from worker_toolkit.contract import SSM_FILES_MEMBER


def extract_tarball(src: Path, dest: Path, skip_carrier: bool = True) -> None:
    """Extract with the ``data`` filter (PEP 706): refuses absolute names, ``..``, links that
    leave ``dest`` and special files, so a crafted archive cannot write outside ``dest``."""
    with tarfile.open(src, "r:*") as tar:
        members = [
            m for m in tar.getmembers() if not (skip_carrier and _top(m.name) == SSM_FILES_MEMBER)
        ]
        tar.extractall(dest, members=members, filter="data")


def read_member(src: Path, name: str) -> bytes | None:
    """One member's bytes (None when absent). Names are compared without a leading ``./``."""
    want = name.removeprefix("./")
    with tarfile.open(src, "r:*") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.removeprefix("./") == want:
                f = tar.extractfile(m)
                return f.read() if f else None
    return None


def _top(name: str) -> str:
    return name.removeprefix("./").split("/", 1)[0]


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
